"""HiResCAM."""

from __future__ import annotations

from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class HiResCAM(GradientCAM):
    """HiResCAM: elementwise gradient times activation, summed over channels.

    Draelos, Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
    convolutional neural networks", 2020, arXiv:2011.08891.

    ::

        L = ReLU(sum_k dy^c/dA^k * A^k)                 (* is elementwise)

    For a network ending in global average pooling and one linear layer the gradient is
    constant over space and HiResCAM equals Grad-CAM. Output: non-negative, unnormalised,
    upsampled bilinearly to the input resolution.
    Cost: one forward and one backward pass.
    """

    name = "hirescam"
    scale = "ReLU'd, >= 0, unnormalised (gradient times activation summed over channels)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return (gradient * activation).sum(dim=1)
