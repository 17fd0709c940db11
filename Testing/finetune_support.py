"""Settings shared by the fine-tuning tests that check learning (see test_finetune_dice.py for the measurements)."""

#: AdamW lr 3e-3 (the tutorial's 1e-4 learns in thousands of steps), 2 crops per volume, UNETR feature size 8.
LEARNING = dict(lr=3e-3, crops_per_volume=2, feature_size=8)
