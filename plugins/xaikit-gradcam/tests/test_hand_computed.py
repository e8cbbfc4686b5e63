"""CAM methods on 2x2 networks whose gradients, scores and maps are worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from xaikit_gradcam import (
    CAM,
    FEM,
    AblationCAM,
    EigenCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)

from xaikit import NotApplicableError

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


def run(method_cls: type, images: list[Tensor], targets: list[int], **options) -> Tensor:
    x = torch.stack(images)[:, None]
    return method_cls(HandNet(), **options)(x, targets)


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


def test_gradcam_elementwise_hand_computed():
    # class 0: every product V0k * A^k is >= 0: HiResCAM's [[0, 4], [3, 6]]
    # class 1: -A^0 <= 0 is clipped per location; V11 * A^1 = [[0, 0], [0, 2]] stays
    # (HiResCAM sums first, -3 + 2 < 0, and gives 0 there)
    maps = run(GradCAMElementWise, [X1, X1], [0, 1])
    expected = torch.tensor([[[0.0, 4.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 2.0]]])
    torch.testing.assert_close(maps, expected)


def test_smoothgradcam_plus_plus_on_a_linear_network_is_gradcam_plus_plus():
    # the gradients of a linear network are the same at every noisy input: the averages of
    # g, g^2, g^3 are g, g^2, g^3, and the map is Grad-CAM++'s hand-computed one
    maps = run(SmoothGradCAMPlusPlus, [X1], [0], num_samples=3, std=1.0)
    torch.testing.assert_close(maps, (15 / 56 * X1 + 1 / 8 * (5 - X1))[None])


def test_ablationcam_hand_computed():
    # zeroing channel k removes sum_ij V[c, k] A^k from the logit y_c = sum_k sum_ij V[c, k] A^k
    # class 0 on X1: drops (0 + 2*3, 4 + 3) = (6, 7), y_0 = 13: L = (6 A^0 + 7 A^1) / 13
    # class 1 on X1: drops (-(0+1+2+3), 1*2) = (-6, 2), y_1 = -4, |y_1| = 4: w = (-3/2, 1/2),
    #   L = ReLU(-3/2 X1 + 1/2 (5 - X1)) = ReLU(5/2 - 2 X1) (the paper's y_1 would flip it)
    maps = run(AblationCAM, [X1, X1], [0, 1])
    expected = torch.stack([(6 * X1 + 7 * (5 - X1)) / 13, (2.5 - 2 * X1).clamp_min(0)])
    torch.testing.assert_close(maps, expected)


def test_finercam_hand_computed():
    # two classes: the one rival is the other class, softmax over it is 1, s = y_c - alpha y_j
    # class 0 vs 1, alpha = 1: g = V0 - V1; w0 = mean [[2, 1], [1, 3]] = 7/4,
    #   w1 = mean [[0, 1], [1, -1]] = 1/4: L = 7/4 X1 + 1/4 (5 - X1)
    # alpha = 1/2: w0 = mean(V00 - V10 / 2) = 3/4 + 1/2, w1 = mean(V01 - V11 / 2) = 1/2 - 1/8
    maps = run(FinerCAM, [X1], [0])
    torch.testing.assert_close(maps, (7 / 4 * X1 + 1 / 4 * (5 - X1))[None])
    half = run(FinerCAM, [X1], [0], alpha=0.5)
    torch.testing.assert_close(half, (5 / 4 * X1 + 3 / 8 * (5 - X1))[None])


def test_fem_hand_computed():
    # X1: A^0 = [0, 1, 2, 3] and A^1 = [5, 4, 3, 2]: mean 1.5 and 3.5, population std sqrt(5)/2
    # k = 1: thresholds 2.62 and 4.62: one location each (3 and 5), w = (1/4, 1/4): L = 5/4
    # k = 0: above the mean: two locations each, w = (1/2, 1/2): L = 5/2
    torch.testing.assert_close(run(FEM, [X1], [0], k=1.0), torch.full((1, 2, 2), 1.25))
    torch.testing.assert_close(run(FEM, [X1], [1], k=0.0), torch.full((1, 2, 2), 2.5))
    assert bool((run(FEM, [X1], [0]) == 0).all())  # k = 2: no location is a 2-sigma outlier


def test_fullgrad_hand_computed():
    # y_0 = sum V0 * conv(x) with conv = (x, 5 - x): dy_0/dx = V00 - V01 = [[1, -1], [-1, 2]]
    # input term |x * dy/dx| on X1 = [[0, 1], [2, 6]], normalised by its max 6
    # conv bias (0, 5): |V0k * b_k| = 0 on channel 0, 5 * V01 = [[0, 5], [5, 0]] on channel 1;
    #   normalised over both channels by 5 and summed over channels: [[0, 1], [1, 0]]
    maps = run(FullGrad, [X1], [0])
    expected = torch.tensor([[0.0, 1 / 6], [1 / 3, 1.0]]) + torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(maps, expected[None])
    torch.testing.assert_close(run(FullGrad, [X1], [0], per_channel=True), expected[None])


class QuadraticNet(HandNet):
    """HandNet plus a square: y^c = sum_kij V[c, k] A^k_ij + (sum_ij A^0_ij)^2 / 2, so that
    dy^c/dA^0 = V[c, 0] + q (q = sum_ij A^0_ij) and (d^2 y^c / dA^2) A = q on channel 0."""

    def forward(self, x: Tensor) -> Tensor:
        a = self.conv(x)
        q = a[:, 0].sum(dim=(1, 2))
        return self.head(a.flatten(1)) + (q * q / 2)[:, None]


def test_shapleycam_hand_computed():
    # X1: q = 6. Channel 0: g = V00 + 6, Hv = 6: w0 = mean(V00 + 6 - 6/2) = 3/4 + 3 = 15/4;
    # channel 1: g = V01, Hv = 0: w1 = 1/2. L = 15/4 X1 + 1/2 (5 - X1) (Grad-CAM: w0 = 27/4)
    x = X1[None, None]
    maps = ShapleyCAM(QuadraticNet())(x, [0])
    torch.testing.assert_close(maps, (15 / 4 * X1 + 1 / 2 * (5 - X1))[None])
    gradcam = GradCAM(QuadraticNet())(x, [0])
    torch.testing.assert_close(gradcam, (27 / 4 * X1 + 1 / 2 * (5 - X1))[None])


def test_shapleycam_is_gradcam_on_a_linear_network():
    torch.testing.assert_close(run(ShapleyCAM, [X1, X2], [0, 1]), run(GradCAM, [X1, X2], [0, 1]))


class LineNet(nn.Module):
    """A 1x1 conv with A^1 = 2 A^0 (the points (A^0, A^1) lie on a line), then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.head = nn.Linear(8, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1))
        self.xaikit_target_layer = "conv"

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(x).flatten(1))


def test_eigencam_hand_computed():
    # x = [[0, 1], [2, 5]]: centred A^0 = [-2, -1, 0, 3], A^1 = 2 A^0: the first principal
    # direction is (1, 2) / sqrt(5), each location's coordinate sqrt(5) * centred A^0; its sign
    # follows A^0 + A^1 = 3 A^0 (positive correlation), and the ReLU keeps the 3
    x = torch.tensor([[0.0, 1.0], [2.0, 5.0]])[None, None]
    expected = 5**0.5 * torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(EigenCAM(LineNet())(x, 0), expected[None])
    torch.testing.assert_close(EigenCAM(LineNet())(x, 1), expected[None])  # class-agnostic


class PooledNet(nn.Module):
    """A 1x1 conv (A^0 = x, A^1 = 5 - x), global average pooling, one linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 5.0]))
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5]]))
            self.fc.bias.copy_(torch.tensor([0.5, -1.0]))
        self.xaikit_target_layer = "conv"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_cam_hand_computed():
    # class 0: A^0 + 2 A^1 = 10 - X1 = [[10, 9], [8, 7]]: mean 8.5, + bias 0.5 = 9 = y_0
    # class 1: -A^0 + A^1 / 2 = 5/2 - 3/2 X1 = [[2.5, 1], [-0.5, -2]]: signed
    model = PooledNet()
    x = torch.stack([X1, X1])[:, None]
    maps = CAM(model)(x, [0, 1])
    torch.testing.assert_close(maps, torch.stack([10 - X1, 2.5 - 1.5 * X1]))
    logits = model(x).detach()
    torch.testing.assert_close(maps.mean(dim=(1, 2)) + model.fc.bias.detach(), logits.diagonal())


def test_cam_does_not_apply_to_a_flattening_head():
    with pytest.raises(NotApplicableError, match="cam needs"):
        CAM(HandNet())


@pytest.mark.parametrize(
    "method_cls",
    [GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, GradCAMElementWise, ShapleyCAM,
     FinerCAM, SmoothGradCAMPlusPlus, EigenCAM, FEM, AblationCAM],
)
def test_a_layer_without_spatial_output_is_a_user_error(method_cls):
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match="head"):
        method_cls(HandNet(), layer="head")(torch.stack([X1])[:, None], 0)
