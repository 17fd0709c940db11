"""Settings shared by the fine-tuning tests that check learning (see test_finetune_dice.py for the measurements)."""

#: The labelled phantoms' grid (``labelled_dir``, ``organ_cases``): voxels of 6 mm, RAS-aligned, centred on RAS 0.
FINETUNE_GRID = (52, 40, 34)
FINETUNE_SPACING_MM = 6.0

#: AdamW lr 3e-3 (the tutorial's 1e-4 learns in thousands of steps), 2 crops per volume, UNETR feature size 8.
LEARNING = dict(lr=3e-3, crops_per_volume=2, feature_size=8)
