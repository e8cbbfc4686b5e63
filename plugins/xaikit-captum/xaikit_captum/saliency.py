"""Saliency maps (Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014), through
Captum's ``Saliency``."""

from __future__ import annotations

from captum.attr import Saliency as _CaptumSaliency
from torch import Tensor

from xaikit import Attribution
from xaikit_captum._captum_call import captum_call


class Saliency(Attribution):
    """Gradient magnitude of the target logit, maximised over colour channels.

    ``M_ij = max_k |d f_c(x) / d x_kij|`` (Simonyan et al. 2014, eq. 2 and section 3.1):
    Captum's ``Saliency(abs=True)`` gives ``|grad|`` per channel; the max over channels is
    taken here, so the base class gets ``[B, H, W]`` and sums nothing.

    Output: ``[B, H, W]``, **non-negative**, in logit-per-input-unit (unnormalised).
    """

    name = "saliency"
    uses_layer = False
    signed = False
    class_discriminative = True
    scale = "non-negative, |d logit / d input| max over channels, unnormalised"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model):
            grads = _CaptumSaliency(self.model).attribute(x, target=target, abs=True)
        return grads.amax(dim=1)
