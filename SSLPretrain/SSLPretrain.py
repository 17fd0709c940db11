"""SSLPretrain: self-supervised pretraining of a 3D ViT on a folder of unlabelled CT/MR volumes.

The panel (widget, logic, parameter node, self-test) arrives with the Slicer-modules issue; the engine behind it is
``sslseg pretrain``. Heavy imports (torch, monai, sslseg) stay inside functions so Slicer starts without them.
"""

from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class SSLPretrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SSL Pretrain"
        self.parent.categories = ["Segmentation.SSL Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SSL Segmentation developers"]
        self.parent.helpText = (
            "Self-supervised pretraining of a 3D vision transformer on unlabelled CT or MR volumes "
            "(in-painting, out-painting, local pixel shuffling; reconstruction + contrastive loss)."
        )
        self.parent.acknowledgementText = (
            "Method after MONAI's self-supervised pretraining tutorial (ViTAutoEnc) and Tang et al., CVPR 2022."
        )
