"""Grad-CAM++."""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++: pixel-weighted gradients with a closed-form alpha.

    Chattopadhyay, Sarkar, Howlader, Balasubramanian, "Grad-CAM++: Improved Visual Explanations
    for Deep Convolutional Networks", WACV 2018, arXiv:1710.11063.

    The paper explains ``Y^c = exp(S^c)`` (``S^c`` the target logit). For a network that is
    piecewise linear in ``A`` (ReLU, max-pool, linear layers), ``d2 S/dA2 = 0``, so with
    ``g = dS^c/dA``: ``dY/dA = exp(S) g``, ``d2Y/dA2 = exp(S) g^2``, ``d3Y/dA3 = exp(S) g^3``,
    and the paper's Eq. 19 becomes (``exp(S)`` cancels)::

        alpha^k_ij = g^2_ij / (2 g^2_ij + sum_ab A^k_ab * g^3_ij)      (0 where the denominator is 0)
        w_k        = sum_ij alpha^k_ij * ReLU(g_ij)
        L          = ReLU(sum_k w_k A^k)

    The weights of the paper are ``exp(S^c)`` times these: that factor is one positive number
    per image, so it only rescales the map; it is left out so the scale is comparable to
    Grad-CAM's and large logits cannot overflow.

    Output: non-negative, unnormalised, upsampled bilinearly to the input resolution.
    Cost: one forward and one backward pass.
    """

    name = "gradcam++"
    scale = "ReLU'd, >= 0, unnormalised (the paper's map divided by exp(target logit))"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        weights = plus_plus_weights(activation, gradient, gradient.pow(2), gradient.pow(3))
        return (weights * activation).sum(dim=1)


def plus_plus_weights(activation: Tensor, gradient: Tensor, g2: Tensor, g3: Tensor) -> Tensor:
    """Grad-CAM++ channel weights ``[B, K, 1, 1]`` from the activation ``A``, the gradient ``g``
    and its second and third powers ``g2``, ``g3`` (or their averages, Smooth Grad-CAM++)::

        alpha = g2 / (2 g2 + sum_ab A_ab * g3)     (0 where the denominator is 0)
        w_k   = sum_ij alpha_ij * ReLU(g_ij)
    """
    activation_sum = activation.sum(dim=(2, 3), keepdim=True)
    denominator = 2 * g2 + activation_sum * g3
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
    return (alpha * gradient.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
