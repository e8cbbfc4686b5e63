"""Shared machinery of the gradient-based CAM methods.

Every method here does one forward and one backward pass for the whole batch through
:meth:`xaikit.Attribution.forward_with_layer` (which owns the hook and its removal), then
combines the layer's activation ``A`` ``[B, K, h, w]`` and the gradient ``g = dy^c/dA`` of
each image's target logit into a map ``[B, h, w]``. Images never mix: in eval mode image
``b``'s logit depends only on ``A[b]``, so ``g[b]`` is image ``b``'s own gradient.
"""

from __future__ import annotations

from torch import Tensor

from xaikit import Attribution
from xaikit import XaikitError


def check_feature_map(activation: Tensor, method: str, layer_name: str | None) -> None:
    """Raise ``XaikitError`` unless ``activation`` is a conv feature map ``[B, K, h, w]``."""
    if activation.ndim != 4:
        raise XaikitError(
            f"method {method!r} needs a layer with output [B, C, h, w]; layer {layer_name!r} "
            f"gives shape {tuple(activation.shape)}"
        )


class GradientCAM(Attribution):
    """Base of Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM and HiResCAM.

    Subclasses implement :meth:`combine`; the output is ``ReLU`` of the combined map, so it is
    non-negative and unnormalised, at the layer's resolution (the base class upsamples it).
    """

    uses_layer = True
    signed = False

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, gradient, _logits = self.forward_with_layer(x, target)
        check_feature_map(activation, self.name, self.layer_name)
        return self.combine(activation, gradient).clamp_min(0)

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        """Map ``[B, h, w]`` before the final ReLU, from ``A`` and ``g`` (both ``[B, K, h, w]``)."""
        raise NotImplementedError
