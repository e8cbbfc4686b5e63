"""Fair deletion/insertion (xaikit.metrics.deletion) and smooth random references."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import Attribution
from xaikit.metrics import deletion_insertion, gaussian_blur, map_resolution, random_reference

SIDE = 16


class PatchModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([self.scale * s, -self.scale * s], dim=1)


class TwoConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        a = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc(F.relu(self.conv2(a)).mean(dim=(2, 3)))


class LayerMethod(Attribution):
    name = "test-layer"
    uses_layer = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        return x.mean(dim=1)


def images(n: int = 4) -> Tensor:
    x = 0.1 * torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    x[:, :, :4, :4] += 1.0
    return x


def test_curves_start_and_end_where_they_should() -> None:
    model, x = PatchModel(), images()
    maps = torch.rand(4, SIDE, SIDE)
    out = deletion_insertion(model, x, maps, 0, steps=8)
    p = torch.softmax(model(x), dim=1)[:, 0]
    p_mean = torch.softmax(model(torch.zeros_like(x)), dim=1)[:, 0]
    p_blur = torch.softmax(model(gaussian_blur(x, 2.0)), dim=1)[:, 0]
    for key in ("deletion", "deletion_random"):
        assert torch.allclose(out[f"{key}_curve"][:, 0], p, atol=1e-6)
        assert torch.allclose(out[f"{key}_curve"][:, -1], p_mean, atol=1e-6)
    for key in ("insertion", "insertion_random"):
        assert torch.allclose(out[f"{key}_curve"][:, 0], p_blur, atol=1e-6)
        assert torch.allclose(out[f"{key}_curve"][:, -1], p, atol=1e-6)


def test_insertion_is_not_the_reversed_deletion() -> None:
    """On a shared canvas insertion(map) == deletion of the reversed map at 1 - t; not any more."""
    model, x = PatchModel(), images()
    maps = torch.rand(4, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    fwd = deletion_insertion(model, x, maps, 0, steps=8)
    rev = deletion_insertion(model, x, -maps, 0, steps=8)
    lerf_deletion = rev["deletion_curve"].flip(-1)
    assert not torch.allclose(fwd["insertion_curve"], lerf_deletion, atol=1e-3)


def test_map_of_the_evidence_beats_its_reverse_and_the_reference() -> None:
    model, x = PatchModel(), images()
    good = torch.zeros(4, SIDE, SIDE)
    good[:, :4, :4] = 1
    a = deletion_insertion(model, x, good, 0)
    b = deletion_insertion(model, x, -good, 0)
    assert torch.all(a["deletion"] < b["deletion"]) and torch.all(a["insertion"] > b["insertion"])
    assert torch.all(a["deletion"] < a["deletion_random"])


def test_random_reference_is_seeded_and_smooth_at_its_resolution() -> None:
    coarse = random_reference((3, 32, 32), (4, 4), seed=1)
    assert coarse.shape == (3, 32, 32)
    assert torch.equal(coarse, random_reference((3, 32, 32), (4, 4), seed=1))
    assert not torch.equal(coarse, random_reference((3, 32, 32), (4, 4), seed=2))
    iid = random_reference((3, 32, 32), None, seed=1)
    step = lambda m: (m[:, 1:] - m[:, :-1]).abs().mean()
    assert step(coarse) < 0.2 * step(iid)
    values = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(values, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(coarse, expected)


def test_map_resolution_of_layer_and_pixel_methods() -> None:
    model = TwoConv()
    x = torch.randn(2, 3, 16, 16)
    assert map_resolution(LayerMethod(model, layer="conv2"), x) == (8, 8)
    assert map_resolution(LayerMethod(model, layer="conv1"), x) == (16, 16)
    assert map_resolution(object(), x) == (16, 16)
