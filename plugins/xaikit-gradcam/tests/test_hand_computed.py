"""Each gradient CAM on a 2x2 network whose gradients and maps are worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from xaikit_gradcam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

# The layer's output for an image x (1 channel, 2x2) is A = conv(x) with A^0 = x, A^1 = 5 - x.
# The logits are y^c = sum_kij V[c, k, i, j] A^k_ij, so dy^c/dA = V[c] exactly.
V = torch.tensor(
    [
        [[[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [1.0, 0.0]]],  # class 0
        [[[-1.0, -1.0], [-1.0, -1.0]], [[0.0, 0.0], [0.0, 1.0]]],  # class 1
    ]
)
X1 = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # A^0 = [[0, 1], [2, 3]], A^1 = [[5, 4], [3, 2]]
X2 = torch.ones(2, 2)  # A^0 = 1, A^1 = 4 everywhere


class HandNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1)
        self.head = nn.Linear(8, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 5.0]))
            self.head.weight.copy_(V.reshape(2, 8))
            self.head.bias.zero_()
        self.xaikit_target_layer = "conv"

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(x).flatten(1))


def run(method_cls: type, images: list[Tensor], targets: list[int]) -> Tensor:
    x = torch.stack(images)[:, None]
    return method_cls(HandNet())(x, targets)


def test_gradcam_hand_computed():
    # class 0: w = (mean V00, mean V01) = (3/4, 1/2); L = 3/4 A^0 + 1/2 A^1
    # class 1: w = (-1, 1/4); on X1, -A^0 + A^1/4 = [[1.25, 0], [-1.25, -2.5]] -> ReLU
    maps = run(GradCAM, [X1, X1, X2], [0, 1, 0])
    expected = torch.tensor(
        [
            [[2.5, 2.75], [3.0, 3.25]],
            [[1.25, 0.0], [0.0, 0.0]],
            [[2.75, 2.75], [2.75, 2.75]],
        ]
    )
    torch.testing.assert_close(maps, expected)


def test_hirescam_hand_computed():
    # class 0: sum_k V0k * A^k = [[0*1 + 5*0, 1*0 + 4*1], [2*0 + 3*1, 3*2 + 2*0]]
    # class 1: -A^0 + V11 * A^1 = [[0, -1], [-2, -3 + 2]] -> all clipped by the ReLU
    maps = run(HiResCAM, [X1, X1], [0, 1])
    expected = torch.tensor([[[0.0, 4.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(maps, expected)


def test_layercam_hand_computed():
    # class 1: ReLU(V10) = 0, ReLU(V11) * A^1 = [[0, 0], [0, 1 * 2]]
    maps = run(LayerCAM, [X1, X1], [0, 1])
    expected = torch.tensor([[[0.0, 4.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 2.0]]])
    torch.testing.assert_close(maps, expected)


def test_xgradcam_hand_computed():
    # class 0: w0 = sum(A^0 V00) / sum(A^0) = 6 / 6 = 1; w1 = sum(A^1 V01) / sum(A^1) = 7 / 14
    maps = run(XGradCAM, [X1], [0])
    expected = X1 + 0.5 * (5 - X1)
    torch.testing.assert_close(maps, expected[None])


def test_gradcam_plus_plus_hand_computed():
    # class 0, channel 0: sum A^0 = 6, g = V00 = [[1, 0], [0, 2]]
    #   alpha = g^2 / (2 g^2 + 6 g^3): 1/8 at (0, 0), 4/56 at (1, 1), 0 where g = 0
    #   w0 = 1/8 * 1 + 4/56 * 2 = 15/56
    # channel 1: sum A^1 = 14, g = V01 = 1 at (0, 1) and (1, 0): alpha = 1/16, w1 = 2/16
    maps = run(GradCAMPlusPlus, [X1], [0])
    expected = 15 / 56 * X1 + 1 / 8 * (5 - X1)
    torch.testing.assert_close(maps, expected[None])


@pytest.mark.parametrize("method_cls", [GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM])
def test_a_layer_without_spatial_output_is_a_user_error(method_cls):
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match="head"):
        method_cls(HandNet(), layer="head")(torch.stack([X1])[:, None], 0)
