"""The controls: registration, shapes, per-image determinism, and each map against its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import Tensor, nn
from xaikit_baselines import CenterGaussian, RandomMap, SobelEdges
from xaikit_baselines.center import center_gaussian
from xaikit_baselines.random_map import random_low_resolution_maps
from xaikit_baselines.sobel import sobel_magnitude

import xaikit
from xaikit import NotApplicableError, upsample
from xaikit.registry import get_entry
from xaikit.testing import hooks_left
from xaikit.testing.nets import ContractNet, NoConvNet

NAMES = ["random", "sobel", "center"]
CLASSES = {"random": RandomMap, "sobel": SobelEdges, "center": CenterGaussian}
H, W = 16, 20  # not square, so a swapped height and width shows


def images(n: int, seed: int = 0, height: int = H, width: int = W) -> Tensor:
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


class StridedNet(nn.Module):
    """conv (``conv``, full resolution), then a stride-4 conv (``cam``, the default layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.cam = nn.Conv2d(4, 6, 4, stride=4)
        self.fc = nn.Linear(6, 5)
        self.xaikit_target_layer = "cam"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.cam(torch.relu(self.conv(x)))).mean(dim=(2, 3)))


# ---------------------------------------------------------------- registry and shapes


def test_the_registry_lists_the_three_controls_under_plugin_baselines(plugin_manager):
    listed = xaikit.list_attributions(plugin_manager)
    for name in NAMES:
        assert name in listed
        entry = get_entry("attribution", name, plugin_manager)
        assert entry.plugin == "baselines"
        assert entry.obj is CLASSES[name]
        assert "xaikit-baselines" in str(entry.dist)
        assert xaikit.get_attribution(name, plugin_manager).signed is False


@pytest.mark.parametrize("name", NAMES)
def test_maps_are_non_negative_float_maps_at_input_resolution(name):
    model = ContractNet()
    maps = CLASSES[name](model)(images(4), [0, 1, 2, 3])
    assert maps.shape == (4, H, W) and maps.dtype == torch.float32
    assert bool(torch.isfinite(maps).all()) and bool((maps >= 0).all())
    assert hooks_left(model) == []


def test_value_ranges():
    model = ContractNet()
    x = images(5)
    random_maps = RandomMap(model)(x)
    assert float(random_maps.min()) >= 0.0 and float(random_maps.max()) < 1.0
    center = CenterGaussian(model)(x)
    assert float(center.min()) > 0.0 and float(center.max()) <= 1.0


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_an_image_gets_the_same_map_in_any_batch_and_position(name):
    x = images(4)
    method = CLASSES[name](ContractNet())
    torch.manual_seed(1)
    maps = method(x)
    torch.manual_seed(2)  # the global RNG plays no part
    other_batch = torch.stack([images(1, seed=7)[0], x[2], images(1, seed=8)[0], x[0]])
    maps_other = method(other_batch, [4, 3, 2, 1])  # the target plays no part either
    torch.testing.assert_close(maps_other[1], maps[2], rtol=0, atol=0)
    torch.testing.assert_close(maps_other[3], maps[0], rtol=0, atol=0)
    torch.testing.assert_close(method(x[3:4])[0], maps[3], rtol=0, atol=0)


def test_random_is_the_same_across_instances_and_weights_and_changes_with_seed_and_image():
    x = images(3)
    torch.manual_seed(0)
    first = RandomMap(ContractNet())(x)
    torch.manual_seed(1)
    second = RandomMap(ContractNet())(x)  # other weights, same layer resolution
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(RandomMap(ContractNet(), seed=1)(x), first)
    assert not torch.allclose(first[0], first[1])
    nudged = x.clone()
    nudged[0, 0, 0, 0] += 1e-3
    assert not torch.allclose(RandomMap(ContractNet())(nudged)[0], first[0])


def test_random_does_not_advance_the_global_rng():
    method, x = RandomMap(ContractNet()), images(2)
    state = torch.get_rng_state()
    method(x)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- random: CAM-resolution structure


def upsampling_matrix(low: tuple[int, int], high: tuple[int, int]) -> Tensor:
    """``[H*W, h*w]``: column k is the bilinear upsampling of the k-th one-hot h x w map."""
    basis = torch.eye(low[0] * low[1], dtype=torch.float64).reshape(-1, *low)
    return upsample(basis, high).reshape(low[0] * low[1], -1).T


@pytest.mark.parametrize(
    ("model", "layer", "low"),
    [
        (ContractNet(), None, (8, 10)),
        (StridedNet(), None, (4, 5)),
        (ContractNet(), "features.2", (H, W)),
    ],
    ids=["contractnet-8x10", "strided-4x5", "full-resolution-layer"],
)
def test_random_is_the_bilinear_upsampling_of_a_map_at_the_layer_resolution(model, layer, low):
    x = images(3)
    maps = RandomMap(model, layer=layer)(x)
    # The map lies exactly in the span of the upsampled h x w maps: recover that h x w map.
    u = upsampling_matrix(low, (H, W))
    solution = torch.linalg.lstsq(u, maps.double().reshape(3, -1).T).solution  # [h*w, B]
    recovered = solution.T.reshape(3, *low)
    torch.testing.assert_close((u @ solution).T.reshape(3, H, W), maps.double(), rtol=0, atol=1e-6)
    assert float(recovered.min()) >= -1e-6 and float(recovered.max()) < 1.0
    # ... and it is the method's own low-resolution draw, upsampled like a CAM.
    low_maps = random_low_resolution_maps(x, low)
    torch.testing.assert_close(recovered.float(), low_maps, rtol=0, atol=1e-5)
    torch.testing.assert_close(maps, upsample(low_maps, (H, W)), rtol=0, atol=0)
    if low != (H, W):  # low-frequency: each map has rank at most h, unlike per-pixel noise
        assert all(int(torch.linalg.matrix_rank(m)) <= low[0] for m in maps)


def test_random_at_4x5_is_not_in_the_span_of_a_coarser_grid():
    maps = RandomMap(StridedNet())(images(2))
    u = upsampling_matrix((2, 2), (H, W))
    fit = u @ torch.linalg.lstsq(u, maps.double().reshape(2, -1).T).solution
    assert float((fit.T.reshape(2, H, W) - maps.double()).abs().max()) > 1e-2


def test_random_on_a_layer_without_a_spatial_output_is_a_one_line_error():
    model = NoConvNet(H, W)
    with pytest.raises(NotApplicableError):
        RandomMap(model)  # no Conv2d and no target layer
    method = RandomMap(model, layer="fc1")
    with pytest.raises(NotApplicableError, match="fc1") as info:
        method(images(2), [0, 1])
    assert "\n" not in str(info.value)
    assert hooks_left(model) == []


# ---------------------------------------------------------------- sobel


def scipy_sobel(x: Tensor) -> np.ndarray:
    """Per 2-D channel hypot(d/dy, d/dx) with scipy.ndimage.sobel (edge pixels repeated), summed.

    ``ndimage.sobel`` smooths along every other axis of its input, so it is called on each
    ``H x W`` slice; its ``mode="reflect"`` (d c b a | a b c d) repeats the edge pixel.
    """
    out = np.zeros((x.shape[0], x.shape[2], x.shape[3]))
    for b, image in enumerate(x.double().numpy()):
        for channel in image:
            gy = ndimage.sobel(channel, axis=0, mode="reflect")
            gx = ndimage.sobel(channel, axis=1, mode="reflect")
            out[b] += np.hypot(gx, gy)
    return out


def test_sobel_matches_scipy_on_random_images():
    x = images(3)
    maps = SobelEdges(ContractNet())(x)
    np.testing.assert_allclose(maps.numpy(), scipy_sobel(x), rtol=1e-5, atol=1e-5)


def test_sobel_of_a_vertical_edge_peaks_on_the_edge():
    x = torch.zeros(1, 3, H, W)
    x[..., W // 2 :] = 1.0  # a unit step between columns W/2 - 1 and W/2
    maps = SobelEdges(ContractNet())(x)[0]
    np.testing.assert_allclose(maps.numpy(), scipy_sobel(x)[0], atol=1e-6)
    edge = [W // 2 - 1, W // 2]
    torch.testing.assert_close(maps[:, edge], torch.full((H, 2), 12.0))  # 4 per channel
    assert float(maps.max()) == 12.0
    rest = [j for j in range(W) if j not in edge]
    assert float(maps[:, rest].abs().max()) == 0.0  # flat regions and the frame are no edge
    assert torch.equal(sobel_magnitude(x.transpose(2, 3))[0], maps.T)  # a horizontal edge too


# ---------------------------------------------------------------- center


def test_center_is_the_documented_gaussian():
    for height, width in [(H, W), (9, 9), (32, 32)]:
        sigma = min(height, width) / 4
        i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        expected = np.exp(
            -((i - (height - 1) / 2) ** 2 + (j - (width - 1) / 2) ** 2) / (2 * sigma**2)
        )
        np.testing.assert_allclose(center_gaussian(height, width).numpy(), expected, rtol=1e-6)


def test_center_is_symmetric_peaks_at_the_centre_and_is_the_same_for_every_image():
    maps = CenterGaussian(ContractNet())(images(3))
    m = maps[0]
    torch.testing.assert_close(m, m.flip(0))
    torch.testing.assert_close(m, m.flip(1))
    top = (m == m.max()).nonzero().tolist()
    assert sorted(top) == [
        [H // 2 - 1, W // 2 - 1],
        [H // 2 - 1, W // 2],
        [H // 2, W // 2 - 1],
        [H // 2, W // 2],
    ]
    odd = CenterGaussian(ContractNet())(images(1, height=9, width=9))[0]
    assert (odd == odd.max()).nonzero().tolist() == [[4, 4]] and float(odd[4, 4]) == 1.0
    torch.testing.assert_close(maps[1], m, rtol=0, atol=0)
    torch.testing.assert_close(maps[2], m, rtol=0, atol=0)
    assert CenterGaussian.image_independent


# ---------------------------------------------------------------- device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_maps_on_cuda_match_the_cpu(name):
    x = images(3)
    cpu = CLASSES[name](ContractNet())(x)
    model = ContractNet().cuda()
    maps = CLASSES[name](model)(x.cuda())
    assert maps.device.type == "cuda"
    torch.testing.assert_close(maps.cpu(), cpu, rtol=1e-5, atol=1e-5)
