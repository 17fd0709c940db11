"""Network definitions: named ViT size presets, the ViTAutoEnc used for pretraining, encoder weight files."""
