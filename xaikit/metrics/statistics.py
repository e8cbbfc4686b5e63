"""Intervals, paired comparisons and verdicts for per-image scores.

* :func:`bootstrap_ci` -- mean and percentile-bootstrap interval of a mean (Efron and
  Tibshirani, "An Introduction to the Bootstrap", 1993).
* :func:`paired_bootstrap` -- the same for the mean *difference* ``a_i - b_i`` of two scores on
  the same images: resampling images (not scores) keeps each pair together, so the
  image-to-image variation that both share cancels.
* :func:`verdict` -- ``"pass"`` / ``"fail"`` / ``"uncertain"`` of an interval against a
  threshold: a verdict is only given when the whole interval is on one side.
* :func:`compare` -- does a method beat a control: ``"yes"`` / ``"no"`` / ``"undecided"``.
* :func:`rank_with_ties` -- ranks of methods where overlapping intervals share a rank.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
from torch import Tensor

from xaikit.errors import XaikitError

Verdict = Literal["pass", "fail", "uncertain"]
Answer = Literal["yes", "no", "undecided"]
ArrayLike = Sequence[float] | Tensor | np.ndarray


def _as_array(values: ArrayLike) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def bootstrap_ci(values: ArrayLike, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap ``1 - alpha`` interval of the mean: ``(mean, low, high)``.

    ``n_boot`` resamples with replacement of the n finite values (NaN and inf are dropped);
    low/high are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled means (Efron
    and Tibshirani 1993), widened if needed to contain the mean. One value gives
    ``(v, v, v)``.

    Raises:
        XaikitError: no finite value.
    """
    v = _as_array(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise XaikitError("bootstrap_ci needs at least one finite value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        v[rng.integers(0, v.size, size=(min(256, n_boot - i), v.size))].mean(axis=1)
        for i in range(0, n_boot, 256)
    ])
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return mean, float(min(low, mean)), float(max(high, mean))


def paired_bootstrap(a: ArrayLike, b: ArrayLike, n_boot: int = 1000, alpha: float = 0.05,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a_i - b_i`` over the same images and its bootstrap interval: ``(diff, low, high)``.

    Pairs where either value is not finite are dropped; the images are resampled with
    replacement (:func:`bootstrap_ci` of the differences).

    Raises:
        XaikitError: ``a`` and ``b`` differ in length, or no pair is finite.
    """
    x, y = _as_array(a), _as_array(b)
    if x.shape != y.shape:
        raise XaikitError(f"paired_bootstrap needs scores of the same images, got {x.size} and {y.size}")
    return bootstrap_ci(x - y, n_boot=n_boot, alpha=alpha, seed=seed)


def _bounds(interval: Sequence[float] | Mapping[str, float]) -> tuple[float, float]:
    if isinstance(interval, Mapping):
        return float(interval["low"]), float(interval["high"])
    values = list(interval)
    if len(values) == 2:
        return float(values[0]), float(values[1])
    if len(values) == 3:
        return float(values[1]), float(values[2])
    raise XaikitError("an interval is (low, high), (mean, low, high) or {'low', 'high'}")


def verdict(interval: Sequence[float] | Mapping[str, float], threshold: float,
            direction: Literal["below", "above"]) -> Verdict:
    """Pass / fail / uncertain of an interval against ``threshold``.

    With ``direction="below"`` a score passes when it is below the threshold: ``"pass"`` if
    ``high < threshold``, ``"fail"`` if ``low >= threshold``, else ``"uncertain"`` (the interval
    straddles the threshold). ``"above"`` mirrors it: pass if ``low > threshold``, fail if
    ``high <= threshold``.

    Args:
        interval: ``(low, high)``, ``(mean, low, high)`` or a dict with ``"low"``/``"high"``.
        threshold: The pass/fail boundary.
        direction: ``"below"`` or ``"above"``: the side of the threshold that passes.
    """
    low, high = _bounds(interval)
    if direction == "below":
        return "pass" if high < threshold else "fail" if low >= threshold else "uncertain"
    if direction == "above":
        return "pass" if low > threshold else "fail" if high <= threshold else "uncertain"
    raise XaikitError(f"direction must be 'below' or 'above', got {direction!r}")


def compare_detail(method_scores: ArrayLike, control_scores: ArrayLike, higher_is_better: bool,
                   *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, float | str]:
    """:func:`compare` with its evidence: ``{"mean", "low", "high", "answer"}``.

    ``mean/low/high`` are the paired-bootstrap mean of ``method - control`` and its interval.
    """
    diff, low, high = paired_bootstrap(method_scores, control_scores, n_boot, alpha, seed)
    answer: Answer
    if (low > 0 and higher_is_better) or (high < 0 and not higher_is_better):
        answer = "yes"
    elif (high < 0 and higher_is_better) or (low > 0 and not higher_is_better):
        answer = "no"
    else:
        answer = "undecided"
    return {"mean": diff, "low": low, "high": high, "answer": answer}


def compare(method_scores: ArrayLike, control_scores: ArrayLike, higher_is_better: bool,
            *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> Answer:
    """Does the method beat the control on the same images: ``"yes"``, ``"no"`` or ``"undecided"``.

    The paired bootstrap interval of ``mean(method - control)`` (:func:`paired_bootstrap`)
    decides: ``"yes"`` when it lies entirely on the better side of 0, ``"no"`` when it lies
    entirely on the worse side, ``"undecided"`` when it contains 0 (the difference is too small
    for the number of images).
    """
    return compare_detail(method_scores, control_scores, higher_is_better, n_boot=n_boot,
                          alpha=alpha, seed=seed)["answer"]  # type: ignore[return-value]


def rank_with_ties(intervals: Mapping[str, Sequence[float] | Mapping[str, float]],
                   higher_is_better: bool) -> dict[str, int]:
    """Rank methods by interval; a method's rank is 1 + the number of methods that are surely better.

    Method ``j`` is surely better than ``i`` when their intervals do not overlap and ``j``'s
    is on the better side, so methods whose intervals overlap can share a rank (e.g. three
    methods that all overlap are all ranked 1).
    """
    bounds = {name: _bounds(iv) for name, iv in intervals.items()}
    ranks = {}
    for name, (low, high) in bounds.items():
        if higher_is_better:
            better = sum(1 for other, (lo, _hi) in bounds.items() if other != name and lo > high)
        else:
            better = sum(1 for other, (_lo, hi) in bounds.items() if other != name and hi < low)
        ranks[name] = 1 + better
    return ranks
