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
    }

``versus`` holds the metrics both the method and the control have, paired over their common
first images (controls must be scored on the same images in the same order); the answer says
whether the method is better (``yes``), worse (``no``) or indistinguishable with this many
images (``undecided``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
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
    """The metrics that need only the maps: ``(per_image, details, seconds)``.

    ``per_image`` maps metric names to CPU tensors ``[B]``; ``details`` holds the ``"road"`` and
    ``"deletion_insertion"`` curve summaries of the scorecard. ``shared``: see
    :func:`scorecard`.
    """
    device = x.device
    per: dict[str, Tensor] = {}
    details: dict[str, Any] = {}
    sec: dict[str, float] = {}
    if s.wants("road"):
        r = _timed(sec, "road", device, progress, lambda: road(
            model, x, maps, targets, percentiles=s.percentiles, noise_std=s.road_noise_std,
            data_std=s.data_std, seed=s.seed, batch_size=s.batch_size))
        per.update(road_morf=r["morf"], road_lerf=r["lerf"], road_combined=r["combined"])
        details["road"] = {
            "percentiles": [float(p) for p in r["percentiles"]],
            "morf_curve": _mean_curve(r["morf_curve"]), "lerf_curve": _mean_curve(r["lerf_curve"]),
            "iterations": r["iterations"], "max_relative_residual": r["max_relative_residual"],
            "converged": r["converged"],
        }
    if s.wants("deletion_insertion"):
        res = tuple(int(v) for v in (resolution if resolution is not None else x.shape[-2:]))
        key = ("random_reference", res)
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
        for key in ("deletion", "insertion", "deletion_random", "insertion_random"):
            per[key] = d[key]
        details["deletion_insertion"] = {
            "fractions": d["fractions"].tolist(),
            **{f"{k}_curve": _mean_curve(d[f"{k}_curve"])
               for k in ("deletion", "insertion", "deletion_random", "insertion_random")},
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
    """Every metric of :mod:`xaikit.metrics` for one method on one batch (keys: module docstring).

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
            reference's deletion/insertion curves, per reference resolution). Do not share it
            across other images.
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
    started_all = time.perf_counter()
    sec: dict[str, float] = {}
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
    sec["maps"] = float(seconds or 0.0)
    b = x.shape[0]
    resolution = s.reference_resolution or map_resolution(explainer, x)

    per, details, map_sec = map_scores(model, x, maps, targets, s, resolution, progress=progress,
                                       shared=shared)
    sec.update(map_sec)
    baselines = getattr(explainer, "baselines", None)
    if s.wants("completeness_gap") and callable(baselines):
        per["completeness_gap"] = _timed(sec, "completeness_gap", device, progress,
                                         lambda: completeness_gap(model, x, maps, targets, baselines(x)))
    def affordable(configured: int | None, maps_per_image: int) -> int:
        return affordable_images(configured, b, evaluations or 1.0, maps_per_image,
                                 s.evaluation_budget, s.min_images)

    images: dict[str, int] = {}
    n_robust = affordable(s.robustness_images, s.sensitivity_samples)
    if s.wants("sensitivity_max") and n_robust > 0:
        n = images["sensitivity_max"] = n_robust
        per["sensitivity_max"] = _timed(sec, "sensitivity_max", device, progress, lambda: sensitivity_max(
            explainer, x[:n], targets[:n], model=model, perturb_radius=s.sensitivity_radius,
            n_perturb_samples=s.sensitivity_samples, seed=s.seed,
            max_examples_per_batch=captum_batch(n, s.sensitivity_samples, 256)))
    n_layers = len(parameterised_layers(model))
    n_sanity = affordable(s.sanity_images, n_layers)
    if s.wants("randomization") and n_sanity > 0:
        n = images["randomization"] = n_sanity
        steps = cascade_budget(n_layers, n, evaluations, s.evaluation_budget)
        cascade = _timed(sec, "randomization", device, progress, lambda: randomization(
            model, explainer, x[:n], targets[:n], maps=maps[:n], seed=s.seed, steps=steps))
        per["randomization_rho"] = cascade["rho_final"]
        per["randomization_rho_abs"] = cascade["rho_abs_final"]
        details["randomization"] = {
            "layers": cascade["layers"], "n_images": n, "cascade": cascade["cascade"],
            "rho_by_layer": [
                {"layer": name, "step": step, "rho": _interval(rho, s),
                 "rho_abs": _interval(rho_abs, s)}
                for name, step, rho, rho_abs in zip(cascade["layers"], cascade["steps"],
                                                    cascade["rho"], cascade["rho_abs"])
            ],
        }
    n_once = affordable(None, 1)
    if s.wants("random_logit"):
        n = images["random_logit"] = n_once
        per["random_logit_rho"] = _timed(sec, "random_logit", device, progress, lambda: random_logit(
            model, explainer, x[:n], targets[:n], maps=maps[:n], seed=s.seed)["rho"])
    if s.wants("emprt"):
        n = images["emprt"] = n_once
        per["emprt"] = _timed(sec, "emprt", device, progress, lambda: emprt(
            model, explainer, x[:n], targets[:n], maps=maps[:n],
            randomized_model=randomized_copy(model, s.seed), n_bins=s.emprt_bins, seed=s.seed)["score"])
    sec["total"] = sec["maps"] + seconds_since(started_all, device)

    per_image = {key: finite_list(values) for key, values in per.items()}
    metrics = {key: {**_interval(values, s), "higher_is_better": METRICS[key].higher_is_better,
                     "criterion": METRICS[key].criterion}
               for key, values in per_image.items()}
    card: dict[str, Any] = {
        "method": explainer.name or type(explainer).__name__,
        "n_images": int(b),
        "layer": explainer.layer_name,
        "signed": getattr(explainer, "signed", None),
        "settings": asdict(s),
        "metrics": metrics,
        **details,
        "verdicts": _verdicts(metrics, s),
        "per_image": per_image,
        "seconds": sec,
        "seconds_per_image": sec["maps"] / b if b else 0.0,
        "evaluations_per_image": evaluations,
        "images": images,
    }
    card["versus"], card["headline"] = _against_controls(model, x, targets, card, controls, s)
    return card


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


def _against_controls(model: nn.Module, x: Tensor, targets: Tensor, card: Mapping[str, Any],
                      controls: Mapping[str, Mapping[str, Any] | Tensor] | None,
                      s: ScorecardSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    versus: dict[str, Any] = {}
    headline: dict[str, Any] = {}
    for name, control in (controls or {}).items():
        if isinstance(control, Tensor):
            check_maps(x, control.to(x.device))
            per, _details, _sec = map_scores(model, x, control.to(x.device).float(), targets, s)
            control_per = {k: finite_list(v) for k, v in per.items()}
            control_spi = None
        else:
            control_per = control.get("per_image") or {}
            control_spi = control.get("seconds_per_image")
        versus[name] = _versus(card["per_image"], control_per, s)
        line: dict[str, Any] = {crit: versus[name][key]["answer"] if key in versus[name] else None
                                for crit, key in CRITERIA.items()}
        spi = card["seconds_per_image"]
        line["cost_ratio"] = spi / control_spi if control_spi else None
        headline[name] = line
    return versus, headline
