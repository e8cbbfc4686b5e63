"""Shared machinery of the CAM methods: the activation-only base and the gradient base.

A :class:`GradientCAM` does one forward and one backward pass for the whole batch through
:meth:`xaikit.Attribution.forward_with_layer` (which owns the hook and its removal), then
combines the layer's activation ``A`` ``[B, K, h, w]`` and the gradient ``g = dy^c/dA`` of
each image's target logit into a map ``[B, h, w]``. Images never mix: in eval mode image
``b``'s logit depends only on ``A[b]``, so ``g[b]`` is image ``b``'s own gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit import Attribution, XaikitError


def check_feature_map(activation: Tensor, method: str, layer_name: str | None) -> None:
    """Raise ``XaikitError`` unless ``activation`` is a conv feature map ``[B, K, h, w]``."""
    if activation.ndim != 4:
        raise XaikitError(
            f"method {method!r} needs a layer with output [B, C, h, w]; layer {layer_name!r} "
            f"gives shape {tuple(activation.shape)}"
        )


class GradientCAM(Attribution):
    """Base of the CAM methods that weigh the layer's output ``A`` with the gradient ``g`` of
    the target logit (Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM, Eigen-Grad-CAM...).

    Subclasses implement :meth:`combine` (or override :meth:`attribute`); the output is ``ReLU`` of the combined map, so it is
    non-negative and unnormalised, at the layer's resolution (the base class upsamples it).
    """

    uses_layer = True
    signed = False
    class_discriminative = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, gradient, _logits = self.forward_with_layer(x, target)
        check_feature_map(activation, self.name, self.layer_name)
        return self.combine(activation, gradient).clamp_min(0)

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        """Map ``[B, h, w]`` before the final ReLU, from ``A`` and ``g`` (both ``[B, K, h, w]``)."""
        raise NotImplementedError


class ActivationCAM(Attribution):
    """Base of the CAM methods that start from the layer's output alone (Score-CAM, Eigen-CAM,
    FEM, KPCA-CAM, Ablation-CAM...): :meth:`activation_and_logits` is one forward pass without
    gradients through :meth:`xaikit.Attribution.capture`."""

    uses_layer = True
    signed = False

    def activation_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The layer's output ``[B, K, h, w]`` and the logits ``[B, classes]`` for ``x``."""
        with torch.no_grad(), self.capture(retain_grad=False) as captured:
            logits = self.model(x)
        activation = captured.get("activation")
        if activation is None:
            raise XaikitError(f"layer {self.layer_name!r} was not called in the model's forward")
        check_feature_map(activation, self.name, self.layer_name)
        return activation, logits
