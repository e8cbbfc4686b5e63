"""Element-wise Grad-CAM."""

from __future__ import annotations

from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class GradCAMElementWise(GradientCAM):
    """Element-wise Grad-CAM: the positive part of each gradient-activation product, summed.

    pytorch-grad-cam's ``GradCAMElementWise`` (Gildenblat and contributors, 2021,
    github.com/jacobgil/pytorch-grad-cam), a variant of HiResCAM (Draelos and Carin 2020,
    arXiv:2011.08891) that clips every product before the channel sum instead of after it::

        L = sum_k ReLU(dy^c/dA^k * A^k)                 (* is elementwise)

    A channel that speaks against the class at a location cannot cancel another that speaks
    for it there. Sign and scale: non-negative, unnormalised (units of the logit per location),
    upsampled bilinearly to the input resolution. Cost: one forward and one backward pass.
    """

    name = "gradcam-elementwise"
    class_discriminative = True
    scale = "ReLU'd per channel then summed, >= 0, unnormalised (logit units)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return (gradient * activation).clamp_min(0).sum(dim=1)
