"""Tests of RISE: the paper's masks, the saliency formula, seeding, batching, localisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from xaikit_perturbation import ALL_METHODS, Rise

from xaikit import XaikitError
from xaikit.registry import attribution_entries

H, W = 16, 20


class RegionNet(nn.Module):
    """Two classes; class 0's logit is ``gain`` times the mean of the region, class 1's is 0."""

    def __init__(self, rows: slice, cols: slice, gain: float = 4.0) -> None:
        super().__init__()
        self.rows, self.cols, self.gain = rows, cols, gain
        self.dummy = nn.Parameter(torch.zeros(()))  # a device to live on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        region = x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3)) * self.gain + self.dummy
        return torch.stack([region, torch.zeros_like(region)], dim=1)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(1))


def test_plugin_registers_rise(plugin_manager) -> None:
    entries = attribution_entries(plugin_manager)
    for method in ALL_METHODS:
        assert entries[method.name].obj is method
        assert entries[method.name].plugin == "perturbation"


def test_masks_are_shifted_upsampled_grids_with_mean_p() -> None:
    method = Rise(nn.Identity(), n_masks=4000, cells=4, p_keep=0.3, seed=1)
    masks = method.masks(H, W)
    assert masks.shape == (4000, H, W)
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1
    assert abs(float(masks.mean()) - 0.3) < 0.01
    # cells of ceil(16/4)=4 by ceil(20/4)=5 pixels; the shifts move the cell borders
    cell_h, cell_w = 4, 5
    grid = (torch.rand((4000, 1, 4, 4), generator=torch.Generator().manual_seed(1)) < 0.3).float()
    up = F.interpolate(grid, size=(5 * cell_h, 5 * cell_w), mode="bilinear", align_corners=False)
    up = up[:, 0]
    generator = torch.Generator().manual_seed(1)
    torch.rand((4000, 1, 4, 4), generator=generator)
    dy = torch.randint(0, cell_h, (4000,), generator=generator)
    dx = torch.randint(0, cell_w, (4000,), generator=generator)
    for i in (0, 1, 2, 3999):
        expected = up[i, dy[i] : dy[i] + H, dx[i] : dx[i] + W]
        torch.testing.assert_close(masks[i], expected)
    assert len(set(dy.tolist())) == cell_h and len(set(dx.tolist())) == cell_w


def test_saliency_is_the_papers_sum_over_masks(cnn, images) -> None:
    method = Rise(cnn, n_masks=50, cells=4, batch_size=16, seed=3)
    target = torch.tensor([0, 4, 2])
    maps = method(images, target)
    masks = method.masks(H, W)
    expected = torch.zeros(3, H, W)
    with torch.no_grad():
        for mask in masks:
            p = cnn(images * mask).softmax(dim=1)[torch.arange(3), target]
            expected += p[:, None, None] * mask
    expected /= 50 * 0.5
    torch.testing.assert_close(maps, expected, atol=1e-6, rtol=1e-5)


def test_keeping_every_cell_gives_the_class_probability_everywhere(cnn, images) -> None:
    maps = Rise(cnn, n_masks=7, p_keep=1.0)(images, [1, 2, 3])
    with torch.no_grad():
        p = cnn(images).softmax(dim=1)[torch.arange(3), torch.tensor([1, 2, 3])]
    torch.testing.assert_close(maps, p[:, None, None].expand(3, H, W), atol=1e-6, rtol=1e-6)


def test_the_region_the_logit_depends_on_gets_the_highest_saliency() -> None:
    rows, cols = slice(8, 12), slice(12, 16)
    model = RegionNet(rows, cols).eval()
    x = torch.ones(2, 3, H, W)
    x[1] = 0.5 + torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))  # positive
    method = Rise(model, n_masks=2000, cells=4)
    maps = method(x, 0)
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[rows, cols] = True
    for m in maps:
        peak = divmod(int(m.argmax()), W)
        assert inside[peak], f"peak at {peak}, outside the region"
        assert float(m[inside].mean()) > float(m[~inside].mean()) + 0.05
    # class 1's probability is 1 - p_0: its map is lowest on the region
    other = method(x, 1)
    for m in other:
        assert inside[divmod(int(m.argmin()), W)]


def test_a_seed_repeats_and_leaves_the_global_rng_alone(cnn, images) -> None:
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = Rise(cnn, n_masks=64, seed=9)(images, 0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(77)
    assert torch.equal(Rise(cnn, n_masks=64, seed=9)(images, 0), first)
    assert not torch.equal(Rise(cnn, n_masks=64, seed=10)(images, 0), first)
    unseeded = Rise(cnn, n_masks=64, seed=None)
    assert not torch.equal(unseeded(images, 0), unseeded(images, 0))


def test_batching_does_not_change_the_maps(cnn, images) -> None:
    big = Rise(cnn, n_masks=100, batch_size=10_000)(images, [0, 1, 2])
    small = Rise(cnn, n_masks=100, batch_size=7)(images, [0, 1, 2])  # 2 masks a pass, 50 passes
    torch.testing.assert_close(small, big, atol=1e-6, rtol=1e-5)
    alone = Rise(cnn, n_masks=100, batch_size=7)(images[1:2], 1)
    torch.testing.assert_close(alone[0], big[1], atol=1e-6, rtol=1e-5)


def test_the_maps_depend_on_the_class(cnn, images) -> None:
    method = Rise(cnn, n_masks=200)
    assert not torch.allclose(method(images, 0), method(images, 1))
    assert Rise.class_discriminative and not Rise.signed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_masks": 0}, {"cells": 0}, {"p_keep": 0.0}, {"p_keep": 1.5}, {"batch_size": 0},
        {"seed": -1},
    ],
)
def test_bad_options_are_one_line_errors(cnn, kwargs) -> None:
    with pytest.raises(XaikitError) as info:
        Rise(cnn, **kwargs)
    assert "\n" not in str(info.value)


def test_non_divisible_sizes_and_tiny_images(cnn) -> None:
    x = torch.randn(2, 3, 5, 7)
    maps = Rise(cnn, n_masks=20, cells=8)(x, 0)
    assert maps.shape == (2, 5, 7) and bool(torch.isfinite(maps).all()) and bool((maps >= 0).all())
    assert math.isclose(float(Rise(cnn, n_masks=20).masks(5, 7).max()), 1.0, abs_tol=0.5)
