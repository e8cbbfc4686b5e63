"""The ``xaikit`` command line: one Typer sub-app or command a file, assembled here.

Errors a user can cause (``XaikitError``) end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from xaikit.cli import evaluate_cmd, explain_cmd, plugins_cmd, report_cmd, train_cmd
from xaikit.errors import XaikitError

app = typer.Typer(
    name="xaikit",
    help="Train small image CNNs on CIFAR-10 and explain their predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(plugins_cmd.app, name="plugins")
for _command_module in (train_cmd, evaluate_cmd, explain_cmd, report_cmd):
    _command_module.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except XaikitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
