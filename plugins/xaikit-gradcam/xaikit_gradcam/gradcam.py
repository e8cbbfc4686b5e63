"""Grad-CAM."""

from __future__ import annotations

from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class GradCAM(GradientCAM):
    """Grad-CAM: gradient-weighted class activation mapping.

    Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations from
    Deep Networks via Gradient-based Localization", ICCV 2017, arXiv:1610.02391.

    With ``A^k`` the k-th channel of the layer's output and ``y^c`` the target logit::

        w_k = 1/(h w) * sum_ij dy^c/dA^k_ij          (global-average-pooled gradient)
        L   = ReLU(sum_k w_k A^k)

    Output: non-negative, unnormalised (same units as ``A`` times the logit's gradient),
    upsampled bilinearly from ``h x w`` to the input resolution.
    Cost: one forward and one backward pass.
    """

    name = "gradcam"
    scale = "ReLU'd, >= 0, unnormalised (logit-gradient-weighted activations)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        return (weights * activation).sum(dim=1)
