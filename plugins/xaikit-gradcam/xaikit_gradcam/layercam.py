"""LayerCAM."""

from __future__ import annotations

from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM


class LayerCAM(GradientCAM):
    """LayerCAM: positive gradients as per-location weights.

    Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps
    for Localization", IEEE Transactions on Image Processing 30, 2021 (no arXiv version;
    doi:10.1109/TIP.2021.3089943).

    Each location of each channel gets its own weight, the positive part of its gradient::

        L = ReLU(sum_k ReLU(dy^c/dA^k) * A^k)           (* is elementwise)

    Where every gradient is positive this is HiResCAM. Output: non-negative, unnormalised,
    upsampled bilinearly to the input resolution.
    Cost: one forward and one backward pass.
    """

    name = "layercam"
    scale = "ReLU'd, >= 0, unnormalised (positive gradients times activations)"

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return (gradient.clamp_min(0) * activation).sum(dim=1)
