"""``xaikit report RUN``: one self-contained HTML page of a run, and its PNG figures.

Progress goes to stderr; the last line on stdout is the HTML file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from xaikit.cli.train_cmd import DATA_HELP


def report_command(
    run: Path = typer.Argument(..., help="Run folder written by `xaikit train`."),
    methods: list[str] | None = typer.Option(
        None,
        "--methods",
        "--method",
        "-m",
        help="Attribution method (repeat; 'all' for every registered one). "
        "Default: gradcam, gradcam++, "
        "scorecam, saliency, integrated-gradients, smoothgrad (those registered).",
    ),
    images: int = typer.Option(
        16, "--images", "-n", help="Test images side by side, and misclassified ones shown."
    ),
    data: str | None = typer.Option(None, "--data", envvar="XAIKIT_DATA", help=DATA_HELP),
    layer: str | None = typer.Option(None, "--layer", help="Layer for CAM methods."),
    sanity_images: int = typer.Option(
        8, "--sanity-images", help="Images for the randomisation check (0: skip it)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per method call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Path | None = typer.Option(
        None, "--out", help="HTML file (default: RUN/report.html); figures go beside it."
    ),
) -> None:
    """Write RUN/report.html (self-contained) and its PNG figures (RUN/figures/); under
    torchrun the evaluation and the images are shared out and rank 0 writes."""
    from rich.console import Console
    from rich.text import Text

    from xaikit import distributed
    from xaikit.report.build import build_report

    err = Console(stderr=True)
    with distributed.process_group():
        main = distributed.is_main()
        with err.status("report", spinner="dots") if main else contextlib.nullcontext() as status:
            path = build_report(
                run, methods, n_images=images, layer=layer, sanity_images=sanity_images,
                batch_size=batch_size, data_path=data, device=device, out=out,
                progress=(lambda message: status.update(Text(f"report: {message}"))) if main else None,
            )
    if main:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``xaikit`` app."""
    app.command("report")(report_command)
