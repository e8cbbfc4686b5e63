"""``build_report``: everything about one run on one self-contained HTML page.

The page reuses ``metrics.json`` and a saved explanation (``explanations.json`` with its maps,
from ``xaikit explain`` in the run folder or an earlier report) when they are present and fit
the run (same classes, written after the checkpoint, every asked-for method on enough images,
the same layer), and computes them with :func:`xaikit.evaluate.evaluate_run` /
:func:`xaikit.explain.explain` otherwise. Figures are written as PNGs beside the HTML file
(``RUN/figures/`` for the default ``RUN/report.html``, ``NAME-figures/`` beside ``NAME.html``
otherwise; a computed explanation is saved there too, so ``xaikit explain``'s own files are
never overwritten) and embedded in the page as ``data:`` URIs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from xaikit.atomic import atomic_write_text
from xaikit.attribution.plot import overlay
from xaikit.distributed import is_main, rank_device
from xaikit.errors import RunError, XaikitError
from xaikit.evaluate import evaluate_run, read_metrics
from xaikit.explain import (
    Explanation,
    Selection,
    build_method,
    compute_maps,
    explain,
    load_explanation,
    select_images,
    spread_over_classes,
)
from xaikit.registry import get_attribution, list_attributions, resolve_methods
from xaikit.report import (
    charts,
    method_sections,
    score_charts,
    score_format,
    score_sections,
    sections,
    trust_section,
    verdicts,
)
from xaikit.report.html import esc, render_page
from xaikit.report.summary import layer_summary
from xaikit.run import (
    FIGURES_DIR,
    METRICS_NAME,
    REPORT_NAME,
    Run,
    check_output_file,
    check_output_folder,
    load_data,
    load_model,
    load_run,
    read_env,
)

REPORT_DEFAULT_METHODS = (
    "gradcam",
    "gradcam++",
    "scorecam",
    "saliency",
    "integrated-gradients",
    "smoothgrad",
)
GALLERY_METHOD = "gradcam"

ProgressFn = Callable[[str], None]


def figures_dir(run: Run, html: Path) -> Path:
    """Where the figures of the page ``html`` go: beside it (``RUN/figures`` for the default
    page, ``NAME-figures`` for any other ``NAME.html``)."""
    if html.resolve() == (run.path / REPORT_NAME).resolve():
        return run.path / FIGURES_DIR
    return html.parent / f"{html.stem}-figures"


def _newer_than_checkpoint(path: Path, run: Run) -> bool:
    checkpoint = run.checkpoint_path
    return not checkpoint.exists() or path.stat().st_mtime >= checkpoint.stat().st_mtime


def reusable_metrics(run: Run) -> dict[str, Any] | None:
    """``RUN/metrics.json`` if it is valid (:func:`xaikit.evaluate.read_metrics`), of the
    run's classes and newer than the checkpoint; else ``None`` (it is then recomputed)."""
    path = run.file(METRICS_NAME)
    if not path.is_file() or not _newer_than_checkpoint(path, run):
        return None
    try:
        return dict(read_metrics(path, run.classes))
    except RunError:
        return None


def reusable_explanation(
    run: Run, methods: Sequence[str], n_images: int, layer: str | None, folders: Sequence[Path]
) -> tuple[Explanation, Path] | None:
    """A saved explanation (the first of ``folders`` that has one) of this run that covers
    ``methods`` (explained or skipped) on at least ``n_images`` images with ``layer`` and is
    newer than the checkpoint, cut to those methods and images, with its folder; else ``None``."""
    for folder in folders:
        path = folder / "explanations.json"
        if not path.is_file() or not _newer_than_checkpoint(path, run):
            continue
        try:
            found = load_explanation(run, folder)
        except RunError:
            continue
        if found.selection.files or found.selection.targets != found.selection.preds:
            continue  # the page explains the predictions of test images
        covered = all(m in found.results or m in found.skipped for m in methods)
        layers_fit = layer is None or all(
            r.layer in (None, layer) for m, r in found.results.items() if m in methods
        )
        if covered and layers_fit and len(found.selection) >= n_images:
            found.selection = found.selection.head(n_images)
            found.results = {
                m: type(r)(m, r.maps[:n_images], r.scores, r.signed, r.layer)
                for m, r in found.results.items() if m in methods
            }
            found.skipped = {m: why for m, why in found.skipped.items() if m in methods}
            return found, folder
    return None


def _png_bytes(rgb: np.ndarray) -> bytes:
    """PNG of an RGB array (floats in 0..1 or uint8) at its own size."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def build_report(
    run_path: str | Path,
    methods: Sequence[str] | None = None,
    *,
    n_images: int = 16,
    layer: str | None = None,
    sanity_images: int = 8,
    batch_size: int = 64,
    data_path: str | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write the HTML report of a run and its PNG figures; return the HTML path.

    Args:
        run_path: A run folder written by ``xaikit train``.
        methods: Attribution methods (default :data:`REPORT_DEFAULT_METHODS`, those
            registered; ``["all"]``: every registered one).
        n_images: Test images explained side by side, and misclassified images in the gallery.
        layer, sanity_images, batch_size: As for ``xaikit explain``.
        data_path: Data location, when it differs from the one recorded in the run.
        device: ``auto``, ``cpu`` or ``cuda``.
        out: The HTML file (default ``RUN/report.html``); figures go beside it.
        progress: ``progress(message)`` before each step.

    Raises:
        XaikitError: a bad run folder, unknown method, missing data, ``n_images < 1``...
    """
    say = progress or (lambda message: None)
    if n_images < 1:
        raise XaikitError("--images must be at least 1")
    if sanity_images < 0:
        raise XaikitError("--sanity-images must be >= 0")
    if batch_size < 1:
        raise XaikitError("--batch-size must be at least 1")
    names = resolve_methods(methods, REPORT_DEFAULT_METHODS)
    run = load_run(run_path)
    dev = rank_device(device)
    html_path = check_output_file(out) if out else run.path / REPORT_NAME
    figures = check_output_folder(figures_dir(run, html_path), "the figures folder")
    model = load_model(run, dev)
    say("loading data")
    data = load_data(run, data_path)

    metrics = reusable_metrics(run)
    if metrics is None:
        say("evaluating on the test split")
        metrics = evaluate_run(run, data_path=data_path, device=dev)
        metrics_note = (
            "Computed now with <code>xaikit evaluate</code>'s code; saved to metrics.json."
        )
    else:
        metrics_note = f"From metrics.json (evaluated {esc(metrics.get('evaluated', 'earlier'))})."

    wanted = min(n_images, len(data.test_labels))
    folders = list(dict.fromkeys((run.path, run.path / FIGURES_DIR, figures)))
    found = reusable_explanation(run, names, wanted, layer, folders)
    if found is None:
        say(f"explaining {wanted} images with {len(names)} methods")
        explanation = explain(
            run, names, n_images=wanted, layer=layer, device=dev, batch_size=batch_size,
            sanity_images=sanity_images, model=model, data=data,
            progress=lambda name, done, total: say(f"{name}: {done}/{total}"),
        )
        if is_main():
            explanation.save(figures)
        scores_note = f"Computed now; saved to {esc(figures.name)}/explanations.json."
    else:
        explanation, record_dir = found
        figures.mkdir(parents=True, exist_ok=True)
        explanation.draw_grid(figures / "explanations.png")
        writer = "xaikit explain" if record_dir == run.path else "an earlier report"
        where = record_dir.relative_to(run.path) if record_dir.is_relative_to(run.path) else record_dir
        shown = "explanations.json" if where == Path(".") else f"{where}/explanations.json"
        scores_note = f"From {esc(shown)} (written earlier by {writer})."

    if not is_main():  # under torchrun the others helped with evaluate and explain; rank 0 writes
        return html_path
    say("drawing figures")
    names = list(explanation.results)
    grid_rows = _explanation_rows(explanation)
    curves_png = charts.training_curves(run.history, figures / "training.png") if run.history else None
    lr_png = (
        charts.lr_schedule(run.history, run.config.recipe.to_dict(), run.config.data.num_train,
                           figures / "lr_schedule.png")
        if run.history and run.config.recipe and run.config.data
        else None
    )
    matrix_png = charts.confusion_matrix_figure(
        metrics["confusion_matrix"], run.classes, figures / "confusion_matrix.png"
    )
    scores = explanation.scores
    control_set = score_format.combined(scores, explanation.controls)[1]
    score_figures = _score_figures(scores, explanation.controls, figures)
    say("misclassified gallery")
    gallery, gallery_method, gallery_png = _gallery(
        model, data, dev, metrics, run, names, n_images, figures, layer, batch_size
    )

    summary = layer_summary(model, run.spec.input_shape, dev)
    # the scorecards may cover more images than the grid shows (a reused explanation)
    n_scored = max((int(card["n_images"]) for card in scores.values()), default=len(explanation.selection))
    page_sections = [
        sections.run_section(run, read_env(run.path), summary),
        sections.training_section(run.history, curves_png, lr_png),
        sections.evaluation_section(metrics, run.classes, matrix_png, metrics_note),
        trust_section.headline_section(
            scores, explanation.controls, n_scored, scores_note
        ),
        method_sections.gallery_section(
            gallery, gallery_method, len(metrics["misclassified"]), gallery_png
        ),
        method_sections.explanations_section(
            grid_rows, figures / "explanations.png", names, scores, explanation.misclassified_only,
            skipped=explanation.skipped,
        ),
        score_sections.scores_section(
            scores, explanation.controls, n_scored, score_figures
        ),
    ]
    shown = [m for m in scores if m not in control_set]
    failing = [m for m in shown if verdicts.fails_sanity(scores[m])]
    trusted = [m for m in shown if verdicts.trust(scores[m]) == "pass"]
    seconds = sum(float(h["seconds"]) for h in run.history)
    stats = [
        ("test accuracy", f"{metrics['accuracy']:.2%}"),
        ("parameters", f"{summary.total_params:,}"),
        ("epochs", str(len(run.history))),
        ("training time", sections.format_seconds(seconds)),
        (f"methods, {len(failing)} failing sanity" if failing else "methods", str(len(names))),
    ]
    if shown and control_set:
        stats.append(("beat all controls, pass sanity", f"{len(trusted)} of {len(shown)}"))
    source = run.config.data.source if run.config.data else run.config.dataset
    page = render_page(
        title=f"{run.spec.name}: run report",
        subtitle=f"{run.path.resolve()} · {source}",
        stats=stats,
        sections=page_sections,
        footer=f"xaikit report · {esc(metrics.get('device', dev))} · "
        f"figures in <code>{esc(figures)}</code>",
    )
    return atomic_write_text(html_path, page)


def _score_figures(
    scores: dict[str, Any], controls: dict[str, Any], figures: Path
) -> dict[str, Path | None]:
    """The scorecard figures of the methods and the controls (controls grey), by name."""
    cards, control_set = score_format.combined(scores, controls)
    order = verdicts.headline_order(cards, verdicts.faithfulness_ranks(cards))
    ranked = {n: cards[n] for n in order}
    return {
        "faithfulness": score_charts.faithfulness_figure(
            ranked, figures / "faithfulness.png", control_set
        ),
        "road": score_charts.road_curves_figure(cards, figures / "road.png", control_set),
        "randomisation": score_charts.randomisation_figure(
            cards, figures / "randomisation.png", control_set
        ),
    }


def _explanation_rows(explanation: Explanation) -> list[method_sections.GridRow]:
    """The page rows of an explanation: each image with one overlay per method."""
    s = explanation.selection
    return [
        method_sections.GridRow(
            **_image_fields(s, i, explanation.classes),
            map_pngs={m: _png_bytes(overlay(image, r.maps[i], r.signed))
                      for m, r in explanation.results.items()},
        )
        for i, image in enumerate(s.images)
    ]


def _image_fields(selection: Selection, i: int, classes: Sequence[str]) -> dict[str, Any]:
    """What a grid row and a gallery tile show of image ``i`` of a selection."""
    return {
        "test_id": selection.ids[i],
        "true_class": classes[selection.labels[i]],
        "predicted_class": classes[selection.preds[i]],
        "confidence": float(selection.confidences[i]),
        "input_png": _png_bytes(selection.images[i].permute(1, 2, 0).numpy()),
    }


def _gallery_method(methods: Sequence[str]) -> str | None:
    """The CAM method of the gallery: gradcam where registered, else the first CAM method, else
    the first method of the page."""
    registered = list_attributions()
    if GALLERY_METHOD in registered:
        return GALLERY_METHOD
    cams = [m for m in registered if get_attribution(m).uses_layer]
    return (cams or list(methods) or [None])[0]


def _gallery(
    model: Any,
    data: Any,
    dev: torch.device,
    metrics: dict[str, Any],
    run: Run,
    names: Sequence[str],
    n_images: int,
    figures: Path,
    layer: str | None,
    batch_size: int,
) -> tuple[list[method_sections.GalleryItem], str | None, Path | None]:
    """Tiles of ``n_images`` misclassified test images (round-robin over their true classes)
    with the overlay of the gallery method for the predicted class (none if it cannot apply)."""
    total = len(data.test_labels)
    wrong = torch.as_tensor([int(i) for i in metrics["misclassified"] if 0 <= int(i) < total],
                            dtype=torch.long)
    ids = wrong[spread_over_classes(data.test_labels.cpu()[wrong], n_images)].tolist() if len(wrong) else []
    if not ids:
        return [], None, None
    selection = select_images(model, data, dev, ids=ids)
    method_name = _gallery_method(names)
    maps, signed = None, False
    if method_name is not None:
        try:
            method = build_method(method_name, model, layer)
        except XaikitError:  # cannot apply to this model (or to this layer): no overlay
            method_name = None
        else:
            targets = torch.as_tensor(selection.preds, device=dev)
            maps, _ = compute_maps(method, selection.inputs(data, dev), targets, batch_size)
            signed = method.signed
    items = [
        method_sections.GalleryItem(
            **_image_fields(selection, i, run.classes),
            overlay_png=_png_bytes(overlay(image, maps[i], signed)) if maps is not None else None,
        )
        for i, image in enumerate(selection.images)
    ]
    png = charts.misclassified_figure(
        selection.images, maps, selection.labels, selection.preds, selection.confidences,
        run.classes, figures / "misclassified.png", method_name or "",
    )
    return items, method_name, png
