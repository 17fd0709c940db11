"""``sslseg study``: does pretraining help? Fine-tuning with N labelled cases from each initialisation, scored on one
fixed held-out set, summarised as MONAI's label-efficiency table."""
