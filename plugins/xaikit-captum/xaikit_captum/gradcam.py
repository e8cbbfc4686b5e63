"""Captum's Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017), to cross-check xaikit's own Grad-CAM."""

from __future__ import annotations

from captum.attr import LayerGradCam
from torch import Tensor

from xaikit import Attribution
from xaikit_captum._captum_call import captum_call


class CaptumGradCam(Attribution):
    """Grad-CAM by Captum's ``LayerGradCam`` on the model's default CAM layer (or ``layer``).

    With ``A^k`` the layer's channel-k activation (``h x w``) and f_c the target logit::

        alpha_k = (1 / hw) sum_ij d f_c / d A^k_ij,    M = ReLU(sum_k alpha_k A^k)

    ``A`` is the layer's output as the layer returned it: Captum clones it, so an in-place
    ReLU right after the layer does not change it (a plain forward hook would see the
    ReLU'd tensor instead).

    Output: ``[B, H, W]``: Captum's ``[B, 1, h, w]`` map bilinearly upsampled to the input
    by the base class; **non-negative** (ReLU'd), unnormalised (activation units).
    """

    name = "captum-gradcam"
    uses_layer = True
    signed = False
    class_discriminative = True
    scale = "non-negative (ReLU'd), activation units, upsampled from the layer"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        assert self.layer is not None  # set by Attribution.__init__ since uses_layer is True
        with captum_call(self.model):
            cams = LayerGradCam(self.model, self.layer).attribute(
                x, target=target, relu_attributions=True
            )
        return cams[:, 0]
