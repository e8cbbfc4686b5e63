"""Bootstrap intervals, paired comparisons, verdicts (xaikit.metrics.statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from xaikit.errors import XaikitError
from xaikit.metrics import (
    bootstrap_ci,
    compare,
    compare_detail,
    paired_bootstrap,
    rank_with_ties,
    verdict,
)


@pytest.mark.parametrize(
    ("interval", "threshold", "direction", "expected"),
    [
        ((0.1, 0.4), 0.5, "below", "pass"),
        ((0.41, 0.54), 0.5, "below", "uncertain"),
        ((0.49, 0.57), 0.5, "below", "uncertain"),
        ((0.5, 0.6), 0.5, "below", "fail"),
        ((0.6, 0.7), 0.5, "below", "fail"),
        ((0.6, 0.7), 0.5, "above", "pass"),
        ((0.4, 0.5), 0.5, "above", "fail"),
        ((0.45, 0.55), 0.5, "above", "uncertain"),
        ((0.48, 0.41, 0.54), 0.5, "below", "uncertain"),       # (mean, low, high)
        ({"mean": 0.2, "low": 0.1, "high": 0.3}, 0.5, "below", "pass"),
    ],
)
def test_verdict(interval, threshold, direction, expected) -> None:
    assert verdict(interval, threshold, direction) == expected


def test_verdict_rejects_a_bad_direction() -> None:
    with pytest.raises(XaikitError):
        verdict((0, 1), 0.5, "up")  # type: ignore[arg-type]


def test_paired_bootstrap_of_a_constant_difference_is_exact() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(size=50)
    assert paired_bootstrap(b + 0.3, b) == pytest.approx((0.3, 0.3, 0.3))


def test_paired_bootstrap_removes_the_shared_variation() -> None:
    rng = np.random.default_rng(1)
    image_effect = rng.normal(scale=5.0, size=200)          # large, shared by both methods
    a = image_effect + 0.2 + rng.normal(scale=0.1, size=200)
    b = image_effect + rng.normal(scale=0.1, size=200)
    diff, low, high = paired_bootstrap(a, b, seed=3)
    assert low < diff < high
    assert low > 0.15 and high < 0.25                      # the unpaired interval would be ~+-1
    unpaired_a, unpaired_b = bootstrap_ci(a), bootstrap_ci(b)
    assert unpaired_a[1] < unpaired_b[2]                   # overlapping: unpaired cannot tell
    assert compare(a, b, higher_is_better=True) == "yes"
    assert compare(a, b, higher_is_better=False) == "no"
    assert compare(b, a, higher_is_better=False) == "yes"


def test_paired_bootstrap_on_known_data_matches_a_direct_resample() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    b = np.array([0.0, 1.0, 1.0, 5.0, 4.0])
    d = a - b
    diff, low, high = paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert diff == pytest.approx(d.mean())
    rng = np.random.default_rng(0)
    means = np.concatenate([d[rng.integers(0, 5, size=(min(256, 2000 - i), 5))].mean(axis=1)
                            for i in range(0, 2000, 256)])
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_compare_undecided_when_the_interval_contains_zero() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=10), rng.normal(size=10)
    detail = compare_detail(a, b, higher_is_better=True)
    assert detail["low"] < 0 < detail["high"] and detail["answer"] == "undecided"


def test_paired_bootstrap_drops_non_finite_pairs_and_checks_lengths() -> None:
    assert paired_bootstrap([1, np.nan, 3], [0, 1, 2]) == pytest.approx((1.0, 1.0, 1.0))
    with pytest.raises(XaikitError):
        paired_bootstrap([1, 2], [1, 2, 3])
    with pytest.raises(XaikitError):
        bootstrap_ci([np.nan])


def test_rank_with_ties() -> None:
    intervals = {"a": (0.8, 0.9), "b": (0.85, 0.95), "c": (0.5, 0.6), "d": (0.1, 0.2)}
    assert rank_with_ties(intervals, higher_is_better=True) == {"a": 1, "b": 1, "c": 3, "d": 4}
    assert rank_with_ties(intervals, higher_is_better=False) == {"a": 3, "b": 3, "c": 2, "d": 1}
