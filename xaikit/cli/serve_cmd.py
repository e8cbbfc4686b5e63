"""``xaikit serve RUN [RUN ...]``: the interactive explorer in the browser.

The runs are checked and loaded (model, test split, predictions) before anything is served;
a missing run folder, a bad run, a bad port or a port in use is one ``error:`` line and exit
code 2. The page's address is the one line on stdout.
"""

from __future__ import annotations

from pathlib import Path

import typer

from xaikit.cli.train_cmd import DATA_HELP
from xaikit.errors import XaikitError


def serve_command(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN...", help="Run folders to serve (two or more: side by side)."),
    port: str = typer.Option("8000", "--port", "-p", help="TCP port (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1", "--host",
        help="Address to listen on. The default serves this machine only; 0.0.0.0 serves "
        "every machine that can reach this one (no authentication: a warning is printed)."),
    data: str | None = typer.Option(None, "--data", envvar="XAIKIT_DATA", help=DATA_HELP),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_upload_mb: float = typer.Option(8.0, "--max-upload-mb", help="Size limit of an upload."),
) -> None:
    """Explore runs in the browser: test images, predictions, maps of every method, scores."""
    from rich.console import Console
    from rich.text import Text

    from xaikit.serve import server

    number = server.parse_port(port)
    if not 0 < max_upload_mb <= 1024:
        raise XaikitError(f"--max-upload-mb must be in (0, 1024], got {max_upload_mb}")
    try:
        from xaikit.serve.app import create_app
    except ImportError as exc:
        raise XaikitError(f"xaikit serve needs {exc.name or 'starlette'}; "
                          "install it with: pip install 'xaikit[serve]'") from None
    err = Console(stderr=True)
    if not server.is_loopback(host):
        typer.echo(f"warning: --host {host} serves these runs, without authentication, to every "
                   "machine that can reach this one; use 127.0.0.1 to keep them local", err=True)
    sock = server.bind(host, number)
    try:
        from xaikit.serve import load_served_runs

        with err.status("serve", spinner="dots") as status:
            served = load_served_runs(
                runs, data_path=data, device=device,
                status=lambda message: status.update(Text(f"serve: {message}")))
        app = create_app(served, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                         allowed_hosts=server.allowed_hosts(host))
    except BaseException:
        sock.close()
        raise
    typer.echo(server.url(sock))
    err.print(Text("Ctrl-C stops the server"), highlight=False)
    server.serve(app, sock)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``xaikit`` app."""
    app.command("serve")(serve_command)
