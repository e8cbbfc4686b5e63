"""``xaikit evaluate RUN``: test-set accuracy, class-wise table, ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from xaikit.cli.train_cmd import DATA_HELP


def evaluate_command(
    run: Path = typer.Argument(..., help="Run folder written by `xaikit train`."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    tta: bool = typer.Option(False, "--tta", help="Also report accuracy with flip TTA."),
) -> None:
    """Evaluate RUN's checkpoint on the test split; write RUN/metrics.json."""
    from rich.console import Console

    from xaikit.evaluate import evaluate_run, report_table
    from xaikit.run import METRICS_NAME, load_run

    loaded = load_run(run)
    metrics = evaluate_run(loaded, data_path=data, device=device, tta=tta)
    console = Console()
    console.print(report_table(metrics, title=f"{loaded.spec.name}: test set ({metrics['num_test']} images)"))
    typer.echo(f"accuracy: {metrics['accuracy']:.4f}")
    if tta:
        typer.echo(f"tta_accuracy: {metrics['tta_accuracy']:.4f}")
    typer.echo(f"misclassified: {len(metrics['misclassified'])}")
    typer.echo(str(loaded.file(METRICS_NAME)))


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the ``xaikit`` app."""
    app.command("evaluate")(evaluate_command)
