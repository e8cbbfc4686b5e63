"""Eigen-Grad-CAM."""

from __future__ import annotations

from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM
from xaikit_gradcam.projection import first_component


class EigenGradCAM(GradientCAM):
    """Eigen-Grad-CAM: first principal component of gradient times activation.

    pytorch-grad-cam's ``EigenGradCAM`` (github.com/jacobgil/pytorch-grad-cam): Eigen-CAM
    (Muhammad and Yeasin 2020, arXiv:2008.00299) applied to ``M = dy^c/dA * A`` (elementwise)
    instead of ``A``, so that the map depends on the class. For each image, ``M`` ``[K, h, w]``
    is read as ``h w`` points in ``R^K``, centred per channel (``X``), and::

        X = U S V^T,    L = ReLU(X v_1)

    The sign of ``v_1`` is fixed so that ``X v_1`` correlates positively with ``sum_k M^k``
    (HiResCAM's map before its ReLU), see :mod:`xaikit_gradcam.projection`; pytorch-grad-cam
    keeps LAPACK's arbitrary sign.

    Sign and scale: non-negative, unnormalised (logit units along the first principal
    component), upsampled bilinearly to the input resolution. Cost: one forward and one
    backward pass, and one ``h w x K`` SVD per image.
    """

    name = "eigengradcam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (gradient x activation along its first principal component)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return first_component(gradient * activation)
