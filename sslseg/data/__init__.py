"""Training data: deterministic per-volume preprocessing cached on disk, random patches and views in workers."""
