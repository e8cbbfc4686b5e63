"""Deconvolution (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014), through Captum's ``Deconvolution``."""

from __future__ import annotations

from captum.attr import Deconvolution as _CaptumDeconvolution
from torch import Tensor, nn

from xaikit import Attribution
from xaikit_captum._captum_call import captum_call, relus_not_inplace, require_relu_modules


class Deconvolution(Attribution):
    """The target logit's gradient where every ReLU passes only positive incoming gradients.

    Backward through ``y = ReLU(z)``: ``dz = ReLU(dy)``, whatever the sign of ``z`` (the
    plain gradient is ``1[z > 0] * dy``, guided backprop ``1[z > 0] * ReLU(dy)``). Only
    ``nn.ReLU`` *modules* are changed (Captum hooks them); ``F.relu`` keeps its gradient, and a
    model with no ``nn.ReLU`` module raises :class:`xaikit.NotApplicableError` (the map would be
    the plain gradient).
    In-place ReLUs are switched off for the call and restored.

    Only weakly class-discriminative (Selvaraju et al. 2017; Mahendran and Vedaldi 2016):
    the backward pass ignores which units were active, so maps for two classes share most of
    the image's edges. The class changes the map only a little (Spearman 0.68 to 0.91 between
    the maps of two classes of a small CNN trained on the synthetic shapes, depending on the
    images, against about -0.2 for input x gradient; on the trained ULTIMUS it fails the
    random-logit check), so ``class_discriminative`` is ``False``.

    Cost: one forward and backward pass.

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**, unnormalised.
    """

    name = "deconvolution"
    uses_layer = False
    signed = True
    class_discriminative = False
    scale = "signed, channel sum of the deconvnet signal, unnormalised"

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__(model, layer)
        require_relu_modules(model, self.name)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model), relus_not_inplace(self.model):
            return _CaptumDeconvolution(self.model).attribute(x, target=target)
