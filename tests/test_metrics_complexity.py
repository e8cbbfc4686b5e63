"""Sparseness, complexity and histogram entropy (xaikit.metrics.complexity) by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xaikit.metrics import complexity, histogram_entropy, sparseness


def as_maps(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 2, 2)


def test_sparseness_by_hand() -> None:
    # Gini = sum_k (2k - n - 1) a_(k) / (n sum a), a = sorted |map| + 1e-7
    g = sparseness(as_maps([0, 0, 0, 1], [1, 2, 3, 4], [5, 5, 5, 5], [-4, 3, -2, 1], [0, 0, 0, 0]))
    eps = 1e-7
    one_hot = (-3 * eps - eps + eps + 3 * (1 + eps)) / (4 * (1 + 4 * eps))
    assert g[0].item() == pytest.approx(one_hot, abs=1e-7)          # (n - 1) / n
    assert g[1].item() == pytest.approx(10 / 40, abs=1e-7)           # (-3 - 2 + 3 + 12) / (4 * 10)
    assert g[2].item() == pytest.approx(0.0, abs=1e-7)
    assert g[3].item() == pytest.approx(0.25, abs=1e-7)              # |map| is used
    assert g[4].item() == pytest.approx(0.0, abs=1e-7)               # all zero: uniform eps


def test_complexity_by_hand() -> None:
    c = complexity(as_maps([1, 1, 1, 1], [0, 0, 0, 3], [1, 3, 0, 0], [-1, 3, 0, 0], [0, 0, 0, 0]))
    assert c[0].item() == pytest.approx(math.log(4), abs=1e-6)
    assert c[1].item() == pytest.approx(0.0, abs=1e-7)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))   # 0.5623...
    assert c[2].item() == pytest.approx(h, abs=1e-6)
    assert c[3].item() == pytest.approx(h, abs=1e-6)
    assert math.isnan(c[4].item())


def test_histogram_entropy_matches_numpy_histogram() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.cat([torch.randn(3, 16, 16, generator=g), torch.rand(2, 16, 16, generator=g) ** 4])
    ours = histogram_entropy(maps, n_bins=20)
    for i in range(len(maps)):
        counts, _ = np.histogram(maps[i].double().numpy(), bins=20)
        p = counts[counts > 0] / counts.sum()
        assert ours[i].item() == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-5)
    assert histogram_entropy(torch.ones(1, 4, 4)).item() == 0.0
    two = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).view(1, 2, 2)
    assert histogram_entropy(two, n_bins=10).item() == pytest.approx(math.log(2))
