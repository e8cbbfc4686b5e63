"""``xaikit methods show NAME``: one attribution method in full (paper, formula, options)."""

from __future__ import annotations

import inspect

import typer
from rich.console import Console

from xaikit.cli.text import plain
from xaikit.options import method_options
from xaikit.registry import get_attribution, get_entry

app = typer.Typer(help="Inspect attribution methods.", no_args_is_help=True)


@app.command("show")
def show(name: str = typer.Argument(..., help="Registered method name (see `xaikit plugins list`).")) -> None:
    """Print a method's plugin, sign, scale, layer use, options with defaults, and its docstring
    (paper, formula, cost)."""
    cls = get_attribution(name)
    entry = get_entry("attribution", name)
    console = Console()
    lines = [
        f"{name}  (plugin {entry.plugin}, {entry.dist})",
        f"sign: {'signed' if cls.signed else '>= 0'}; scale: {cls.scale or '-'}",
        f"explains a layer: {'yes (--layer)' if cls.uses_layer else 'no'}; "
        f"class-discriminative: {'yes' if cls.class_discriminative else 'no'}",
        "options (--method-arg " + name + ".KEY=VALUE):",
    ]
    options = method_options(cls)
    lines += [f"  {o.describe()}" for o in options.values()] or ["  none"]
    lines += ["", *inspect.cleandoc(cls.__doc__ or "(no docstring)").splitlines()]
    for line in lines:
        console.print(plain(line), highlight=False)


def register(parent: typer.Typer) -> None:
    """Add ``methods`` to the ``xaikit`` app."""
    parent.add_typer(app, name="methods")
