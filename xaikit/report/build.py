"""``build_report``: everything about one run on one self-contained HTML page.

The page reuses ``metrics.json`` and ``explanations.json`` when they are present and fit the
run (same classes, written after the checkpoint, every asked-for method, enough images), and
computes them with :func:`xaikit.evaluate.evaluate_run` / :func:`xaikit.explain.explain_run`
otherwise (a computed ``explanations.json`` goes to ``RUN/figures/`` so that the output of
``xaikit explain`` is never overwritten). Figures are written as PNGs to ``RUN/figures/`` and
embedded in the page as ``data:`` URIs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from xaikit.errors import XaikitError
from xaikit.evaluate import METRICS_NAME, evaluate_run
from xaikit.explain import (
    EXPLANATIONS_JSON,
    explain_model,
    explain_run,
    select_images,
    spread_over_classes,
)
from xaikit.registry import get_attribution, list_attributions
from xaikit.report import charts, method_sections, sections
from xaikit.report.figures import explanation_grid, overlay
from xaikit.report.html import esc, render_page
from xaikit.report.summary import layer_summary
from xaikit.runs_io import write_text
from xaikit.train.runs import ENV_NAME, Run, load_model, load_run, load_run_data, resolve_device

REPORT_DEFAULT_METHODS = (
    "gradcam",
    "gradcam++",
    "scorecam",
    "saliency",
    "integrated-gradients",
    "smoothgrad",
)
REPORT_NAME = "report.html"
FIGURES_DIR = "figures"
GALLERY_METHOD = "gradcam"

ProgressFn = Callable[[str], None]


def report_methods(methods: Sequence[str] | None) -> list[str]:
    """The methods of the page.

    ``None``/empty: those of :data:`REPORT_DEFAULT_METHODS` that are registered; ``["all"]``:
    every registered method; else the given names, each checked (``UnknownNameError`` lists
    the registered ones).

    Raises:
        XaikitError: no method is left.
    """
    registered = list_attributions()
    if not methods:
        chosen = [m for m in REPORT_DEFAULT_METHODS if m in registered]
    elif list(methods) == ["all"]:
        chosen = registered
    else:
        for name in methods:
            get_attribution(name)
        chosen = list(dict.fromkeys(methods))
    if not chosen:
        raise XaikitError(
            "no attribution method is registered; install a plugin such as xaikit-gradcam"
        )
    return chosen


def _newer_than_checkpoint(path: Path, run: Run) -> bool:
    checkpoint = run.checkpoint_path
    return not checkpoint.exists() or path.stat().st_mtime >= checkpoint.stat().st_mtime


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reusable_metrics(run: Run) -> dict[str, Any] | None:
    """``RUN/metrics.json`` if it is readable, complete, of the run's classes and newer than
    the checkpoint; else ``None``."""
    path = run.path / METRICS_NAME
    if not path.is_file() or not _newer_than_checkpoint(path, run):
        return None
    metrics = _read(path)
    needed = ("accuracy", "per_class", "macro_avg", "confusion_matrix", "misclassified")
    if not isinstance(metrics, dict) or any(key not in metrics for key in needed):
        return None
    if list(metrics["per_class"]) != run.classes or len(metrics["confusion_matrix"]) != len(
        run.classes
    ):
        return None
    return metrics


def reusable_explanations(
    run: Run, methods: Sequence[str], n_images: int
) -> tuple[dict[str, Any], Path] | None:
    """An ``explanations.json`` (in the run, then in ``RUN/figures``) that covers ``methods`` on at
    least ``n_images`` images of this run's model and classes and is newer than the checkpoint,
    with its folder; else ``None``."""
    for folder in (run.path, run.path / FIGURES_DIR):
        path = folder / EXPLANATIONS_JSON
        if not path.is_file() or not _newer_than_checkpoint(path, run):
            continue
        record = _read(path)
        if not isinstance(record, dict) or record.get("model") != run.spec.name:
            continue
        if record.get("classes") != run.classes or len(record.get("ids") or []) < n_images:
            continue
        scores = record.get("methods") or {}
        if all(
            m in scores and "deletion" in scores[m] and "insertion" in scores[m] for m in methods
        ):
            return record, folder
    return None


def _png_bytes(rgb: np.ndarray) -> bytes:
    """PNG of an RGB array (floats in 0..1 or uint8) at its own size."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _gallery_method(methods: Sequence[str]) -> str | None:
    registered = list_attributions()
    if GALLERY_METHOD in registered:
        return GALLERY_METHOD
    cams = [m for m in registered if get_attribution(m).uses_layer]
    return (cams or list(methods) or [None])[0]


def build_report(
    run_path: str | Path,
    methods: Sequence[str] | None = None,
    n_images: int = 16,
    data_path: str | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write the HTML report of a run and its PNG figures; return the HTML path.

    Args:
        run_path: A run folder written by ``xaikit train``.
        methods: Attribution methods (see :func:`report_methods`).
        n_images: Test images explained side by side, and misclassified images in the gallery.
        data_path: Data location, when it differs from the one recorded in the run.
        device: ``auto``, ``cpu`` or ``cuda``.
        out: The HTML file (default ``RUN/report.html``); figures always go to ``RUN/figures/``.
        progress: ``progress(message)`` before each step.

    Raises:
        XaikitError: a bad run folder, unknown method, missing data, ``n_images < 1``...
    """
    say = progress or (lambda message: None)
    if n_images < 1:
        raise XaikitError("--images must be at least 1")
    names = report_methods(methods)
    run = load_run(run_path)
    dev = resolve_device(device)
    figures = run.path / FIGURES_DIR
    figures.mkdir(exist_ok=True)
    model = load_model(run, dev)
    say("loading data")
    data = load_run_data(run, data_path)

    metrics = reusable_metrics(run)
    if metrics is None:
        say("evaluating on the test split")
        metrics = evaluate_run(run, data_path=data_path, device=dev)
        metrics_note = (
            "Computed now with <code>xaikit evaluate</code>'s code; saved to metrics.json."
        )
    else:
        metrics_note = f"From metrics.json (evaluated {esc(metrics.get('evaluated', 'earlier'))})."

    found = reusable_explanations(run, names, min(n_images, len(data.test_labels)))
    if found is None:
        say(f"explaining {n_images} images with {len(names)} methods")
        record = explain_run(
            run.path,
            names,
            n_images,
            out=figures,
            data_path=data_path,
            device=str(dev),
            progress=lambda name, done, total: say(f"{name}: {done}/{total}"),
        )
        scores_note = "Computed now; saved to figures/explanations.json."
    else:
        record, record_dir = found
        where = (
            EXPLANATIONS_JSON if record_dir == run.path else f"{FIGURES_DIR}/{EXPLANATIONS_JSON}"
        )
        writer = "xaikit explain" if record_dir == run.path else "a report"
        scores_note = f"From {where} (written earlier by {writer})."

    say("drawing figures")
    grid_rows, grid_png = _explanation_rows(
        model, data, dev, record, names, n_images, figures, run, draw_png=found is not None
    )
    curves_png = (
        charts.training_curves(run.history, figures / "training.png") if run.history else None
    )
    lr_png = (
        charts.lr_schedule(
            run.history,
            run.config.get("recipe"),
            run.config.get("num_train"),
            figures / "lr_schedule.png",
        )
        if run.history
        else None
    )
    matrix_png = charts.confusion_matrix_figure(
        metrics["confusion_matrix"], run.classes, figures / "confusion_matrix.png"
    )
    scores = {m: record["methods"][m] for m in names}
    faithfulness_png = charts.faithfulness_figure(scores, figures / "faithfulness.png")
    randomisation_png = charts.randomisation_figure(scores, figures / "randomisation.png")
    say("misclassified gallery")
    gallery, gallery_method, gallery_png = _gallery(
        model, data, dev, metrics, run, names, n_images, figures
    )

    summary = layer_summary(model, run.spec.input_shape, dev)
    env = _read(run.path / ENV_NAME) if (run.path / ENV_NAME).is_file() else None
    page_sections = [
        sections.run_section(
            run.config,
            env if isinstance(env, dict) else None,
            run.history,
            summary,
            run.path,
            run.spec.description,
        ),
        sections.training_section(run.history, curves_png, lr_png),
        sections.evaluation_section(metrics, run.classes, matrix_png, metrics_note),
        method_sections.gallery_section(
            gallery, gallery_method, len(metrics["misclassified"]), gallery_png
        ),
        method_sections.explanations_section(
            grid_rows, grid_png, names, scores, bool(record.get("misclassified_only"))
        ),
        method_sections.scores_section(
            scores, faithfulness_png, randomisation_png, len(record["ids"]), scores_note
        ),
    ]
    failing = [m for m, score in scores.items() if method_sections.fails_sanity(score)]
    seconds = sum(float(h.get("seconds", 0.0)) for h in run.history)
    stats = [
        ("test accuracy", f"{metrics['accuracy']:.2%}"),
        ("parameters", f"{summary.total_params:,}"),
        ("epochs", str(len(run.history))),
        ("training time", sections.format_seconds(seconds)),
        (f"methods, {len(failing)} failing sanity" if failing else "methods", str(len(names))),
    ]
    source = run.config.get("data_source") or run.config.get("dataset", "")
    page = render_page(
        title=f"{run.spec.name}: run report",
        subtitle=f"{run.path.resolve()} · {source}",
        stats=stats,
        sections=page_sections,
        footer=f"xaikit report · {esc(metrics.get('device', dev))} · "
        f"figures in <code>{esc(figures)}</code>",
    )
    target = Path(out) if out else run.path / REPORT_NAME
    return write_text(target, page)


def _explanation_rows(
    model: Any,
    data: Any,
    dev: Any,
    record: dict[str, Any],
    names: Sequence[str],
    n_images: int,
    figures: Path,
    run: Run,
    draw_png: bool,
) -> tuple[list[method_sections.GridRow], Path]:
    """Maps of every method on the first ``n_images`` of the record's images, as page rows, and
    ``figures/explanations.png`` (drawn unless ``explain_run`` just drew the same grid there)."""
    selection = select_images(model, data, dev, ids=list(record["ids"])[:n_images])
    maps = explain_model(model, selection.x, names)
    signed = {m: bool(get_attribution(m).signed) for m in names}
    target = figures / "explanations.png"
    if draw_png or not target.is_file():
        explanation_grid(
            selection.images,
            maps,
            signed,
            selection.labels,
            selection.preds,
            run.classes,
            target,
            confidences=selection.confidences,
        )
    rows = [
        method_sections.GridRow(
            **_image_fields(selection, i, run),
            map_pngs={m: _png_bytes(overlay(image, maps[m][i], signed[m])) for m in names},
        )
        for i, image in enumerate(selection.images)
    ]
    return rows, target


def _image_fields(selection: Any, i: int, run: Run) -> dict[str, Any]:
    """What a grid row and a gallery tile show of image ``i`` of a selection."""
    return {
        "test_id": selection.ids[i],
        "true_class": run.classes[selection.labels[i]],
        "predicted_class": run.classes[selection.preds[i]],
        "confidence": float(selection.confidences[i]),
        "input_png": _png_bytes(selection.images[i].permute(1, 2, 0).numpy()),
    }


def _gallery(
    model: Any,
    data: Any,
    dev: Any,
    metrics: dict[str, Any],
    run: Run,
    names: Sequence[str],
    n_images: int,
    figures: Path,
) -> tuple[list[method_sections.GalleryItem], str | None, Path | None]:
    """Tiles of ``n_images`` misclassified test images (round-robin over their true classes)
    with their CAM overlay."""
    total = len(data.test_labels)
    wrong = torch.as_tensor([int(i) for i in metrics["misclassified"] if 0 <= int(i) < total],
                            dtype=torch.long)
    ids = wrong[spread_over_classes(data.test_labels.cpu()[wrong], n_images)].tolist() if len(wrong) else []
    if not ids:
        return [], None, None
    selection = select_images(model, data, dev, ids=ids)
    method = _gallery_method(names)
    maps = explain_model(model, selection.x, [method])[method] if method else None
    signed = bool(get_attribution(method).signed) if method else False
    items = [
        method_sections.GalleryItem(
            **_image_fields(selection, i, run),
            overlay_png=_png_bytes(overlay(image, maps[i], signed)) if maps is not None else None,
        )
        for i, image in enumerate(selection.images)
    ]
    png = charts.misclassified_figure(
        selection.images,
        maps,
        selection.labels,
        selection.preds,
        selection.confidences,
        run.classes,
        figures / "misclassified.png",
        method or "",
    )
    return items, method, png
