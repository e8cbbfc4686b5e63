"""The scorecard of one attribution method on one batch of images, as a JSON-ready dict.

:func:`scorecard` computes the maps once (or takes them), then every metric of this package,
each timed, aggregates each per-image score by a bootstrap interval, gives pass / fail /
uncertain verdicts from the intervals, and compares the method with each control (maps or
scorecards of ``random``, ``sobel``, ``center``... on the same images) by a paired bootstrap.

Keys (every ``{"mean", "low", "high"}`` is a mean over images and its ``1 - alpha`` bootstrap
interval, ``None`` where no value was finite; ``n`` the images it is over)::

    {
      "method": str, "n_images": int, "layer": str | None, "signed": bool | None,
      "settings": {...},                         # ScorecardSettings as a dict
      "metrics": {                               # per-image scores aggregated; keys of METRICS
        "road_morf" | "road_lerf" | "road_combined" | "deletion" | "insertion" |
        "deletion_random" | "insertion_random" | "infidelity" | "completeness_gap" |
        "sensitivity_max" | "sparseness" | "complexity" | "randomization_rho" |
        "randomization_rho_abs" | "random_logit_rho" | "emprt":
            {"mean", "low", "high", "n", "higher_is_better": bool, "criterion": str},
      },
      "road": {"percentiles": [...], "morf_curve": [...], "lerf_curve": [...],  # means over images
               "iterations": int, "max_relative_residual": float, "converged": bool},
      "deletion_insertion": {"fractions": [...], "deletion_curve": [...], "insertion_curve": [...],
               "deletion_random_curve": [...], "insertion_random_curve": [...],
               "reference_resolution": [h, w], "steps": int, "blur_sigma": float},
      "randomization": {"layers": [...], "n_images": int, "cascade": [...],  # compared steps, all layers
               "rho_by_layer": [{"layer", "step", "rho": {"mean", "low", "high"}, "rho_abs": {...}}, ...]},
      "verdicts": {name: {"verdict": "pass" | "fail" | "uncertain", "metric": str,
                          "threshold": float, "direction": "below" | "above"}},
                                                 # road, randomization, random_logit, emprt
      "versus": {control: {metric: {"mean", "low", "high", "answer": "yes" | "no" | "undecided"}}},
      "headline": {control: {criterion: "yes" | "no" | "undecided",       # CRITERIA
                             "cost_ratio": float | None}},                # seconds/image vs control
      "per_image": {metric: [float | None, ...]},
      "seconds": {"maps": float, "road": float, "deletion_insertion": float, "infidelity": float,
                  "sensitivity_max": float, "complexity": float, "randomization": float,
                  "random_logit": float, "emprt": float, "completeness_gap": float,
                  "total": float},                 # only for the metrics computed
      "seconds_per_image": float,                  # of the maps
      "evaluations_per_image": float | None,       # model evaluations per map (counted)
      "images": {check: int},                      # images of each check that recomputes maps
      "blocks": int,                               # blocks the images were scored in
    }

The images are scored in blocks (:func:`image_blocks`) with their own seeded draws, so that
processes can share them out (:func:`plan_checks`, :func:`score_block`, :func:`summarize`; what
``xaikit explain`` does under torchrun). ``per_image`` lists the map metrics for every image and
each check's metrics for its first ``images[check]`` images, in image order.

``versus`` holds the metrics both the method and the control have, paired over their common
first images (controls must be scored on the same images in the same order); the answer says
whether the method is better (``yes``), worse (``no``) or indistinguishable with this many
images (``undecided``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from xaikit.attribution.base import Attribution, TargetLike
from xaikit.errors import XaikitError
from xaikit.metrics._common import captum_batch, check_maps, finite_list, prepare, seconds_since
from xaikit.metrics.catalogue import CRITERIA, METRICS
from xaikit.metrics.complexity import complexity, sparseness
from xaikit.metrics.cost import affordable_images, cascade_budget, count_evaluations
from xaikit.metrics.deletion import deletion_insertion
from xaikit.metrics.fidelity import completeness_gap, infidelity
from xaikit.metrics.references import map_resolution
from xaikit.metrics.road import ROAD_PERCENTILES, road
from xaikit.metrics.robustness import sensitivity_max
from xaikit.metrics.sanity import (
    bind, emprt, parameterised_layers, random_logit, randomization, randomized_copy,
)
from xaikit.metrics.statistics import bootstrap_ci, compare_detail, verdict
from xaikit.modules import model_device

GROUPS = ("road", "deletion_insertion", "infidelity", "completeness_gap", "sensitivity_max",
          "complexity", "randomization", "random_logit", "emprt")
#: Groups that recompute maps (sized by ``ScorecardSettings.evaluation_budget``).
RECOMPUTING_GROUPS = ("sensitivity_max", "randomization", "random_logit", "emprt")
#: Groups that need only the maps (what a control given as a tensor is scored on).
MAP_GROUPS = ("road", "deletion_insertion", "infidelity", "complexity")


@dataclass(frozen=True)
class ScorecardSettings:
    """Every option of :func:`scorecard`, with the defaults the report uses.

    Attributes:
        groups: Metric groups to compute (``None``: all of :data:`GROUPS`).
        percentiles, road_noise_std: ROAD percentiles and imputation noise (0..1 pixel scale
            when ``data_std`` is given, else in the input's units).
        data_std: Per-channel std the inputs were normalised with (``DataBundle.std``).
        mean: Deletion colour in the input's units (``None``: 0, the mean colour).
        steps, blur_sigma: Deletion/insertion chunks and the insertion canvas blur (pixels).
        reference_resolution: ``(h, w)`` of the random reference (``None``: the method's,
            :func:`~xaikit.metrics.references.map_resolution`).
        infidelity_std, infidelity_samples: Gaussian per-pixel perturbation of infidelity.
        sensitivity_radius, sensitivity_samples: Uniform L-inf noise of max-sensitivity.
        robustness_images: Images for max-sensitivity (costs ``samples`` maps each;
            ``None``: all; 0 skips it).
        sanity_images: Images for the randomisation cascade (one map per layer; ``None``: all;
            0 skips it).
        evaluation_budget: Model evaluations (images through the forward pass) that each
            check recomputing maps (max-sensitivity, randomisation, random logit, eMPRT) may
            spend; an expensive method is checked on fewer images
            (:mod:`~xaikit.metrics.cost`). ``None``: no limit.
        min_images: Images each of those checks keeps whatever the budget.
        sanity_threshold: Randomisation fails at rho_abs >= this (interval-wise).
        random_logit_threshold: Random-logit fails at rho >= this.
        emprt_bins: Histogram bins of eMPRT's entropy.
        n_boot, alpha: Bootstrap resamples and interval level.
        seed: Seed of every random draw (the same for every method: paired comparisons).
        batch_size: Images per ROAD imputation batch (``None``: 512 on a CPU, 4096 on a GPU;
            deletion/insertion uses twice as many per forward pass).
    """

    groups: tuple[str, ...] | None = None
    percentiles: tuple[float, ...] = ROAD_PERCENTILES
    road_noise_std: float = 0.01
    data_std: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    steps: int = 16
    blur_sigma: float = 2.0
    reference_resolution: tuple[int, int] | None = None
    infidelity_std: float = 0.1
    infidelity_samples: int = 16
    sensitivity_radius: float = 0.02
    sensitivity_samples: int = 8
    robustness_images: int | None = 32
    sanity_images: int | None = 8
    evaluation_budget: int | None = 10_000
    min_images: int = 4
    sanity_threshold: float = 0.5
    random_logit_threshold: float = 0.5
    emprt_bins: int = 100
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    batch_size: int | None = None

    def wants(self, group: str) -> bool:
        return self.groups is None or group in self.groups


def _interval(values: Sequence[float | None] | Tensor, s: ScorecardSettings) -> dict[str, Any]:
    vals = [v for v in finite_list(values) if v is not None]
    if not vals:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean, low, high = bootstrap_ci(vals, n_boot=s.n_boot, alpha=s.alpha, seed=s.seed)
    return {"mean": mean, "low": low, "high": high, "n": len(vals)}


def _mean_curve(curves: Tensor) -> list[float | None]:
    return finite_list(torch.nanmean(curves.double(), dim=0))


def _timed(seconds: dict[str, float], key: str, device: torch.device,
           progress: Callable[[str], None] | None, fn: Callable[[], Any]) -> Any:
    if progress:
        progress(key)
    started = time.perf_counter()
    out = fn()
    seconds[key] = seconds_since(started, device)
    return out


def map_scores(model: nn.Module, x: Tensor, maps: Tensor, targets: Tensor, s: ScorecardSettings,
               resolution: Sequence[int] | None = None, *,
               progress: Callable[[str], None] | None = None,
               shared: dict[Any, Any] | None = None,
               ) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, float]]:
    """The metrics that need only the maps, on one batch: ``(per_image, details, seconds)``.

    ``per_image`` maps metric names to CPU tensors ``[B]``; ``details`` holds the per-image
    curves (``"curves"``: ``road_morf``, ``road_lerf``, ``deletion``, ``insertion``,
    ``deletion_random``, ``insertion_random`` ``[B, K]``) and what the scorecard reports of the
    ROAD solve and the deletion settings (``"road"``, ``"deletion_insertion"``). Every draw is
    seeded by ``s.seed``. ``shared``: see :func:`scorecard`.
    """
    device = x.device
    per: dict[str, Tensor] = {}
    curves: dict[str, Tensor] = {}
    details: dict[str, Any] = {"curves": curves}
    sec: dict[str, float] = {}
    if s.wants("road"):
        r = _timed(sec, "road", device, progress, lambda: road(
            model, x, maps, targets, percentiles=s.percentiles, noise_std=s.road_noise_std,
            data_std=s.data_std, seed=s.seed, batch_size=s.batch_size))
        per.update(road_morf=r["morf"], road_lerf=r["lerf"], road_combined=r["combined"])
        curves.update(road_morf=r["morf_curve"], road_lerf=r["lerf_curve"])
        details["road"] = {
            "percentiles": [float(p) for p in r["percentiles"]],
            "iterations": r["iterations"], "max_relative_residual": r["max_relative_residual"],
            "converged": r["converged"],
        }
    if s.wants("deletion_insertion"):
        res = tuple(int(v) for v in (resolution if resolution is not None else x.shape[-2:]))
        key = ("random_reference", res, s.seed, x.shape[0])
        known = shared.get(key) if shared is not None else None
        d = _timed(sec, "deletion_insertion", device, progress, lambda: deletion_insertion(
            model, x, maps, targets, steps=s.steps, reference_resolution=res, mean=s.mean,
            blur_sigma=s.blur_sigma, seed=s.seed, with_reference=known is None,
            batch_size=2 * (s.batch_size or (4096 if device.type == "cuda" else 512))))
        if known is None:
            known = {k: d[k] for k in d if k.startswith(("deletion_random", "insertion_random"))}
            if shared is not None:
                shared[key] = known
        d = {**d, **known}
        for name in ("deletion", "insertion", "deletion_random", "insertion_random"):
            per[name] = d[name]
            curves[name] = d[f"{name}_curve"]
        details["deletion_insertion"] = {
            "fractions": d["fractions"].tolist(),
            "reference_resolution": [int(v) for v in res], "steps": s.steps,
            "blur_sigma": s.blur_sigma,
        }
    if s.wants("infidelity"):
        per["infidelity"] = _timed(sec, "infidelity", device, progress, lambda: infidelity(
            model, x, maps, targets, noise_std=s.infidelity_std,
            n_perturb_samples=s.infidelity_samples, seed=s.seed,
            max_examples_per_batch=captum_batch(len(x), s.infidelity_samples, 4 * (s.batch_size or 512))))
    if s.wants("complexity"):
        out = _timed(sec, "complexity", device, progress,
                     lambda: (sparseness(maps), complexity(maps)))
        per["sparseness"], per["complexity"] = out
    return per, details, sec


def _versus(per_image: Mapping[str, Sequence[float | None]], control: Mapping[str, Sequence[float | None]],
            s: ScorecardSettings) -> dict[str, Any]:
    out = {}
    for key, values in per_image.items():
        if key not in control or key not in METRICS or key.endswith("_random"):
            continue
        n = min(len(values), len(control[key]))
        pairs = [(a, b) for a, b in zip(values[:n], control[key][:n]) if a is not None and b is not None]
        if not pairs:
            continue
        a, b = zip(*pairs)
        out[key] = compare_detail(list(a), list(b), METRICS[key].higher_is_better,
                                  n_boot=s.n_boot, alpha=s.alpha, seed=s.seed)
    return out


#: A block holds at least this many images (when there are so many) ...
MIN_BLOCK_IMAGES = 16
#: ... and there are at most this many blocks: see :func:`image_blocks`.
MAX_BLOCKS = 16


def image_blocks(n: int) -> list[range]:
    """The blocks of consecutive images the scorecard scores ``n`` images in:
    ``min(16, max(1, n // 16))`` blocks of nearly equal size (100 images: 6 blocks of 16-17; 400:
    16 of 25). On ULTIMUS the whole scorecard takes the same time in blocks of 16 as in blocks
    of 32 (37-39 s against 41 s for six methods on 100 images, 2-core CPU).

    Every random draw of a metric (ROAD's noise, the random reference, infidelity's and
    max-sensitivity's perturbations, the random logit's class) is seeded per block
    (:func:`block_settings`) and a block's scores depend on its own images only. So the blocks
    can be scored in any order by any process: under torchrun each process scores every
    ``world_size``-th block and the scorecards are those of one process, bit for bit. The split
    depends on ``n`` alone, never on the number of processes.
    """
    if n < 1:
        return []
    k = min(MAX_BLOCKS, max(1, n // MIN_BLOCK_IMAGES))
    return [range(n * i // k, n * (i + 1) // k) for i in range(k)]


def block_settings(settings: ScorecardSettings, block: int) -> ScorecardSettings:
    """``settings`` with the seed of block ``block``'s draws: the seed itself for the first block
    (a scorecard of fewer than 32 images draws exactly what the metric functions called with
    ``settings.seed`` draw), a different one for each further block."""
    return replace(settings, seed=settings.seed + 1_000_003 * block)


@dataclass(frozen=True)
class CheckPlan:
    """What the checks that recompute maps run on, for one method on ``n_images`` images: each
    check's number of images (the first ones; :mod:`~xaikit.metrics.cost` sizes them by the
    method's ``evaluations`` per map), the randomisation cascade's steps and the resolution of
    the random reference. Decided once for all blocks."""

    n_images: int
    evaluations: float | None
    images: dict[str, int]
    steps: int | None
    resolution: tuple[int, int]


def plan_checks(model: nn.Module, explainer: Attribution, x: Tensor, n_images: int,
                evaluations: float | None, s: ScorecardSettings) -> CheckPlan:
    """The :class:`CheckPlan` of ``explainer`` on ``n_images`` images (``x``: some of them, for
    the resolution of the method's layer)."""
    def affordable(configured: int | None, maps_per_image: int) -> int:
        return affordable_images(configured, n_images, evaluations or 1.0, maps_per_image,
                                 s.evaluation_budget, s.min_images)

    images: dict[str, int] = {}
    n_robust = affordable(s.robustness_images, s.sensitivity_samples)
    if s.wants("sensitivity_max") and n_robust > 0:
        images["sensitivity_max"] = n_robust
    steps = None
    n_layers = len(parameterised_layers(model))
    n_sanity = affordable(s.sanity_images, n_layers)
    if s.wants("randomization") and n_sanity > 0:
        images["randomization"] = n_sanity
        steps = cascade_budget(n_layers, n_sanity, evaluations, s.evaluation_budget)
    for check in ("random_logit", "emprt"):
        if s.wants(check):
            images[check] = affordable(None, 1)
    resolution = s.reference_resolution or map_resolution(explainer, x)
    return CheckPlan(n_images, evaluations, images, steps, tuple(int(v) for v in resolution))


def score_block(model: nn.Module, explainer: Attribution, x: Tensor, targets: Tensor,
                maps: Tensor, *, start: int, block: int, plan: CheckPlan,
                settings: ScorecardSettings, shared: dict[Any, Any] | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every per-image score of one block (images ``start ..`` of the scorecard, number ``block``
    of :func:`image_blocks`): the map metrics of all its images and the checks of those among
    each check's first ``plan.images[check]`` images. What :func:`summarize` reads; CPU tensors.
    """
    s = block_settings(settings, block)
    device = x.device
    per, details, sec = map_scores(model, x, maps, targets, s, plan.resolution, progress=progress,
                                   shared=shared)
    baselines = getattr(explainer, "baselines", None)
    if s.wants("completeness_gap") and callable(baselines):
        per["completeness_gap"] = _timed(sec, "completeness_gap", device, progress,
                                         lambda: completeness_gap(model, x, maps, targets, baselines(x)))
    checks: dict[str, dict[str, Tensor]] = {}
    cascade: dict[str, Any] | None = None
    for check, count in plan.images.items():
        n = max(0, min(count - start, len(x)))  # this block's images among the check's first
        if n == 0:
            continue
        xs, ts, ms = x[:n], targets[:n], maps[:n]
        if check == "sensitivity_max":
            values = _timed(sec, check, device, progress, lambda: {"sensitivity_max": sensitivity_max(
                explainer, xs, ts, model=model, perturb_radius=s.sensitivity_radius,
                n_perturb_samples=s.sensitivity_samples, seed=s.seed,
                max_examples_per_batch=captum_batch(n, s.sensitivity_samples, 256))})
        elif check == "randomization":  # one randomised model for every block: the global seed
            cascade = _timed(sec, check, device, progress, lambda: randomization(
                model, explainer, xs, ts, maps=ms, seed=settings.seed, steps=plan.steps))
            values = {"randomization_rho": cascade["rho_final"],
                      "randomization_rho_abs": cascade["rho_abs_final"]}
        elif check == "random_logit":
            values = _timed(sec, check, device, progress, lambda: {"random_logit_rho": random_logit(
                model, explainer, xs, ts, maps=ms, seed=s.seed)["rho"]})
        else:  # emprt
            values = _timed(sec, check, device, progress, lambda: {"emprt": emprt(
                model, explainer, xs, ts, maps=ms, randomized_model=_randomized(model, settings.seed, shared),
                n_bins=s.emprt_bins, seed=settings.seed)["score"]})
        checks[check] = values
    return {"start": start, "n": len(x), "per": per, "details": details, "checks": checks,
            "cascade": cascade, "seconds": sec}


def _randomized(model: nn.Module, seed: int, shared: dict[Any, Any] | None) -> nn.Module:
    """The fully randomised copy of ``model`` (eMPRT), made once per ``shared``."""
    if shared is None:
        return randomized_copy(model, seed)
    key = ("randomized_model", id(model), seed)
    if key not in shared:
        shared[key] = randomized_copy(model, seed)
    return shared[key]


def summarize(explainer: Attribution, blocks: Sequence[Mapping[str, Any]], plan: CheckPlan,
              settings: ScorecardSettings, maps_seconds: float | None,
              controls: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The scorecard (module docstring) from the :func:`score_block` results of every block of
    the images, in any order: per-image scores in image order, intervals, verdicts and the
    comparison with the controls' scorecards."""
    s = settings
    blocks = sorted(blocks, key=lambda blk: blk["start"])
    n = plan.n_images
    if sum(blk["n"] for blk in blocks) != n:
        raise XaikitError(f"the blocks hold {sum(blk['n'] for blk in blocks)} images, not {n}")
    per: dict[str, Tensor] = {key: torch.cat([blk["per"][key] for blk in blocks]) for key in blocks[0]["per"]}
    curves = {key: torch.cat([blk["details"]["curves"][key] for blk in blocks])
              for key in blocks[0]["details"]["curves"]}
    details: dict[str, Any] = {}
    first = blocks[0]["details"]
    if "road" in first:
        solves = [blk["details"]["road"] for blk in blocks]
        details["road"] = {
            "percentiles": first["road"]["percentiles"],
            "morf_curve": _mean_curve(curves["road_morf"]), "lerf_curve": _mean_curve(curves["road_lerf"]),
            "iterations": max(r["iterations"] for r in solves),
            "max_relative_residual": max(r["max_relative_residual"] for r in solves),
            "converged": all(r["converged"] for r in solves),
        }
    if "deletion_insertion" in first:
        details["deletion_insertion"] = {
            "fractions": first["deletion_insertion"]["fractions"],
            **{f"{k}_curve": _mean_curve(curves[k])
               for k in ("deletion", "insertion", "deletion_random", "insertion_random")},
            **{k: first["deletion_insertion"][k] for k in ("reference_resolution", "steps", "blur_sigma")},
        }
    for check in plan.images:
        parts = [blk["checks"][check] for blk in blocks if check in blk["checks"]]
        for key in parts[0]:
            per[key] = torch.cat([part[key] for part in parts])
    cascades = [blk["cascade"] for blk in blocks if blk["cascade"] is not None]
    if cascades:
        c = cascades[0]
        rho = torch.cat([cas["rho"] for cas in cascades], dim=1)
        rho_abs = torch.cat([cas["rho_abs"] for cas in cascades], dim=1)
        details["randomization"] = {
            "layers": c["layers"], "n_images": plan.images["randomization"], "cascade": c["cascade"],
            "rho_by_layer": [
                {"layer": name, "step": step, "rho": _interval(r, s), "rho_abs": _interval(r_abs, s)}
                for name, step, r, r_abs in zip(c["layers"], c["steps"], rho, rho_abs)
            ],
        }
    sec: dict[str, float] = {"maps": float(maps_seconds or 0.0)}
    for blk in blocks:
        for key, value in blk["seconds"].items():
            sec[key] = sec.get(key, 0.0) + value
    sec["total"] = sum(sec.values())

    per_image = {key: finite_list(values) for key, values in per.items()}
    metrics = {key: {**_interval(values, s), "higher_is_better": METRICS[key].higher_is_better,
                     "criterion": METRICS[key].criterion}
               for key, values in per_image.items()}
    card: dict[str, Any] = {
        "method": explainer.name or type(explainer).__name__,
        "n_images": int(n),
        "layer": explainer.layer_name,
        "signed": getattr(explainer, "signed", None),
        "settings": asdict(s),
        "metrics": metrics,
        **details,
        "verdicts": _verdicts(metrics, s),
        "per_image": per_image,
        "seconds": sec,
        "seconds_per_image": sec["maps"] / n if n else 0.0,
        "evaluations_per_image": plan.evaluations,
        "images": dict(plan.images),
        "blocks": len(blocks),
    }
    card["versus"], card["headline"] = _against_controls(card, controls, s)
    return card


def scorecard(
    model: nn.Module,
    method: type[Attribution] | Attribution,
    x: Tensor,
    target: TargetLike = None,
    *,
    maps: Tensor | None = None,
    seconds: float | None = None,
    evaluations: float | None = None,
    shared: dict[Any, Any] | None = None,
    controls: Mapping[str, Mapping[str, Any] | Tensor] | None = None,
    settings: ScorecardSettings | None = None,
    layer: str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every metric of :mod:`xaikit.metrics` for one method on a batch of images (keys: module
    docstring), scored in the blocks of :func:`image_blocks`.

    Args:
        model: The classifier (not modified; evaluated in eval mode, flags restored).
        method: An ``Attribution`` class (built with ``layer``/``method_kwargs``) or instance.
        x: Images ``[B, C, H, W]`` as the model takes them (normalised).
        target: Classes (``None``: the model's predictions), fixed for every metric.
        maps, seconds: Maps ``[B, H, W]`` already computed for ``x`` and ``target`` with
            ``method`` (and the seconds they took); not recomputed.
        evaluations: Model evaluations per image that ``maps`` cost (``None``: counted on
            one image); the checks that recompute maps are sized by it
            (``settings.evaluation_budget``).
        shared: A dict passed to every scorecard of the same images, targets and settings:
            what does not depend on the method is computed once and kept there (the random
            reference's deletion/insertion curves, the randomised model). Do not share it
            across other images or models.
        controls: Control name -> its scorecard on the same images (uses ``"per_image"`` and
            ``"seconds_per_image"``) or its maps ``[B, H, W]`` (scored here on
            :data:`MAP_GROUPS`). Each gives a ``versus`` and a ``headline`` entry.
        settings: Options (:class:`ScorecardSettings`; default: the defaults).
        progress: Called with each metric group's name before it runs.
    """
    s = settings or ScorecardSettings()
    unknown = set(s.groups or ()) - set(GROUPS)
    if unknown:
        raise XaikitError(f"unknown metric groups {sorted(unknown)}; valid: {', '.join(GROUPS)}")
    x, targets = prepare(model, x, target)
    device = model_device(model)
    explainer = bind(method, model, layer, method_kwargs)
    if maps is None:
        started = time.perf_counter()
        with count_evaluations(model) as counted:
            maps = explainer(x, targets)
        seconds = seconds_since(started, device)
        evaluations = counted[0] / max(1, x.shape[0])
    elif (evaluations is None and s.evaluation_budget is not None
          and any(s.wants(g) for g in RECOMPUTING_GROUPS)):
        with count_evaluations(model) as counted, torch.no_grad():
            explainer(x[:1], targets[:1])
        evaluations = float(counted[0])
    maps = maps.to(device).float()
    check_maps(x, maps)
    plan = plan_checks(model, explainer, x, x.shape[0], evaluations, s)
    blocks = [score_block(model, explainer, x[r.start:r.stop], targets[r.start:r.stop],
                          maps[r.start:r.stop], start=r.start, block=i, plan=plan, settings=s,
                          shared=shared, progress=progress)
              for i, r in enumerate(image_blocks(x.shape[0]))]
    cards = {name: _control_card(model, x, c, targets, s) if isinstance(c, Tensor) else c
             for name, c in (controls or {}).items()}
    return summarize(explainer, blocks, plan, s, seconds, cards)


def _control_card(model: nn.Module, x: Tensor, maps: Tensor, targets: Tensor,
                  s: ScorecardSettings) -> dict[str, Any]:
    """The per-image map metrics of a control given as maps, in the same blocks and draws."""
    check_maps(x, maps.to(x.device))
    maps = maps.to(x.device).float()
    parts = [map_scores(model, x[r.start:r.stop], maps[r.start:r.stop], targets[r.start:r.stop],
                        block_settings(s, i))[0]
             for i, r in enumerate(image_blocks(x.shape[0]))]
    return {"per_image": {key: finite_list(torch.cat([p[key] for p in parts])) for key in parts[0]},
            "seconds_per_image": None}


def _verdicts(metrics: Mapping[str, Mapping[str, Any]], s: ScorecardSettings) -> dict[str, Any]:
    rules = {  # name: (metric, threshold, passing side)
        "road": ("road_combined", 0.0, "above"),
        "randomization": ("randomization_rho_abs", s.sanity_threshold, "below"),
        "random_logit": ("random_logit_rho", s.random_logit_threshold, "below"),
        "emprt": ("emprt", 0.0, "above"),
    }
    out = {}
    for name, (key, threshold, direction) in rules.items():
        m = metrics.get(key)
        if m is None or m["low"] is None:
            continue
        out[name] = {"verdict": verdict(m, threshold, direction), "metric": key,
                     "threshold": threshold, "direction": direction}
    return out


def _against_controls(card: Mapping[str, Any], controls: Mapping[str, Mapping[str, Any]] | None,
                      s: ScorecardSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    versus: dict[str, Any] = {}
    headline: dict[str, Any] = {}
    for name, control in (controls or {}).items():
        control_per = control.get("per_image") or {}
        control_spi = control.get("seconds_per_image")
        versus[name] = _versus(card["per_image"], control_per, s)
        line: dict[str, Any] = {crit: versus[name][key]["answer"] if key in versus[name] else None
                                for crit, key in CRITERIA.items()}
        spi = card["seconds_per_image"]
        line["cost_ratio"] = spi / control_spi if control_spi else None
        headline[name] = line
    return versus, headline
