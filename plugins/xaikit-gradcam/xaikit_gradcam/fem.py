"""FEM, the feature explanation method."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.gradient_cam import ActivationCAM


class FEM(ActivationCAM):
    """FEM: channels weighted by the share of their locations that are k-sigma outliers.

    K. A. A. Fuad (Kazi Ahmed Asif Fuad), Martin, Giot, Bourqui, Benois-Pineau, Zemmari,
    "Features Understanding in 3D CNNs
    for Actions Recognition in Video", IPTA 2020 (hal-02963298), the "feature explanation
    method", also called "fast explainable map"; as pytorch-grad-cam's ``FEM``. For each image
    and channel ``k`` of the layer's output ``A`` (``mu_k``, ``sigma_k`` the mean and population
    standard deviation of ``A^k`` over the ``h w`` locations)::

        w_k = (1 / h w) sum_ij [A^k_ij > mu_k + k_sigma * sigma_k]     (share of outliers)
        L   = ReLU(sum_k w_k A^k)

    Class-agnostic (no gradient, the target class is not used). Sign and scale: non-negative,
    unnormalised (activation units), upsampled bilinearly to the input resolution. Cost: one
    forward pass.
    """

    name = "fem"
    class_discriminative = False
    scale = "ReLU'd, >= 0, unnormalised (activations weighted by their share of k-sigma outliers)"

    def __init__(self, model: nn.Module, layer: str | None = None, *, k: float = 2.0) -> None:
        """Args:
            model: The classifier.
            layer: Module name of the layer to explain; default: the model's target layer.
            k: The threshold, in standard deviations above each channel's mean.
        """
        super().__init__(model, layer)
        if math.isnan(k):
            raise XaikitError("k must be a number, got nan")
        self.k = float(k)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, _logits = self.activation_and_logits(x)
        with torch.no_grad():
            mean = activation.mean(dim=(2, 3), keepdim=True)
            std = activation.std(dim=(2, 3), keepdim=True, correction=0)
            weights = (activation > mean + self.k * std).float().mean(dim=(2, 3), keepdim=True)
            return (weights * activation).sum(dim=1).clamp_min(0)
