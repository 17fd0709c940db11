"""Frozen-encoder probes: how much organ information a ViT's features hold, in minutes instead of a fine-tuning."""
