"""The ``xaikit`` command line: one Typer sub-app or command a file, assembled here.

Errors a user can cause (``XaikitError``) end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import typer

from typer.core import TyperGroup

from xaikit.cli import (
    evaluate_cmd, explain_cmd, methods_cmd, plugins_cmd, report_cmd, serve_cmd, train_cmd,
)
from xaikit.cli.text import one_line
from xaikit.errors import XaikitError


class _Commands(TyperGroup):
    """The root group: a ``XaikitError`` from any command is one ``error:`` line, exit code 2."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except XaikitError as exc:
            typer.echo(f"error: {one_line(exc)}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    name="xaikit",
    help="Train small image CNNs on CIFAR-10 and explain their predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(plugins_cmd.app, name="plugins")
for _command_module in (train_cmd, evaluate_cmd, explain_cmd, report_cmd, serve_cmd, methods_cmd):
    _command_module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from xaikit import __version__

        typer.echo(f"xaikit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train small image CNNs on CIFAR-10 and explain their predictions."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A warning (a damaged cache rebuilt, a cache that cannot be written) as one line."""
    typer.echo(f"warning: {one_line(message)}", err=True)


def main() -> None:
    """Console-script entry point."""
    import warnings

    warnings.showwarning = _show_warning
    app()
