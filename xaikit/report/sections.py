"""The cards of the report page about the run: the run itself, training and the test set.

The cards about the attribution methods are in :mod:`xaikit.report.method_sections`.

Every value that comes from a run (class names, paths, method names, versions) passes through
:func:`xaikit.report.html.esc`; numbers are formatted here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xaikit.report.html import Section, esc, figure, table
from xaikit.report.summary import ModelSummary, format_shape
from xaikit.run import Run
from xaikit.specs import Recipe


def format_seconds(seconds: float) -> str:
    """``12.3`` -> ``"12.3 s"``, ``250`` -> ``"4 min 10 s"``, ``3725`` -> ``"1 h 02 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs} s"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min"


def _facts(pairs: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are HTML (escaped by the caller)."""
    return (
        '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"
    )


def value_html(value: Any) -> str:
    """Escaped text of a value; an en dash for none, a comma list for a sequence."""
    if value is None or value == "":
        return '<span class="muted">–</span>'
    if isinstance(value, (list, tuple)):
        return esc(", ".join(str(v) for v in value)) if value else '<span class="muted">none</span>'
    return esc(value)


def applicable_recipe(recipe: Recipe) -> dict[str, Any]:
    """The recipe's settings that took effect: momentum and Nesterov only for SGD, the crop's
    padding only with the crop, the cutout size only with cutout."""
    values = recipe.to_dict()
    if recipe.optimizer.lower() != "sgd":
        values.pop("momentum")
        values.pop("nesterov")
    if "crop" not in recipe.augment:
        values.pop("crop_padding")
    if "cutout" not in recipe.augment:
        values.pop("cutout")
    return values


def run_section(run: Run, env: Mapping[str, Any], summary: ModelSummary) -> Section:
    """The run: model, parameter count, layer table, recipe, data, device, versions, duration."""
    config, history = run.config, run.history
    seconds = sum(float(h["seconds"]) for h in history)
    data = config.data
    origin = config.model_origin
    model_text = f"<strong>{esc(config.model)}</strong>"
    if run.spec.description:
        model_text += f' <span class="muted">— {esc(run.spec.description)}</span>'
    run_facts = [
        ("model", model_text),
        ("plugin", value_html(
            f"{origin.plugin} ({origin.distribution or '?'} {origin.version or ''})".strip()
            if origin else None)),
        ("parameters", f"{summary.total_params:,} ({summary.trainable_params:,} trainable)"),
        (
            "model options",
            value_html(", ".join(f"{k}={v}" for k, v in config.model_kwargs.items())),
        ),
        ("run folder", f"<code>{esc(run.path)}</code>"),
        ("created", value_html(config.created)),
        ("epochs run", f"{len(history)} of {config.recipe.epochs if config.recipe else '?'}"),
        (
            "training time",
            f'{format_seconds(seconds)} <span class="muted">(sum of epoch times)</span>'
            if history
            else '<span class="muted">no finished epoch</span>',
        ),
    ]
    dataset_origin = config.dataset_origin
    data_facts = [
        ("data", value_html(data.source if data else None)),
        ("loaded by", value_html(
            f"data set {config.dataset!r}" + (f" (plugin {dataset_origin.plugin})" if dataset_origin else ""))),
        (
            "data path",
            f"<code>{esc(config.data_path)}</code>" if config.data_path else value_html(None),
        ),
        (
            "subset",
            value_html(f"{config.subset:,} train images (seed {config.seed})" if config.subset else "full"),
        ),
        (
            "images",
            value_html(f"{data.num_train:,} train / {data.num_test:,} test" if data else None),
        ),
        ("seed", value_html(config.seed)),
    ]
    device = config.device
    flags = {"compile": config.compile, "tta": config.tta, "bf16": config.bf16,
             "channels_last": config.channels_last, "max_lr_auto": config.max_lr_auto}
    env_facts = [
        (
            "device",
            esc(device)
            + (
                f' <span class="muted">({esc(env["device_name"])})</span>'
                if env.get("device_name")
                else ""
            ),
        ),
        ("flags", value_html(", ".join(f"{k}={v}" for k, v in flags.items()))),
        ("python", value_html(env.get("python"))),
        ("torch", value_html(env.get("torch"))),
        ("torchvision", value_html(env.get("torchvision"))),
        ("xaikit", value_html(env.get("xaikit"))),
        ("CUDA", value_html(env.get("cuda"))),
        (
            "git revision",
            f"<code>{esc(env['git_revision'])}</code>"
            if env.get("git_revision")
            else value_html(None),
        ),
        ("platform", value_html(env.get("platform"))),
        ("host", value_html(env.get("hostname"))),
        ("started", value_html(env.get("start_time"))),
    ]
    if not env:
        env_facts = [
            ("device", esc(device)),
            ("versions", '<span class="muted">no env.json in the run</span>'),
        ]
    overrides = set(config.overrides)
    recipe_rows = [
        (
            f"<code>{esc(k)}</code>",
            value_html(v)
            + (' <span class="badge na">set by flag</span>' if k in overrides else ""),
        )
        for k, v in (applicable_recipe(config.recipe).items() if config.recipe else ())
    ]
    suggestion = config.max_lr_suggestion
    lr_note = (
        f'<p class="note">max_lr from the LR range test ({esc(suggestion.rule)}): '
        f"{suggestion.lr:.3g}</p>"
        if suggestion
        else ""
    )
    layer_rows = [
        (
            f"<code>{esc(r.name)}</code>",
            esc(r.kind),
            f"<code>{esc(format_shape(r.output_shape))}</code>",
            f"{r.params:,}",
        )
        for r in summary.rows
    ]
    layer_table = table(
        ["layer", "type", "output shape", "parameters"],
        layer_rows,
        numeric=[False, False, False, True],
        footer=[
            "total",
            "",
            f"input [-1, {', '.join(map(str, summary.input_shape))}]",
            f"{summary.total_params:,}",
        ],
    )
    opened = " open" if len(summary.rows) <= 40 else ""
    body = (
        f'<div class="cols"><div><h3>Model and run</h3>{_facts(run_facts)}</div>'
        f"<div><h3>Data</h3>{_facts(data_facts)}</div></div>"
        f'<div class="cols"><div><h3>Training recipe</h3>'
        f"{table(['setting', 'value'], recipe_rows)}{lr_note}</div>"
        f"<div><h3>Device and versions</h3>{_facts(env_facts)}</div></div>"
        f"<h3>Layers</h3><details{opened}><summary>Layer-by-layer summary: {len(summary.rows)} "
        f"module calls, {summary.total_params:,} parameters</summary>{layer_table}"
        '<p class="note">One dummy batch through the model with a forward hook on each leaf '
        "module; "
        "-1 stands for the batch dimension. A module called twice is listed twice and counted "
        "once.</p>"
        f"</details>"
    )
    return Section("run", "Run", body)


def training_section(
    history: Sequence[Mapping[str, Any]], curves_png: Path | None, lr_png: Path | None
) -> Section:
    """Loss and accuracy curves, the LR schedule and the per-epoch table."""
    if not history:
        return Section(
            "training",
            "Training",
            '<p class="muted">No epoch has finished: history.json is empty.</p>',
        )
    rows = [
        (
            str(h["epoch"]),
            f"{h['train_loss']:.4f}",
            f"{h['train_acc']:.2%}",
            f"{h['test_loss']:.4f}",
            f"{h['test_acc']:.2%}",
            f"{h['lr']:.3g}",
            format_seconds(float(h.get("seconds", 0.0))),
        )
        for h in history
    ]
    best = max(history, key=lambda h: h["test_acc"])
    parts = [
        (
            f"<p>Final validation accuracy <strong>{history[-1]['test_acc']:.2%}</strong> "
            f"after epoch {history[-1]['epoch']}; best {best['test_acc']:.2%} at epoch {best['epoch']}. "
            f"Validation is the test split, evaluated after every epoch.</p>"
        ),
    ]
    if curves_png:
        parts.append(figure(curves_png, "training and validation loss and accuracy per epoch"))
    if lr_png:
        parts.append(
            figure(
                lr_png,
                "learning rate schedule",
                "One-cycle schedule rebuilt from the recipe, step by step; dots: the LR "
                "recorded at the end of each epoch.",
            )
        )
    parts.append(
        "<details><summary>Per-epoch numbers</summary>"
        + table(
            ["epoch", "train loss", "train acc", "val loss", "val acc", "LR", "time"],
            rows,
            numeric=[True] * 7,
        )
        + "</details>"
    )
    return Section("training", "Training", "".join(parts))


def evaluation_section(
    metrics: Mapping[str, Any], classes: Sequence[str], matrix_png: Path | None, provenance: str
) -> Section:
    """Accuracy, the class-wise precision / recall / F1 / support table and the confusion matrix."""
    per_class = metrics["per_class"]
    rows = [
        (
            esc(name),
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            f"{m['support']:,}",
        )
        for name, m in ((c, per_class[c]) for c in classes if c in per_class)
    ]
    macro = metrics["macro_avg"]
    footer = [
        "macro average",
        f"{macro['precision']:.3f}",
        f"{macro['recall']:.3f}",
        f"{macro['f1']:.3f}",
        f"{macro['support']:,}",
    ]
    wrong = len(metrics.get("misclassified", []))
    total = metrics.get("num_test", macro["support"])
    extra = ""
    if "tta_accuracy" in metrics:
        views = metrics.get("tta_views", 2)
        kind = "flip TTA" if views == 2 else f"multi-crop TTA ({views} views)"
        extra = f" With {kind}: <strong>{metrics['tta_accuracy']:.2%}</strong>."
    loss = f", loss {metrics['loss']:.4f}" if "loss" in metrics else ""
    body = (
        f"<p>Test accuracy <strong>{metrics['accuracy']:.2%}</strong> ({total - wrong:,} of "
        f"{total:,} "
        f'images right{loss}).{extra}</p><p class="note">{provenance}</p>'
        '<div class="eval"><div><h3>Class-wise scores</h3>'
        + table(
            ["class", "precision", "recall", "F1", "support"],
            rows,
            numeric=[False, True, True, True, True],
            footer=footer,
        )
        + '<p class="note">precision = TP / (TP + FP), recall = TP / (TP + FN), '
        "F1 = their harmonic mean, support = test images of the class.</p></div><div>"
        + "<h3>Confusion matrix</h3>"
        + (
            figure(
                matrix_png,
                "confusion matrix",
                "Rows: true class; columns: predicted class; colour: share of the true class.",
                "matrix",
            )
            if matrix_png
            else ""
        )
        + "</div></div>"
    )
    return Section("evaluation", "Test-set evaluation", body)
