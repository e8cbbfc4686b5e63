"""Guided backpropagation (Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for
Simplicity: The All Convolutional Net", ICLR workshop 2015), through Captum's
``GuidedBackprop``."""

from __future__ import annotations

from captum.attr import GuidedBackprop as _CaptumGuidedBackprop
from torch import Tensor, nn

from xaikit import Attribution
from xaikit_captum._captum_call import captum_call, relus_not_inplace, require_relu_modules


class GuidedBackprop(Attribution):
    """Gradient of the target logit where every ReLU also zeroes negative incoming gradients.

    Backward through ``y = ReLU(z)``: ``dz = 1[z > 0] * ReLU(dy)`` (the plain gradient keeps
    negative ``dy``). Only ``nn.ReLU`` *modules* are modified (Captum hooks them);
    ``F.relu`` calls keep their plain gradient; a model with no ``nn.ReLU`` module (GELU
    activations) raises :class:`xaikit.NotApplicableError`, since the map would be the plain
    gradient. In-place ReLUs are switched off for the call and restored. Known to be largely
    independent of the upper layers' weights (Adebayo et al. 2018): expect it to do poorly in
    the randomisation check.

    Output: ``[B, H, W]``, the channel sum of the guided gradient; **signed**, unnormalised.
    """

    name = "guided-backprop"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, channel sum of the guided gradient, unnormalised"

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__(model, layer)
        require_relu_modules(model, self.name)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model), relus_not_inplace(self.model):
            return _CaptumGuidedBackprop(self.model).attribute(x, target=target)
