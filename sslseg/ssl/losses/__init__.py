"""The SSL method family's losses, one per file, each a pure function computed in float32 (see ``_float32``).

Gather-aware losses take ``gather`` ((B_local, ...) -> (B_global, ...), differentiable; identity when None) and return
the loss of the whole global batch on every process: 2 processes of batch B give the value of 1 process of batch 2B,
and with ``sslseg.training.distributed.make_gather`` (all-reduced backward) plus DDP's averaging the gradient is the
global batch's.
"""

from sslseg.ssl.losses.barlow_twins import barlow_twins_loss
from sslseg.ssl.losses.infonce_queue import infonce_queue_loss
from sslseg.ssl.losses.moco_v3 import moco_v3_loss
from sslseg.ssl.losses.negative_cosine import byol_loss, negative_cosine_loss
from sslseg.ssl.losses.ntxent import ntxent_loss
from sslseg.ssl.losses.swav import sinkhorn, swav_loss
from sslseg.ssl.losses.vicreg import vicreg_loss
from sslseg.ssl.losses.wmse import whiten, wmse_loss

__all__ = [
    "barlow_twins_loss", "byol_loss", "infonce_queue_loss", "moco_v3_loss", "negative_cosine_loss", "ntxent_loss",
    "sinkhorn", "swav_loss", "vicreg_loss", "whiten", "wmse_loss",
]
