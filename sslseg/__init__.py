"""sslseg: self-supervised pretraining and UNETR organ segmentation for 3-D CT/MR, the engine of SSL Segmentation."""

__version__ = "0.1.0"
