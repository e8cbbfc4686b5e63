"""``xaikit evaluate RUN``: test-set accuracy, class-wise table, ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from xaikit.cli.text import plain

from xaikit.cli.train_cmd import DATA_HELP


def evaluate_command(
    run: Path = typer.Argument(..., help="Run folder written by `xaikit train`."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    tta: bool = typer.Option(False, "--tta", help="Also report accuracy with test-time augmentation (flip; multi-crop where the recipe sets tta_shift)."),
) -> None:
    """Evaluate RUN's checkpoint on the test split; write RUN/metrics.json (under torchrun the
    test images are shared out over the processes and rank 0 writes)."""
    from rich.console import Console

    from xaikit import distributed
    from xaikit.evaluate import evaluate_run
    from xaikit.run import METRICS_NAME, load_run

    loaded = load_run(run)
    with distributed.process_group():
        metrics = evaluate_run(loaded, data_path=data, device=device, tta=tta)
    if not distributed.is_main():
        return
    console = Console()
    console.print(report_table(metrics, title=f"{loaded.spec.name}: test set ({metrics['num_test']} images)"))
    typer.echo(f"loss: {metrics['loss']:.4f}")
    typer.echo(f"accuracy: {metrics['accuracy']:.4f}")
    if tta:
        typer.echo(f"tta_accuracy: {metrics['tta_accuracy']:.4f}")
    typer.echo(f"misclassified: {len(metrics['misclassified'])}")
    typer.echo(str(loaded.file(METRICS_NAME)))


def report_table(metrics: dict[str, Any], title: str) -> Table:
    """A rich table of per-class precision, recall, F1 and support, with the macro average.
    Class names are printed as plain text (no markup, no escape sequences)."""
    table = Table("class", "precision", "recall", "f1", "support", title=plain(title))
    for name, m in metrics["per_class"].items():
        table.add_row(plain(name), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}",
                      str(m["support"]))
    macro = metrics["macro_avg"]
    table.add_section()
    table.add_row("macro avg", f"{macro['precision']:.4f}", f"{macro['recall']:.4f}",
                  f"{macro['f1']:.4f}", str(macro["support"]))
    return table


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the ``xaikit`` app."""
    app.command("evaluate")(evaluate_command)
