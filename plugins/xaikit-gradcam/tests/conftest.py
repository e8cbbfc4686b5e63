"""Fixtures of the CAM plugin's tests: a small CNN trained on the synthetic shapes, once per
session, and Spearman's rank correlation of two maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from torch import Tensor, nn

from xaikit.testing import nets

@pytest.fixture(scope="session")
def trained_shapes() -> tuple[nn.Module, Tensor, Tensor]:
    """:func:`xaikit.testing.nets.trained_shapes`: a small CNN trained on the synthetic shapes."""
    return nets.trained_shapes()


def spearman(a: Tensor, b: Tensor) -> float:
    """Mean over images of Spearman's rank correlation of maps ``a[i]`` and ``b[i]``. A pair
    where one map is constant (a ReLU'd map with no evidence) and the other is not counts 0,
    two constant maps count 1."""
    values = []
    for u, v in zip(a.flatten(1).cpu().numpy(), b.flatten(1).cpu().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(float(np.ptp(u) == 0 and np.ptp(v) == 0))
        else:
            values.append(float(spearmanr(u, v)[0]))
    return float(np.mean(values))


@pytest.fixture(scope="session")
def rank_correlation():
    """:func:`spearman`, for the tests (conftest helpers are not importable by name)."""
    return spearman
