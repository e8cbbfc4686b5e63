"""``xaikit explain RUN --method M ...``: attribution maps, faithfulness and sanity scores."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xaikit import distributed
from xaikit.cli.text import plain
from xaikit.explain import DEFAULT_METHODS, Explanation, explain_run
from xaikit.options import parse_method_args
from xaikit.registry import get_attribution, resolve_methods
from xaikit.run import EXPLANATIONS_JSON


def _interval(score: dict | None, digits: int = 3) -> str:
    if not score or score.get("mean") is None:
        return "-"
    return f"{score['mean']:.{digits}f} [{score['low']:.{digits}f}, {score['high']:.{digits}f}]"


VERDICT_STYLE = {"pass": "pass", "fail": "[red]FAIL[/red]", "uncertain": "[yellow]uncertain[/yellow]"}
ANSWER = {"yes": "yes", "no": "[red]no[/red]", "undecided": "[yellow]?[/yellow]"}


def scores_table(record: dict) -> Table:
    """The per-method table printed by ``xaikit explain``: faithfulness (ROAD, deletion /
    insertion against a random map at the method's resolution), robustness, complexity, the
    sanity verdicts, whether the method beats each control on faithfulness, and the cost."""
    what = "image files" if record["files"] else "test images"
    table = Table(title=plain(f"{record['model']}: {len(record['ids'])} {what}"))
    controls = ("random", "sobel", "center")
    table.add_column("method", no_wrap=True, min_width=max(map(len, record["methods"]), default=6))
    for column in ("ROAD (LeRF-MoRF)/2 ↑", "deletion ↓ (random)", "insertion ↑ (random)",
                   "max-sensitivity ↓", "sparseness", "randomisation", "random logit",
                   "beats " + "/".join(controls), "s/image"):
        table.add_column(column)
    for name, card in {**record["methods"]}.items():
        m, v = card["metrics"], card["verdicts"]
        rnd_del, rnd_ins = m.get("deletion_random") or {}, m.get("insertion_random") or {}
        beats = "/".join(ANSWER.get(card["headline"].get(c, {}).get("faithfulness"), "-")
                         for c in controls)
        table.add_row(
            plain(name),
            _interval(m.get("road_combined")),
            f"{_interval(m.get('deletion'))} ({_num(rnd_del.get('mean'))})",
            f"{_interval(m.get('insertion'))} ({_num(rnd_ins.get('mean'))})",
            _interval(m.get("sensitivity_max")),
            _interval(m.get("sparseness"), 2),
            VERDICT_STYLE.get((v.get("randomization") or {}).get("verdict"), "-"),
            VERDICT_STYLE.get((v.get("random_logit") or {}).get("verdict"), "-"),
            beats,
            f"{card['seconds_per_image']:.4f}",
        )
    return table


def results_console() -> Console:
    """stdout for the result tables: the terminal's width, or 200 columns when redirected to
    a file or a pipe (rich would squeeze the score table into 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def predictions_table(explanation: Explanation) -> Table:
    """Each image file with its top-3 classes and their probabilities."""
    table = Table("image", "prediction", "2nd", "3rd", title="Predictions")
    for name, top in zip(explanation.selection.files, explanation.selection.top):
        cells = [plain(f"{explanation.classes[c]} {p:.1%}") for c, p in top]
        table.add_row(plain(Path(name).name), *cells, *[""] * (3 - len(cells)))
    return table


def explain(
    run: Path = typer.Argument(..., help="Run folder written by `xaikit train`."),
    method: Optional[list[str]] = typer.Option(
        None, "--method", "-m", help="Method name (repeat; 'all' for every registered one). "
        "Default: gradcam and integrated-gradients."),
    images: int = typer.Option(16, "--images", "-n", help="N test images, round-robin over the classes."),
    ids: Optional[list[int]] = typer.Option(None, "--ids", help="Test image indices (repeat)."),
    misclassified: bool = typer.Option(False, "--misclassified", help="Only wrong predictions."),
    image: Optional[list[Path]] = typer.Option(
        None, "--image", help="Explain this image file instead of test images (repeat; any "
        "size and mode: converted to RGB and resized to the model's input)."),
    target: Optional[str] = typer.Option(
        None, "--target", help="Class to explain: pred (default), true (the label), a class "
        "index or a class name."),
    method_arg: Optional[list[str]] = typer.Option(
        None, "--method-arg", help="METHOD.KEY=VALUE option of a method (repeat), e.g. "
        "integrated-gradients.n_steps=64; `xaikit methods show NAME` lists them."),
    layer: Optional[str] = typer.Option(
        None, "--layer", help="Layer for CAM methods (the others ignore it)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the run)."),
    data: Optional[str] = typer.Option(None, "--data", envvar="XAIKIT_DATA", help="Data path."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per method call."),
    sanity_images: int = typer.Option(
        8, "--sanity-images", help="Images for the randomisation check, which recomputes each "
        "map once per layer (0: skip it)."),
) -> None:
    """Explain a run's predictions: a PNG grid and explanations.json with scores per method."""
    methods = resolve_methods(method, DEFAULT_METHODS)  # an unknown name fails before any work
    options = parse_method_args(method_arg or [], {m: get_attribution(m) for m in methods})
    err = Console(stderr=True)
    with distributed.process_group(), Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err, transient=True,
            disable=not distributed.is_main()) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        explanation = explain_run(
            run, methods, out=out, n_images=images, ids=ids, misclassified=misclassified,
            layer=layer, data_path=data, device=device, batch_size=batch_size,
            sanity_images=sanity_images, progress=progress, files=image, target=target,
            method_options=options,
        )
    if not distributed.is_main():
        return
    record = explanation.to_json()
    if explanation.selection.files:
        results_console().print(predictions_table(explanation))
    results_console().print(scores_table(record))
    for name, reason in explanation.skipped.items():
        err.print(plain(f"skipped {name}: {reason}"), highlight=False)
    folder = out or run
    typer.echo(folder / record["grid"])
    typer.echo(folder / EXPLANATIONS_JSON)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
