"""Eigen-CAM."""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit_gradcam.gradient_cam import ActivationCAM
from xaikit_gradcam.projection import first_component


class EigenCAM(ActivationCAM):
    """Eigen-CAM: the layer's activations projected on their first principal component.

    Muhammad, Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020,
    arXiv:2008.00299. As in pytorch-grad-cam's ``EigenCAM``: for each image, the activation
    ``A`` ``[K, h, w]`` is read as ``h w`` points in ``R^K``, centred per channel (``X``), and::

        X = U S V^T                   (SVD)
        L = ReLU(X v_1)               (v_1: the first right singular vector)

    The sign of ``v_1`` is fixed so that ``X v_1`` correlates positively with ``sum_k A^k``
    (see :mod:`xaikit_gradcam.projection`); pytorch-grad-cam keeps whichever sign LAPACK
    returns, so its map can be the negative of this one (and then ReLU'd away).

    Class-agnostic: no gradient, the target class is not used (``class_discriminative =
    False``); it shows the dominant pattern of the layer's features. Sign and scale:
    non-negative, unnormalised (activation units: ``|X v_1|`` at a location is the length of
    its centred feature vector along ``v_1``), upsampled bilinearly to the input resolution.
    Cost: one forward pass and one ``h w x K`` SVD per image.
    """

    name = "eigencam"
    class_discriminative = False
    scale = "ReLU'd, >= 0, unnormalised (activation units along the first principal component)"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, _logits = self.activation_and_logits(x)
        with torch.no_grad():
            return first_component(activation).clamp_min(0)
