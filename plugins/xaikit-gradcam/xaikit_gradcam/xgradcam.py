"""XGrad-CAM."""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class XGradCAM(GradientCAM):
    """XGrad-CAM: axiom-based Grad-CAM (sensitivity and conservation).

    Fu, Hu, Dong, Guo, Gao, Li, "Axiom-based Grad-CAM: Towards Accurate Visualization and
    Explanation of CNNs", BMVC 2020, arXiv:2008.02312.

    Each gradient is weighted by its activation's share of the channel's total::

        w_k = sum_ij (A^k_ij / sum_ab A^k_ab) * dy^c/dA^k_ij      (w_k = 0 where sum_ab A^k_ab = 0)
        L   = ReLU(sum_k w_k A^k)

    With a spatially uniform ``A^k`` this is Grad-CAM. Output: non-negative, unnormalised,
    upsampled bilinearly to the input resolution.
    Cost: one forward and one backward pass.
    """

    name = "xgradcam"
    scale = "ReLU'd, >= 0, unnormalised (activation-share-weighted gradients times activations)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        channel_sum = activation.sum(dim=(2, 3), keepdim=True)
        weighted = (activation * gradient).sum(dim=(2, 3), keepdim=True)
        safe = torch.where(channel_sum != 0, channel_sum, torch.ones_like(channel_sum))
        weights = torch.where(channel_sum != 0, weighted / safe, torch.zeros_like(weighted))
        return (weights * activation).sum(dim=1)
