"""The cards of the report page, each built from plain data into escaped HTML.

Every value that comes from a run (class names, paths, method names, versions) passes through
:func:`xaikit.report.html.esc`; numbers are formatted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from xaikit.report.html import Section, esc, figure, img_tag, table
from xaikit.report.summary import ModelSummary, format_shape

RANDOMIZATION_PAPER = "Adebayo et al., “Sanity Checks for Saliency Maps”, NeurIPS 2018"


@dataclass(frozen=True)
class GalleryItem:
    """One misclassified test image: its index, classes, confidence and two PNGs."""

    test_id: int
    true_class: str
    predicted_class: str
    confidence: float
    input_png: bytes
    overlay_png: bytes | None


@dataclass(frozen=True)
class GridRow:
    """One explained test image: its index, classes, confidence, the input PNG and one overlay
    PNG per method."""

    test_id: int
    true_class: str
    predicted_class: str
    confidence: float
    input_png: bytes
    map_pngs: Mapping[str, bytes]


def format_seconds(seconds: float) -> str:
    """``12.3`` -> ``"12.3 s"``, ``250`` -> ``"4 min 10 s"``, ``3725`` -> ``"1 h 02 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(int(round(seconds)), 60)
        return f"{minutes} min {secs} s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} min"


def _facts(pairs: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are HTML (escaped by the caller)."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _value(value: Any) -> str:
    if value is None or value == "":
        return '<span class="muted">–</span>'
    if isinstance(value, (list, tuple)):
        return esc(", ".join(str(v) for v in value)) if value else '<span class="muted">none</span>'
    return esc(value)


def run_section(config: Mapping[str, Any], env: Mapping[str, Any] | None, history: Sequence[Mapping[str, Any]],
                summary: ModelSummary, run_path: Path, description: str = "") -> Section:
    """The run: model, parameter count, layer table, recipe, data, device, versions, duration."""
    seconds = sum(float(h.get("seconds", 0.0)) for h in history)
    env = env or {}
    subset = config.get("subset")
    run_facts = [
        ("model", f"<strong>{esc(config.get('model'))}</strong>"
                  + (f" <span class=\"muted\">— {esc(description)}</span>" if description else "")),
        ("parameters", f"{summary.total_params:,} ({summary.trainable_params:,} trainable)"),
        ("model options", _value(", ".join(f"{k}={v}" for k, v in (config.get("model_kwargs") or {}).items()))),
        ("run folder", f"<code>{esc(run_path)}</code>"),
        ("created", _value(config.get("created"))),
        ("epochs run", f"{len(history)} of {esc((config.get('recipe') or {}).get('epochs', '?'))}"),
        ("training time", f"{format_seconds(seconds)} <span class=\"muted\">(sum of epoch times)</span>"
         if history else '<span class="muted">no finished epoch</span>'),
    ]
    data_facts = [
        ("data set", _value(config.get("dataset"))),
        ("source", _value(config.get("data_source"))),
        ("data path", f"<code>{esc(config['data_path'])}</code>" if config.get("data_path") else _value(None)),
        ("subset", _value(f"{subset:,} train images (seed {config.get('subset_seed', 0)})" if subset else "full")),
        ("images", _value(f"{config.get('num_train', '?'):,} train / {config.get('num_test', '?'):,} test"
                          if isinstance(config.get("num_train"), int) and isinstance(config.get("num_test"), int)
                          else None)),
        ("seed", _value(config.get("seed"))),
    ]
    device = str(config.get("device", env.get("device", "?")))
    env_facts = [
        ("device", esc(device) + (f" <span class=\"muted\">({esc(env['device_name'])})</span>"
                                  if env.get("device_name") else "")),
        ("flags", _value(", ".join(f"{k}={v}" for k, v in (config.get("flags") or {}).items()))),
        ("python", _value(env.get("python"))), ("torch", _value(env.get("torch"))),
        ("torchvision", _value(env.get("torchvision"))), ("xaikit", _value(env.get("xaikit"))),
        ("CUDA", _value(env.get("cuda"))),
        ("git revision", f"<code>{esc(env['git_revision'])}</code>" if env.get("git_revision") else _value(None)),
        ("platform", _value(env.get("platform"))), ("host", _value(env.get("hostname"))),
        ("started", _value(env.get("start_time"))),
    ]
    if not env:
        env_facts = [("device", esc(device)), ("versions", '<span class="muted">no env.json in the run</span>')]
    recipe = config.get("recipe") or {}
    overrides = set((config.get("overrides") or {}).keys())
    recipe_rows = [
        (f"<code>{esc(k)}</code>", _value(v) + (' <span class="badge na">set by flag</span>' if k in overrides else ""))
        for k, v in recipe.items()
    ]
    suggestion = config.get("max_lr_suggestion")
    lr_note = (f'<p class="note">max_lr from the LR range test ({esc(suggestion.get("rule", ""))}): '
               f'{float(suggestion["lr"]):.3g}</p>' if isinstance(suggestion, Mapping) and "lr" in suggestion else "")
    layer_rows = [
        (f"<code>{esc(r.name)}</code>", esc(r.kind), f"<code>{esc(format_shape(r.output_shape))}</code>",
         f"{r.params:,}")
        for r in summary.rows
    ]
    layer_table = table(["layer", "type", "output shape", "parameters"], layer_rows,
                        numeric=[False, False, False, True],
                        footer=["total", "", f"input [-1, {', '.join(map(str, summary.input_shape))}]",
                                f"{summary.total_params:,}"])
    opened = " open" if len(summary.rows) <= 40 else ""
    body = (
        f'<div class="cols"><div><h3>Model and run</h3>{_facts(run_facts)}</div>'
        f'<div><h3>Data</h3>{_facts(data_facts)}</div></div>'
        f'<div class="cols"><div><h3>Training recipe</h3>'
        f'{table(["setting", "value"], recipe_rows)}{lr_note}</div>'
        f'<div><h3>Device and versions</h3>{_facts(env_facts)}</div></div>'
        f'<h3>Layers</h3><details{opened}><summary>Layer-by-layer summary: {len(summary.rows)} '
        f'module calls, {summary.total_params:,} parameters</summary>{layer_table}'
        f'<p class="note">One dummy batch through the model with a forward hook on each leaf module; '
        f'-1 stands for the batch dimension. A module called twice is listed twice and counted once.</p>'
        f'</details>'
    )
    return Section("run", "Run", body)


def training_section(history: Sequence[Mapping[str, Any]], curves_png: Path | None, lr_png: Path | None) -> Section:
    """Loss and accuracy curves, the LR schedule and the per-epoch table."""
    if not history:
        return Section("training", "Training", '<p class="muted">No epoch has finished: history.json is empty.</p>')
    rows = [
        (str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['train_acc']:.2%}", f"{h['test_loss']:.4f}",
         f"{h['test_acc']:.2%}", f"{h['lr']:.3g}", format_seconds(float(h.get("seconds", 0.0))))
        for h in history
    ]
    best = max(history, key=lambda h: h["test_acc"])
    parts = [
        f'<p>Final validation accuracy <strong>{history[-1]["test_acc"]:.2%}</strong> after epoch '
        f'{history[-1]["epoch"]}; best {best["test_acc"]:.2%} at epoch {best["epoch"]}. '
        f'Validation is the test split, evaluated after every epoch.</p>',
    ]
    if curves_png:
        parts.append(figure(curves_png, "training and validation loss and accuracy per epoch"))
    if lr_png:
        parts.append(figure(lr_png, "learning rate schedule",
                            "One-cycle schedule rebuilt from the recipe, step by step; dots: the LR "
                            "recorded at the end of each epoch."))
    parts.append("<details><summary>Per-epoch numbers</summary>" + table(
        ["epoch", "train loss", "train acc", "val loss", "val acc", "LR", "time"], rows,
        numeric=[True] * 7) + "</details>")
    return Section("training", "Training", "".join(parts))


def evaluation_section(metrics: Mapping[str, Any], classes: Sequence[str], matrix_png: Path | None,
                       provenance: str) -> Section:
    """Accuracy, the class-wise precision / recall / F1 / support table and the confusion matrix."""
    per_class = metrics["per_class"]
    rows = [
        (esc(name), f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", f"{m['support']:,}")
        for name, m in ((c, per_class[c]) for c in classes if c in per_class)
    ]
    macro = metrics["macro_avg"]
    footer = ["macro average", f"{macro['precision']:.3f}", f"{macro['recall']:.3f}", f"{macro['f1']:.3f}",
              f"{macro['support']:,}"]
    wrong = len(metrics.get("misclassified", []))
    total = metrics.get("num_test", macro["support"])
    extra = ""
    if "tta_accuracy" in metrics:
        extra = f" With flip TTA: <strong>{metrics['tta_accuracy']:.2%}</strong>."
    loss = f", loss {metrics['loss']:.4f}" if "loss" in metrics else ""
    body = (
        f'<p>Test accuracy <strong>{metrics["accuracy"]:.2%}</strong> ({total - wrong:,} of {total:,} '
        f'images right{loss}).{extra}</p><p class="note">{provenance}</p>'
        '<div class="eval"><div><h3>Class-wise scores</h3>'
        + table(["class", "precision", "recall", "F1", "support"], rows, numeric=[False, True, True, True, True],
                footer=footer)
        + '<p class="note">precision = TP / (TP + FP), recall = TP / (TP + FN), '
          'F1 = their harmonic mean, support = test images of the class.</p></div><div>'
        + '<h3>Confusion matrix</h3>'
        + (figure(matrix_png, "confusion matrix", "Rows: true class; columns: predicted class; "
                  "colour: share of the true class.", "matrix") if matrix_png else "")
        + "</div></div>"
    )
    return Section("evaluation", "Test-set evaluation", body)


def gallery_section(items: Sequence[GalleryItem], method: str | None, total_wrong: int,
                    figure_png: Path | None) -> Section:
    """Misclassified test images, each with the overlay of ``method`` for the predicted class."""
    if total_wrong == 0:
        return Section("misclassified", "Misclassified images",
                       '<p>The model classifies every test image correctly.</p>')
    tiles = []
    for item in items:
        images = img_tag(item.input_png, f"misclassified test image {item.test_id}")
        if item.overlay_png is not None:
            images += img_tag(item.overlay_png, f"{method} map of misclassified test image {item.test_id}")
        tiles.append(
            f'<div class="tile"><div class="pair">{images}</div><div class="caption">'
            f'#{item.test_id}: <span class="true">{esc(item.true_class)}</span> → '
            f'<span class="pred">{esc(item.predicted_class)}</span> ({item.confidence:.0%})</div></div>'
        )
    how = (f"Left: the image; right: its <strong>{esc(method)}</strong> map for the predicted class, "
           f"over the image (jet colours, red = most evidence)." if method else "No CAM method is registered.")
    body = (f'<p>{len(items)} of {total_wrong:,} misclassified test images: true class → predicted class '
            f'(confidence). {how}</p><div class="gallery">{"".join(tiles)}</div>')
    if figure_png:
        body += f'<p class="note">The same gallery as a figure: <code>{esc(figure_png)}</code></p>'
    return Section("misclassified", "Misclassified images", body)


def explanations_section(rows: Sequence[GridRow], grid_png: Path | None, methods: Sequence[str],
                         method_info: Mapping[str, Mapping[str, Any]], misclassified_only: bool) -> Section:
    """The methods side by side on the same images (an HTML grid), and what each map means."""
    which = "misclassified test images" if misclassified_only else "test images"
    head = "<th>image</th><th>input</th>" + "".join(
        f"<th>{esc(m)}" + ('<br><span class="badge fail">fails sanity</span>' if fails_sanity(method_info.get(m, {}))
                           else "") + "</th>"
        for m in methods)
    body_rows = []
    for row in rows:
        wrong = row.true_class != row.predicted_class
        label = (f'<span class="true">{esc(row.true_class)}</span><br>→ '
                 f'<span class="{"pred" if wrong else "true"}">{esc(row.predicted_class)}</span><br>'
                 f'<span class="muted">{row.confidence:.0%} · #{row.test_id}</span>')
        cells = "".join(f"<td>{img_tag(row.map_pngs[m], f'{m} map of test image {row.test_id}')}</td>"
                        for m in methods)
        body_rows.append(f'<tr><td class="label">{label}</td>'
                         f'<td>{img_tag(row.input_png, f"test image {row.test_id}")}</td>{cells}</tr>')
    grid = (f'<div class="table-wrap fit"><table class="xgrid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body_rows)}</tbody></table></div>')
    info_rows = [
        (f"<strong>{esc(m)}</strong>", _value(method_info.get(m, {}).get("layer")),
         "signed" if method_info.get(m, {}).get("signed") else "≥ 0", _value(method_info.get(m, {}).get("scale")))
        for m in methods
    ]
    body = (f"<p>{len(methods)} methods on the same {len(rows)} {which}, each explaining the predicted class "
            f"(true → predicted, confidence; red: wrong). Non-negative maps: jet colours (blue low, red high); "
            f"signed maps: blue negative, red positive, faded where near 0.</p>{grid}")
    if grid_png:
        body += f'<p class="note">The same grid as a figure: <code>{esc(grid_png)}</code></p>'
    body += "<h3>What each map is</h3>" + table(["method", "layer", "sign", "scale of the map"], info_rows)
    return Section("explanations", "Explanations side by side", body)


def _stacked(score: Mapping[str, float] | None, random: Mapping[str, float] | None = None,
             digits: int = 3) -> str:
    """A table cell: the mean, its interval below, and the random map's mean below that."""
    if not score:
        return "–"
    cell = (f"{score['mean']:.{digits}f}<div class=\"interval\">"
            f"[{score['low']:.{digits}f}, {score['high']:.{digits}f}]</div>")
    if random:
        cell += f'<div class="interval">random {random["mean"]:.{digits}f}</div>'
    return cell


def fails_sanity(score: Mapping[str, Any]) -> bool:
    """Whether a method's score dict records a failed randomisation check."""
    rnd = score.get("randomization")
    return isinstance(rnd, Mapping) and not rnd.get("passes", True)


def _sanity_cell(score: Mapping[str, Any]) -> tuple[str, str]:
    rnd = score.get("randomization")
    if not rnd:
        return "–", '<span class="badge na">not run</span>'
    badge = ('<span class="badge pass">passes</span>' if rnd.get("passes")
             else '<span class="badge fail">fails sanity check</span>')
    return _stacked(rnd.get("rho_final"), digits=2), badge


def scores_section(scores: Mapping[str, Mapping[str, Any]], faithfulness_png: Path | None,
                   randomisation_png: Path | None, n_images: int, provenance: str) -> Section:
    """Faithfulness (deletion/insertion AUC vs a random map), sanity (randomisation rho),
    IG completeness gap and seconds per image of each method; failing methods flagged."""
    rows = []
    callouts: list[str] = []
    failing: list[str] = []
    for name, s in scores.items():
        rho, badge = _sanity_cell(s)
        rows.append((
            f"<strong>{esc(name)}</strong>",
            _stacked(s.get("deletion"), s.get("deletion_random")),
            _stacked(s.get("insertion"), s.get("insertion_random")),
            rho, badge, _stacked(s.get("completeness_gap")),
            f"{s['seconds_per_image']:.4f}" if "seconds_per_image" in s else "–",
        ))
        if fails_sanity(s):
            failing.append(f"<strong>{esc(name)}</strong> (mean |ρ| = "
                           f"{float(s['randomization'].get('mean_abs_rho_final', float('nan'))):.2f})")
    if failing:
        threshold = float(next(s["randomization"].get("threshold", 0.5) for s in scores.values() if fails_sanity(s)))
        callouts.append(
            f'<div class="callout"><span class="badge fail">fails sanity check</span> '
            f'{", ".join(failing)} {"fails" if len(failing) == 1 else "fail"} the randomisation check '
            f"(mean |ρ| ≥ threshold {threshold:.2f}). After every layer of the model is re-initialised at "
            f"random (cascading, from the output back), {'its' if len(failing) == 1 else 'their'} maps still "
            f"rank pixels much like the trained model's maps. A map that barely depends on the learned weights "
            f"shows the image's structure more than what the model learned: do not read it as an explanation "
            f"of this model ({esc(RANDOMIZATION_PAPER)}).</div>"
        )
    headers = ["method", "deletion AUC ↓", "insertion AUC ↑", "randomisation ρ", "sanity", "IG gap (logits)",
               "s / image"]
    body = (
        f"<p>Scores over the same {n_images} test images; each is a mean with its 95% bootstrap interval "
        f"in brackets. {provenance}</p>"
        + table(headers, rows, numeric=[False, True, True, True, False, True, True])
        + "".join(callouts)
        + (figure(faithfulness_png, "deletion and insertion AUC of each method against a random map")
           if faithfulness_png else "")
        + (figure(randomisation_png, "Spearman rho of each method's maps as the model's layers are randomised",
                  "Each line starts at 1 (the trained model against itself) and follows the rank correlation "
                  "as layers are re-initialised from the output back.") if randomisation_png else "")
        + '<div class="callout info"><strong>How to read this.</strong> <em>Deletion</em>: the predicted '
          "class's probability while the pixels the map ranks highest are removed first; a faithful map "
          "makes it fall fast (low area). <em>Insertion</em>: the probability while those pixels are put back "
          "into a blank image first (high area is good). <em>random</em> is the same area for a random map: "
          "a method should beat it. <em>Randomisation ρ</em>: Spearman correlation between the maps of the "
          "trained and of a fully randomised model; near 0 is what a method that depends on the learned "
          "weights shows. <em>IG completeness gap</em>: how far integrated-gradients maps are from summing to "
          "f(x) − f(baseline). <em>s / image</em>: wall time of the maps alone.</div>"
    )
    return Section("scores", "Faithfulness and sanity", body)
