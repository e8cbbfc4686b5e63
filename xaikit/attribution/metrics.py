"""Faithfulness and sanity metrics of attribution maps (plain torch / numpy).

* :func:`deletion_insertion` -- deletion and insertion curves and their AUCs (Petsiuk, Das and
  Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018),
  also for a seeded random map as a reference.
* :func:`~xaikit.attribution.sanity.randomization_sanity` (in sanity.py) -- cascading
  model-parameter randomisation (Adebayo et al.,
  "Sanity Checks for Saliency Maps", NeurIPS 2018) scored by Spearman rank correlation.
* :func:`completeness_gap` -- how far integrated-gradients maps are from summing to
  ``f_c(x) - f_c(baseline)`` (Sundararajan et al. 2017).
* :func:`bootstrap_ci` -- percentile bootstrap interval of a mean (Efron and Tibshirani 1993).
* :func:`score_method` -- all of it for one method on one batch, as a JSON-ready dict.

The dict of :func:`score_method` (read by ``xaikit explain`` and ``xaikit report``); every
``{"mean", "low", "high"}`` is a mean over images and its 95% bootstrap interval::

    {
      "method": str, "n_images": int, "steps": int, "baseline": str,
      "deletion": {"mean", "low", "high"},          # AUC of p_c while deleting, lower = better
      "insertion": {"mean", "low", "high"},         # AUC of p_c while inserting, higher = better
      "deletion_random": {...}, "insertion_random": {...},   # the same for a random map
      "per_image": {"deletion": [...], "insertion": [...],
                    "deletion_random": [...], "insertion_random": [...]},
      "randomization": {                            # absent when sanity=False
        "rho_final": {"mean", "low", "high"},       # Spearman rho, original vs fully random model
        "rho_by_layer": [{"layer": str, "mean", "low", "high"}, ...],  # cascade order
        "mean_abs_rho_final": float, "threshold": float, "passes": bool, "n_images": int,
      },
      "completeness_gap": {"mean", "low", "high"},  # only for methods with .baselines() (IG)
      "seconds": float,                             # wall time of computing the maps
    }
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import (
    Attribution,
    TargetLike,
    resolve_targets,
)
from xaikit.attribution.sanity import randomization_sanity, spearman  # noqa: F401 (re-exported)
from xaikit.errors import XaikitError
from xaikit.modules import model_device, module_mode

def auc_trapezoid(curve: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Area under ``curve`` ``[..., K]`` over ``fractions`` (default: K equal steps of 0..1).

    Trapezoid rule: ``AUC = sum_k (t_{k+1} - t_k) (y_k + y_{k+1}) / 2``; a constant curve
    ``y`` on 0..1 has AUC ``y``.
    """
    if fractions is None:
        fractions = torch.linspace(0.0, 1.0, curve.shape[-1], device=curve.device)
    return torch.trapezoid(curve, fractions.to(curve), dim=-1)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` per channel (reflect padding, 3-sigma kernel)."""
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _fill_images(x: Tensor, baseline: str | Tensor, mean: Sequence[float] | Tensor | None,
                 blur_sigma: float) -> Tensor:
    if isinstance(baseline, Tensor):
        return baseline.to(x).expand_as(x)
    if baseline == "zero":
        if mean is None:
            return torch.zeros_like(x)
        fill = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        return fill.expand_as(x)
    if baseline == "blur":
        return gaussian_blur(x, blur_sigma)
    raise XaikitError(f"unknown baseline {baseline!r}; use 'zero', 'blur' or a tensor")


def _ranks(maps: Tensor) -> Tensor:
    """Position of each pixel in the order most-important-first, ``[B, H*W]`` (ties: by index)."""
    order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def _perturbation_curves(model: nn.Module, x: Tensor, fill: Tensor, ranks: Tensor,
                         insertion: Tensor, target: Tensor, steps: int, batch_size: int) -> Tensor:
    """Target probability for every (curve, step): ``[N, steps + 1]``.

    Curve n perturbs image ``x[n]`` in the pixel order ``ranks[n]``; after step k the first
    ``round(k * HW / steps)`` pixels are ``fill`` (deletion) or the only ones from ``x``
    (insertion, ``insertion[n]`` True). All curves x steps go through the model in batches.
    """
    n, _, h, w = x.shape
    counts = torch.round(torch.arange(steps + 1, device=x.device) * (h * w) / steps).long()
    total = n * (steps + 1)
    probs = torch.empty(total, device=x.device)
    for start in range(0, total, batch_size):
        flat = torch.arange(start, min(start + batch_size, total), device=x.device)
        img, step = flat // (steps + 1), flat % (steps + 1)
        first_k = ranks[img] < counts[step][:, None]  # [b, HW]: among the first k pixels
        keep_x = (first_k == insertion[img][:, None]).view(-1, 1, h, w)
        batch = torch.where(keep_x, x[img], fill[img])
        p = F.softmax(model(batch).float(), dim=1)
        probs[flat] = p.gather(1, target[img][:, None])[:, 0]
    return probs.view(n, steps + 1)


def deletion_insertion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: TargetLike,
    steps: int = 16,
    mean: Sequence[float] | Tensor | None = None,
    baseline: str | Tensor = "zero",
    *,
    seed: int = 0,
    blur_sigma: float = 2.0,
    batch_size: int = 1024,
) -> dict[str, Tensor]:
    """Deletion and insertion curves of ``maps``, and of a random map (RISE, Petsiuk 2018).

    Pixels (all channels) are ordered by map value, most important (largest) first, and
    changed in ``steps`` equal chunks. Deletion sets them to the baseline, starting from
    ``x``; insertion copies them from ``x``, starting from the baseline. At each step
    ``k = 0..steps`` the target class probability ``p_c = softmax(f(x_k))_c`` is recorded,
    and ``AUC = trapezoid of p_c over the fraction k/steps in 0..1``. A faithful map gives a
    low deletion AUC and a high insertion AUC; the same curves for a uniform random map
    (seeded) give each image its reference. Signed maps are ordered by their signed value
    (most positive evidence first).

    Args:
        model: The classifier (logits out); evaluated in eval mode, flags restored.
        x: Images ``[B, C, H, W]`` as the model takes them (normalised).
        maps: Attribution maps ``[B, H, W]``.
        target: Class of each image (``None``: the model's prediction).
        steps: Number of equal chunks of pixels.
        mean: Per-channel fill colour of the ``"zero"`` baseline, in ``x``'s space
            (``None``: 0, the data set's mean colour for normalised inputs).
        baseline: ``"zero"``, ``"blur"`` (Gaussian blur of ``x`` with ``blur_sigma``) or a
            tensor broadcastable to ``x``.
        seed: Seed of the random reference map.
        blur_sigma: Standard deviation in pixels of the ``"blur"`` baseline.
        batch_size: Perturbed images per forward pass.

    Returns:
        CPU tensors: ``"deletion"``, ``"insertion"``, ``"deletion_random"``,
        ``"insertion_random"`` (AUCs ``[B]``), the matching ``"..._curve"`` ``[B, steps + 1]``
        and ``"fractions"`` ``[steps + 1]``.
    """
    if x.ndim != 4 or maps.shape != (x.shape[0], *x.shape[-2:]):
        raise XaikitError(f"maps {tuple(maps.shape)} do not fit images {tuple(x.shape)}")
    if steps < 1:
        raise XaikitError(f"steps must be >= 1, got {steps}")
    device = model_device(model)
    x = x.to(device, torch.float32)
    b = x.shape[0]
    generator = torch.Generator().manual_seed(seed)
    random_maps = torch.rand(maps.shape, generator=generator).to(device)
    with module_mode(model, training=False), torch.no_grad():
        targets = resolve_targets(target, model, x)
        fill = _fill_images(x, baseline, mean, blur_sigma)
        ranks = torch.cat([_ranks(maps.to(device).float())] * 2 + [_ranks(random_maps)] * 2)
        insertion = torch.tensor([False, True, False, True], device=device).repeat_interleave(b)
        curves = _perturbation_curves(model, x.repeat(4, 1, 1, 1), fill.repeat(4, 1, 1, 1), ranks,
                                      insertion, targets.repeat(4), steps, batch_size)
    curves = curves.cpu().view(4, b, steps + 1)
    fractions = torch.linspace(0.0, 1.0, steps + 1)
    result: dict[str, Tensor] = {"fractions": fractions}
    for i, key in enumerate(("deletion", "insertion", "deletion_random", "insertion_random")):
        result[key] = auc_trapezoid(curves[i], fractions)
        result[f"{key}_curve"] = curves[i]
    return result


def completeness_gap(model: nn.Module, x: Tensor, maps: Tensor, target: TargetLike,
                     baseline: Tensor | float | None = None) -> Tensor:
    """``|sum(map) - (f_c(x) - f_c(baseline))|`` per image, on the logits (IG completeness).

    ``maps`` is ``[B, C, H, W]`` or its channel sum ``[B, H, W]`` (the total is the same);
    ``baseline`` is a tensor broadcastable to ``x``, a scalar, or ``None`` (zeros). For
    integrated gradients the gap goes to 0 as the number of integration steps grows
    (Sundararajan et al. 2017, "completeness"). Returns a CPU tensor ``[B]``.
    """
    device = model_device(model)
    x = x.to(device, torch.float32)
    base = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline).to(x).expand_as(x)
    with module_mode(model, training=False), torch.no_grad():
        targets = resolve_targets(target, model, x)
        rows = torch.arange(x.shape[0], device=device)
        gain = model(x)[rows, targets] - model(base)[rows, targets]
    total = maps.to(device).flatten(1).sum(dim=1)
    return (total - gain).abs().float().cpu()


def bootstrap_ci(values: Sequence[float] | Tensor | np.ndarray, n_boot: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap ``1 - alpha`` interval of the mean: ``(mean, low, high)``.

    ``n_boot`` resamples with replacement of the n finite values; low/high are the
    ``alpha/2`` and ``1 - alpha/2`` quantiles of their means (Efron and Tibshirani 1993).
    One value gives ``(v, v, v)``.
    """
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
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


def _interval(values: Tensor, n_boot: int, alpha: float, seed: int) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"mean": mean, "low": low, "high": high}


def score_method(
    model: nn.Module,
    method: type[Attribution] | Attribution,
    x: Tensor,
    target: TargetLike = None,
    *,
    layer: str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    steps: int = 16,
    baseline: str | Tensor = "zero",
    mean: Sequence[float] | Tensor | None = None,
    sanity: bool = True,
    sanity_images: int | None = 8,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    maps: Tensor | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Score one attribution method on a batch: faithfulness, sanity, completeness, time.

    The maps are computed once (timed: ``"seconds"``), then :func:`deletion_insertion`,
    :func:`randomization_sanity` (on the first ``sanity_images`` images; skipped when
    ``sanity`` is False) and, for methods with a ``baselines(x)`` method such as integrated
    gradients, :func:`completeness_gap`. Every per-image score is aggregated by
    :func:`bootstrap_ci`. The returned keys are listed in this module's docstring.

    Args:
        model: The classifier.
        method: An ``Attribution`` subclass or instance.
        x: Images ``[B, C, H, W]``.
        target: Classes (``None``: the model's predictions), fixed for all checks.
        layer, method_kwargs: Used to build ``method`` when it is a class.
        steps, baseline, mean: Passed to :func:`deletion_insertion`.
        sanity: Run the randomisation check.
        sanity_images: Images used by the randomisation check (``None``: all).
        n_boot, alpha: Bootstrap resamples and interval level.
        seed: Seed of the random map, the re-initialisation and the bootstrap.
        maps, seconds: Maps ``[B, H, W]`` the caller already computed for ``x`` and
            ``target`` with ``method`` (and how long that took); they are not recomputed.
    """
    kwargs = dict(method_kwargs or {})
    explainer = method if isinstance(method, Attribution) else method(model, layer=layer, **kwargs)
    device = model_device(model)
    x = x.to(device, torch.float32)
    with module_mode(model, training=False):
        targets = resolve_targets(target, model, x)
    if maps is None:
        started = time.perf_counter()
        maps = explainer(x, targets)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    maps = maps.to(device)

    curves = deletion_insertion(model, x, maps, targets, steps=steps, mean=mean,
                                baseline=baseline, seed=seed)
    keys = ("deletion", "insertion", "deletion_random", "insertion_random")
    result: dict[str, Any] = {
        "method": explainer.name,
        "n_images": int(x.shape[0]),
        "steps": steps,
        "baseline": baseline if isinstance(baseline, str) else "tensor",
    }
    for key in keys:
        result[key] = _interval(curves[key], n_boot, alpha, seed)
    result["per_image"] = {key: curves[key].tolist() for key in keys}

    if sanity:
        n = x.shape[0] if sanity_images is None else min(sanity_images, x.shape[0])
        check = randomization_sanity(model, explainer, x[:n], targets[:n], seed=seed)
        result["randomization"] = {
            "rho_final": _interval(check["rho_final"], n_boot, alpha, seed),
            "rho_by_layer": [
                {"layer": name, **_interval(rho, n_boot, alpha, seed)}
                for name, rho in zip(check["layers"], check["rho_by_layer"])
            ],
            "mean_abs_rho_final": check["mean_abs_rho_final"],
            "threshold": check["threshold"],
            "passes": bool(check["passes"]),
            "n_images": int(n),
        }
    baselines = getattr(explainer, "baselines", None)
    if callable(baselines):
        gap = completeness_gap(model, x, maps, targets, baselines(x))
        result["completeness_gap"] = _interval(gap, n_boot, alpha, seed)
    result["seconds"] = float(seconds or 0.0)
    return result
