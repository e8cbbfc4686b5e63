"""``xaikit plugins list``: every model, attribution method and data set, with its plugin.

Problems with the installed plugins are listed too, without stopping the command: plugins that
failed to import, names registered by more than one plugin (left out of the tables), and hook
implementations whose name matches no hook (a misspelt ``register_models``...).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xaikit.cli.text import plain
from xaikit.options import method_options

from xaikit.modules import count_parameters
from xaikit.plugins import get_plugin_manager
from xaikit.registry import Entry, tables
from xaikit.specs import ModelSpec

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)


def _parameter_count(spec: ModelSpec) -> int | None:
    """Parameters of the default model (``spec.num_classes`` classes); ``None`` if it fails."""
    try:
        return count_parameters(spec.create())[0]
    except Exception:  # a broken factory must not stop the listing
        return None


def _model_row(e: Entry[ModelSpec]) -> dict[str, Any]:
    return {
        "name": e.name,
        "plugin": e.plugin,
        "distribution": str(e.dist),
        "params": _parameter_count(e.obj),
        "target_layer": e.obj.target_layer,
        "input_shape": list(e.obj.input_shape),
        "num_classes": e.obj.num_classes,
        "options": [option.to_dict() for option in e.obj.options().values()],
        "recipe": e.obj.recipe.to_dict(),
        "description": e.obj.description,
    }


def _attribution_row(e: Entry[type]) -> dict[str, Any]:
    doc = (e.obj.__doc__ or "").strip()
    return {
        "name": e.name,
        "plugin": e.plugin,
        "distribution": str(e.dist),
        "uses_layer": e.obj.uses_layer,
        "signed": e.obj.signed,
        "scale": e.obj.scale,
        "class_discriminative": e.obj.class_discriminative,
        "options": [option.to_dict() for option in method_options(e.obj).values()],
        "description": doc.splitlines()[0] if doc else "",
    }


def plugins_summary() -> dict[str, Any]:
    """The data behind ``xaikit plugins list --json``."""
    pm = get_plugin_manager()
    registry = tables(pm)
    datasets = [
        {
            "name": e.name,
            "plugin": e.plugin,
            "distribution": str(e.dist),
            "description": e.obj.description,
        }
        for e in registry.datasets.values()
    ]
    errors = [
        {"plugin": err.name, "distribution": str(err.dist), "error": err.error}
        for err in pm.load_errors
    ]
    conflicts = [
        {
            "kind": c.kind,
            "name": c.name,
            "plugins": [{"plugin": e.plugin, "distribution": str(e.dist)} for e in c.entries],
            "error": c.message(),
            "advice": c.advice(),
        }
        for c in registry.conflicts
    ]
    unknown_hooks = [
        {
            "plugin": u.plugin,
            "distribution": str(u.dist),
            "hook": u.hook,
            "suggestion": u.suggestion,
        }
        for u in pm.unknown_hooks()
    ]
    key = lambda d: d["name"]  # noqa: E731
    return {
        "models": sorted(map(_model_row, registry.models.values()), key=key),
        "attributions": sorted(map(_attribution_row, registry.attributions.values()), key=key),
        "datasets": sorted(datasets, key=key),
        "errors": errors,
        "conflicts": conflicts,
        "unknown_hooks": unknown_hooks,
    }


def _add_row(table: Table, *cells: Any) -> None:
    """Add a row whose cells come from plugins: plain text (no markup, no escape sequences),
    one line of the cell per line of the value."""
    table.add_row(*(Text("\n").join(plain(line) for line in str(c).split("\n")) for c in cells))


def _options_cell(options: list[dict[str, Any]]) -> str:
    return "\n".join(f"{o['name']}: {o['type']} = {o['default']!r}" for o in options) or "-"


def _problem_tables(summary: dict[str, Any]) -> list[Table]:
    found = []
    if summary["errors"]:
        errors = Table(
            "plugin", "distribution", "error", title="Plugins that failed to load", style="red"
        )
        for e in summary["errors"]:
            _add_row(errors, e["plugin"], e["distribution"], e["error"])
        found.append(errors)
    if summary["conflicts"]:
        conflicts = Table(
            "kind", "name", "registered by", "what to do",
            title="Names registered more than once (left out until one is uninstalled)",
            style="red",
        )
        for c in summary["conflicts"]:
            by = "\n".join(f"{p['plugin']} ({p['distribution']})" for p in c["plugins"])
            _add_row(conflicts, c["kind"], c["name"], by, c["advice"])
        found.append(conflicts)
    if summary["unknown_hooks"]:
        hooks = Table(
            "plugin", "distribution", "hook", "did you mean",
            title="Hook implementations that match no hook (never called)", style="red",
        )
        for u in summary["unknown_hooks"]:
            _add_row(hooks, u["plugin"], u["distribution"], u["hook"], u["suggestion"] or "-")
        found.append(hooks)
    return found


@app.command("list")
def list_plugins(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List every model, attribution method and data set, and the plugin that gave it."""
    summary = plugins_summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    models = Table(
        "model", "params", "CAM layer", "options", "plugin", "description", title="Models"
    )
    for m in summary["models"]:
        params = "?" if m["params"] is None else f"{m['params']:,}"
        _add_row(models, 
            m["name"], params, m["target_layer"] or "-", _options_cell(m["options"]), m["plugin"],
            m["description"],
        )
    attrs = Table("method", "layer", "sign", "plugin", "description", title="Attribution methods")
    for a in summary["attributions"]:
        _add_row(attrs, 
            a["name"], "yes" if a["uses_layer"] else "-", "signed" if a["signed"] else ">= 0",
            a["plugin"], a["description"],
        )
    data = Table("dataset", "plugin", "description", title="Datasets")
    for d in summary["datasets"]:
        _add_row(data, d["name"], d["plugin"], d["description"])
    console.print(models, attrs, data, *_problem_tables(summary))
