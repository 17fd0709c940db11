"""SSLSegmentation: fine-tune UNETR from a pretrained ViT on a few segmentations, then segment organs.

The panel (widget, logic, parameter node, self-test) arrives with the Slicer-modules issue; the engine behind it is
``sslseg finetune`` / ``sslseg segment``. Heavy imports (torch, monai, sslseg) stay inside functions.
"""

from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class SSLSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SSL Segmentation"
        self.parent.categories = ["Segmentation.SSL Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SSL Segmentation developers"]
        self.parent.helpText = (
            "Fine-tune UNETR, initialised from a self-supervised ViT, on segmentations drawn in Slicer, "
            "and segment organs of the current volume into a segmentation node with named, coloured segments."
        )
        self.parent.acknowledgementText = "UNETR: Hatamizadeh et al., WACV 2022; implementation from MONAI."
