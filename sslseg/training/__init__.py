"""Generic training machinery shared by pretraining and fine-tuning: devices, precision, DDP, checkpoints,
progress events, the loop, plots."""
