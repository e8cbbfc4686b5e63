"""ROAD (xaikit.metrics.road) on a model whose logit depends only on a known region."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from xaikit.errors import XaikitError
from xaikit.metrics import ROAD_PERCENTILES, pixel_ranks, road
from xaikit.metrics.road import removal_masks

SIDE = 16


class PatchModel(nn.Module):
    """Two classes whose logits are ``+-4 * mean`` of the top-left 4x4 patch (all channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([self.scale * s, -self.scale * s], dim=1)


def patch_images(n: int = 6) -> Tensor:
    """A bright patch where the model looks, small noise elsewhere."""
    x = 0.1 * torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    x[:, :, :4, :4] += 1.0
    return x


def patch_map(n: int = 6) -> Tensor:
    maps = torch.zeros(n, SIDE, SIDE)
    maps[:, :4, :4] = 1.0
    return maps


def test_map_of_the_evidence_beats_its_reverse() -> None:
    model, x, good = PatchModel(), patch_images(), patch_map()
    right = road(model, x, good, 0)
    reverse = road(model, x, -good, 0)
    # MoRF: removing the patch first kills the evidence (p -> 1/2); its reverse keeps it
    assert float(right["morf"].max()) < float(reverse["morf"].min())
    assert torch.all(right["morf_curve"] < 0.6)
    assert torch.all(reverse["morf_curve"] > 0.95)
    # LeRF mirrors it, and the combined score separates them
    assert float(right["lerf"].min()) > float(reverse["lerf"].max())
    assert torch.all(right["combined"] > 0.15) and torch.all(reverse["combined"] < -0.15)
    assert torch.allclose(right["combined"], (right["lerf"] - right["morf"]) / 2)
    assert torch.all(right["probability"] > 0.95)
    assert right["converged"] and right["iterations"] > 0


def test_shapes_areas_and_batch_size_independence() -> None:
    model, x, maps = PatchModel(), patch_images(5), torch.randn(5, SIDE, SIDE)
    a = road(model, x, maps, 0, batch_size=7, seed=3)
    b = road(model, x, maps, 0, batch_size=1000, seed=3)
    assert a["morf_curve"].shape == (5, len(ROAD_PERCENTILES)) == a["lerf_curve"].shape
    assert a["percentiles"].tolist() == [float(p) for p in ROAD_PERCENTILES]
    assert torch.allclose(a["morf"], a["morf_curve"].mean(dim=1))
    for key in ("morf_curve", "lerf_curve"):
        assert torch.allclose(a[key], b[key], atol=1e-5)
    c = road(model, x, maps, 0, seed=4)
    assert not torch.allclose(a["morf_curve"], c["morf_curve"])


def test_noise_scale_follows_data_std() -> None:
    model, x, maps = PatchModel(), patch_images(3), patch_map(3)
    quiet = road(model, x, maps, 0, noise_std=0.0)
    same = road(model, x, maps, 0, noise_std=0.01, data_std=[1e9, 1e9, 1e9])
    assert torch.allclose(quiet["morf_curve"], same["morf_curve"], atol=1e-5)


def test_removal_masks_count_and_side() -> None:
    maps = torch.arange(16.0).view(1, 4, 4)
    ranks = pixel_ranks(maps)
    morf = removal_masks(ranks, torch.tensor([3]), torch.tensor([False]), (4, 4))
    lerf = removal_masks(ranks, torch.tensor([3]), torch.tensor([True]), (4, 4))
    assert morf.flatten().nonzero().flatten().tolist() == [13, 14, 15]  # largest values
    assert lerf.flatten().nonzero().flatten().tolist() == [0, 1, 2]


def test_ties_are_broken_at_random_not_by_position() -> None:
    ranks = pixel_ranks(torch.zeros(1, 8, 8), seed=0)
    first = ranks[0].argsort()[:16]
    assert not torch.equal(first.sort().values, torch.arange(16))
    assert torch.equal(ranks, pixel_ranks(torch.zeros(1, 8, 8), seed=0))


def test_bad_percentiles() -> None:
    with pytest.raises(XaikitError, match="percentiles"):
        road(PatchModel(), patch_images(1), patch_map(1), 0, percentiles=(0, 50))
