"""KPCA-CAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.gradient_cam import ActivationCAM
from xaikit_gradcam.projection import KERNELS, kernel_first_component


class KPCACAM(ActivationCAM):
    """KPCA-CAM: the layer's activations projected on their first kernel principal component.

    Karmani, Sivakaran, Prasad, Ali, Yang, Tang, "KPCA-CAM: Visual Explainability of Deep
    Computer Vision Models using Kernel PCA", 2024, arXiv:2410.00267; as pytorch-grad-cam's
    ``KPCA_CAM``.
    Eigen-CAM with a kernel: for each image the activation ``A`` ``[K, h, w]`` is read as
    ``n = h w`` points ``x_i`` in ``R^K``, centred per channel, and (scikit-learn's
    ``KernelPCA(n_components=1).fit_transform``)::

        G_ij = kappa(x_i, x_j)                                      Gram matrix, n x n
        G_c  = G - 1G/n - G1/n + 1G1/n^2                           centred in feature space
        lambda, v = largest eigenvalue of G_c and its unit eigenvector
        L    = ReLU(sqrt(lambda) v)                                 each location's coordinate

    ``kappa`` (scikit-learn's formulas, ``gamma`` default ``1 / K``): ``"sigmoid"`` (default, as
    pytorch-grad-cam) ``tanh(gamma <x, y> + coef0)``; ``"rbf"`` ``exp(-gamma |x - y|^2)``;
    ``"poly"`` ``(gamma <x, y> + coef0)^degree``; ``"cosine"``; ``"linear"`` ``<x, y>``, which
    makes this Eigen-CAM. The component's sign is fixed so that it correlates positively with
    ``sum_k A^k`` (scikit-learn instead makes its largest absolute entry positive), see
    :mod:`xaikit_gradcam.projection`.

    Class-agnostic (no gradient, the target class is not used). Sign and scale: non-negative,
    unnormalised (coordinates in the kernel's feature space), upsampled bilinearly to the input
    resolution. Cost: one forward pass, and per image an ``n x n`` Gram matrix and its
    eigendecomposition, ``O(n^3)`` with ``n = h w`` (an 8x8 layer: 64 x 64).
    """

    name = "kpca-cam"
    class_discriminative = False
    scale = "ReLU'd, >= 0, unnormalised (coordinate on the first kernel principal component)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        kernel: str = "sigmoid",
        gamma: float | None = None,
        degree: int = 3,
        coef0: float = 1.0,
    ) -> None:
        """Args:
            model: The classifier.
            layer: Module name of the layer to explain; default: the model's target layer.
            kernel: ``"sigmoid"``, ``"rbf"``, ``"poly"``, ``"cosine"`` or ``"linear"``.
            gamma: Kernel coefficient (``sigmoid``, ``rbf``, ``poly``); default ``1 / channels``.
            degree: Degree of the ``poly`` kernel.
            coef0: Constant term of the ``sigmoid`` and ``poly`` kernels.
        """
        super().__init__(model, layer)
        if kernel not in KERNELS:
            raise XaikitError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        if gamma is not None and not gamma > 0:
            raise XaikitError(f"gamma must be > 0, got {gamma}")
        if degree < 1:
            raise XaikitError(f"degree must be >= 1, got {degree}")
        self.kernel, self.gamma, self.degree, self.coef0 = kernel, gamma, degree, float(coef0)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, _logits = self.activation_and_logits(x)
        with torch.no_grad():
            projection = kernel_first_component(
                activation, self.kernel, self.gamma, self.degree, self.coef0
            )
            return projection.clamp_min(0)
