"""``sslseg pretrain``: self-supervised pretraining of a 3-D ViT on a folder of unlabelled volumes."""
