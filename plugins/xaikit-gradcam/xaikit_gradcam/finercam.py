"""Finer-CAM."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.gradient_cam import GradientCAM, check_feature_map


class FinerCAM(GradientCAM):
    """Finer-CAM: Grad-CAM of the target logit against the logits of the most similar classes.

    Zhang, Gu, Chowdhury, Mai, Carlyn, Berger-Wolf, Su, Chao, "Finer-CAM: Spotting the
    Difference Reveals Finer Details for Visual Explanation", CVPR 2025, arXiv:2501.11309; as
    pytorch-grad-cam's ``FinerCAM`` with its default base method (Grad-CAM) and target
    (``FinerWeightedTarget``). For each image, with ``y`` the logits, ``c`` the target class,
    ``S`` the ``comparisons`` classes ``j != c`` whose logits are closest to ``y_c`` (smallest
    ``|y_j - y_c|``) and ``p = softmax(y)``::

        s   = sum_{j in S} p_j (y_c - alpha y_j) / sum_{j in S} p_j
            = sum_{j in S} softmax_S(y)_j (y_c - alpha y_j)     (softmax over S only)
        w_k = (1 / h w) sum_ij ds/dA^k_ij       (the gradient also flows through p)
        L   = ReLU(sum_k w_k A^k)

    pytorch-grad-cam adds ``1e-9`` to the denominator against a division by zero; the softmax
    over ``S`` is the same ratio without it and cannot underflow to ``0 / 0`` (the two differ
    by a relative ``1e-9 / sum_S p_j``).

    With ``alpha = 0`` this is Grad-CAM; ``alpha = 1`` (default) explains what sets ``c``
    apart from its nearest rivals rather than what it shares with them. The similar classes
    are chosen from the logits of the same forward pass, image by image.

    Sign and scale: non-negative, unnormalised (logit units, as Grad-CAM), upsampled
    bilinearly to the input resolution. Cost: one forward and one backward pass.
    """

    name = "finercam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (Grad-CAM of the logit minus its nearest rivals')"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        alpha: float = 1.0,
        comparisons: int = 3,
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            alpha: Strength of the comparison (0: Grad-CAM).
            comparisons: How many of the most similar classes to compare against (at most
                the number of classes minus one).
        """
        super().__init__(model, layer)
        if comparisons < 1:
            raise XaikitError(f"comparisons must be >= 1, got {comparisons}")
        if math.isnan(alpha):
            raise XaikitError("alpha must be a number, got nan")
        self.alpha = float(alpha)
        self.comparisons = comparisons

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad(), self.capture(retain_grad=False) as captured:
            logits = self.model(x.detach().requires_grad_(True))
            activation = captured["activation"]
            check_feature_map(activation, self.name, self.layer_name)
            score = finer_score(logits, target, self.alpha, self.comparisons).sum()
            (gradient,) = torch.autograd.grad(score, activation)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        return (weights * activation.detach()).sum(dim=1).clamp_min(0)


def similar_classes(logits: Tensor, target: Tensor, count: int) -> Tensor:
    """The ``count`` classes ``[B, count]`` other than ``target`` whose logits are closest to
    the target's (nearest first; at most ``classes - 1``)."""
    distance = (logits - logits.gather(1, target[:, None])).abs()
    distance = distance.scatter(1, target[:, None], float("inf"))
    count = min(count, logits.shape[1] - 1)
    return distance.topk(count, dim=1, largest=False).indices


def finer_score(logits: Tensor, target: Tensor, alpha: float, comparisons: int) -> Tensor:
    """pytorch-grad-cam's ``FinerWeightedTarget`` per image, ``[B]`` (differentiable)."""
    if logits.shape[1] < 2:
        return logits.gather(1, target[:, None])[:, 0]
    rivals = similar_classes(logits.detach(), target, comparisons)
    rival_logits = logits.gather(1, rivals)
    shares = torch.softmax(rival_logits, dim=1)  # p_j / sum_S p_j
    own = logits.gather(1, target[:, None])
    return (shares * (own - alpha * rival_logits)).sum(dim=1)
