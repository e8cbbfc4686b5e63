"""Explain a trained run: attribution maps from several methods, scored, in one grid and JSON.

``explain_run`` picks test images (N spread over the classes, given ids, or only misclassified ones), runs
each method over them in batches, scores each method with
:func:`xaikit.attribution.metrics.score_method` (deletion/insertion AUC against a random map,
cascading randomisation sanity, IG completeness, bootstrap intervals), and writes
``explanations.json`` and ``explanations.png`` (rows: images; columns: input, then methods).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from xaikit.attribution.metrics import score_method
from xaikit.data import normalize
from xaikit.errors import XaikitError
from xaikit.evaluate import predict
from xaikit.registry import get_attribution, list_attributions
from xaikit.report.figures import explanation_grid
from xaikit.runs_io import write_json
from xaikit.specs import DataBundle
from xaikit.train.runs import load_model, load_run, load_run_data, resolve_device

DEFAULT_METHODS = ("gradcam", "integrated-gradients")
EXPLANATIONS_JSON = "explanations.json"
EXPLANATIONS_PNG = "explanations.png"

ProgressFn = Callable[[str, int, int], None]


@dataclass
class Selection:
    """Test images chosen for explanation (all tensors on the CPU except ``x``)."""

    ids: list[int]
    images: Tensor  # uint8 [N, C, H, W]
    labels: list[int]
    preds: list[int]
    confidences: list[float]
    x: Tensor  # normalised float [N, C, H, W] on the device


def resolve_methods(methods: Sequence[str] | None) -> list[str]:
    """``None``/empty: the defaults; ``["all"]``: every registered method; else check each name."""
    if not methods:
        return list(DEFAULT_METHODS)
    if list(methods) == ["all"]:
        return list_attributions()
    for name in methods:
        get_attribution(name)  # UnknownNameError lists the registered ones
    return list(dict.fromkeys(methods))


def spread_over_classes(labels: Tensor, n: int) -> Tensor:
    """Indices of ``n`` images taken round-robin over the classes, each class in its own order.

    The first image of each class, then the second of each, and so on, so that any ``n`` gives a
    class-balanced, deterministic choice whether the split is shuffled (CIFAR batches) or
    grouped by class (an ImageFolder tree).
    """
    labels = labels.cpu()
    order = torch.argsort(labels, stable=True)
    grouped = labels[order]
    first_of_class = torch.searchsorted(grouped, grouped, right=False)
    rank_in_class = torch.arange(len(grouped)) - first_of_class
    key = rank_in_class * (int(labels.max()) + 1) + grouped
    return order[torch.argsort(key, stable=True)][:n]


def select_images(
    model: nn.Module,
    data: DataBundle,
    device: torch.device,
    n_images: int = 16,
    ids: Sequence[int] | None = None,
    misclassified: bool = False,
) -> Selection:
    """Choose test images, with the model's predictions and confidences: ``ids`` if given, else
    ``n_images`` spread over the classes (:func:`spread_over_classes`), only misclassified ones
    with ``misclassified``."""
    total = len(data.test_labels)
    probs = None  # of the chosen images; computed once
    if ids:
        bad = [i for i in ids if not 0 <= i < total]
        if bad:
            raise XaikitError(f"test image ids must be in 0..{total - 1}, got {bad}")
        chosen = torch.as_tensor(list(ids), dtype=torch.long)
    elif n_images < 1:
        raise XaikitError("--images must be at least 1")
    elif misclassified:
        all_probs = predict(model, data.test_images, data.mean, data.std, device).cpu()
        wrong = (all_probs.argmax(1) != data.test_labels.cpu()).nonzero().flatten()
        if len(wrong) == 0:
            raise XaikitError("the model classifies every test image correctly; nothing to show")
        chosen = wrong[spread_over_classes(data.test_labels.cpu()[wrong], n_images)]
        probs = all_probs[chosen]
    else:
        chosen = spread_over_classes(data.test_labels, n_images)
    images = data.test_images.cpu()[chosen]
    if probs is None:
        probs = predict(model, images, data.mean, data.std, device).cpu()
    x = normalize(images.to(device), data.mean, data.std)
    return Selection(
        ids=chosen.tolist(),
        images=images,
        labels=data.test_labels.cpu()[chosen].tolist(),
        preds=probs.argmax(1).tolist(),
        confidences=probs.max(1).values.tolist(),
        x=x,
    )


def compute_maps(
    model: nn.Module, method: Any, x: Tensor, targets: Tensor, batch_size: int,
    progress: ProgressFn | None = None,
) -> tuple[Tensor, float]:
    """Maps ``[N, H, W]`` of ``method`` in batches of ``batch_size``, and the seconds taken."""
    chunks = []
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        chunks.append(method(x[start:start + batch_size], targets[start:start + batch_size]))
        if progress:
            progress(method.name, min(start + batch_size, len(x)), len(x))
    maps = torch.cat(chunks)
    if maps.device.type == "cuda":
        torch.cuda.synchronize(maps.device)
    return maps, time.perf_counter() - started


def explain_run(
    run_path: str | Path,
    methods: Sequence[str] | None = None,
    n_images: int = 16,
    ids: Sequence[int] | None = None,
    misclassified: bool = False,
    layer: str | None = None,
    out: str | Path | None = None,
    data_path: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    sanity_images: int = 8,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Explain a run's predictions with each method; write ``explanations.json`` and the grid.

    Args:
        run_path: A run folder written by ``xaikit train``.
        methods: Registered method names (default: gradcam and integrated-gradients;
            ``["all"]``: every registered method).
        n_images: How many test images (round-robin over the classes; see spread_over_classes).
        ids: Explicit test image indices (override ``n_images``).
        misclassified: Only images the model gets wrong.
        layer: Layer for methods that use one (default: the model spec's target layer).
        out: Output folder (default: the run folder).
        data_path: Data location, when it differs from the one recorded in the run.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Images per method call.
        sanity_images: Images used by the (costly) randomisation check; 0 skips it.
        progress: ``progress(method, done, total)`` after each batch.

    Returns:
        The dict written to ``explanations.json``.
    """
    names = resolve_methods(methods)
    run = load_run(run_path)
    dev = resolve_device(device)
    model = load_model(run, dev)
    data = load_run_data(run, data_path)
    selection = select_images(model, data, dev, n_images, ids, misclassified)
    targets = torch.as_tensor(selection.preds, device=dev)
    out_dir = Path(out) if out else run.path

    results: dict[str, Any] = {}
    all_maps: dict[str, Tensor] = {}
    signed: dict[str, bool] = {}
    for name in names:
        cls = get_attribution(name)
        method = cls(model, layer=layer if cls.uses_layer else None)
        maps, seconds = compute_maps(model, method, selection.x, targets, batch_size, progress)
        scores = score_method(
            model, method, selection.x, targets, mean=None, sanity=sanity_images > 0,
            sanity_images=sanity_images, maps=maps, seconds=seconds,
        )
        scores.pop("per_image", None)
        scores["seconds_per_image"] = seconds / len(selection.ids)
        scores["layer"] = method.layer_name
        scores["signed"] = cls.signed
        scores["scale"] = cls.scale
        results[name] = scores
        all_maps[name] = maps.cpu()
        signed[name] = cls.signed
        if progress:
            progress(f"{name} scored", len(selection.ids), len(selection.ids))

    grid = explanation_grid(
        selection.images, all_maps, signed, selection.labels, selection.preds, run.classes,
        out_dir / EXPLANATIONS_PNG, confidences=selection.confidences,
    )
    record = {
        "run": str(run.path),
        "model": run.spec.name,
        "device": str(dev),
        "classes": run.classes,
        "ids": selection.ids,
        "labels": selection.labels,
        "preds": selection.preds,
        "confidences": selection.confidences,
        "misclassified_only": misclassified,
        "grid": grid.name,
        "methods": results,
    }
    write_json(out_dir / EXPLANATIONS_JSON, record)
    return record


def explain_model(
    model: nn.Module, x: Tensor, methods: Sequence[str], layer: str | None = None,
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """Maps of each method for normalised images ``x`` (predicted classes), for figures."""
    with torch.no_grad():
        targets = model(x).argmax(1)
    maps = {}
    for name in methods:
        cls = get_attribution(name)
        method = cls(model, layer=layer if cls.uses_layer else None)
        maps[name] = compute_maps(model, method, x, targets, batch_size)[0].cpu()
    return maps
