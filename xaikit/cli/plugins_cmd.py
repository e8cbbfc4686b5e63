"""``xaikit plugins list``: every model, attribution method and data set, with its plugin."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from xaikit.modules import count_parameters
from xaikit.plugins import get_plugin_manager
from xaikit.registry import attribution_entries, dataset_entries, model_entries

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)


def plugins_summary() -> dict[str, Any]:
    """The data behind ``xaikit plugins list --json``."""
    pm = get_plugin_manager()
    dists = pm.state.dists
    models = [
        {
            "name": e.name,
            "plugin": e.plugin,
            "distribution": dists.get(e.plugin, "?"),
            "params": count_parameters(e.obj.create())[0],
            "target_layer": e.obj.target_layer,
            "input_shape": list(e.obj.input_shape),
            "num_classes": e.obj.num_classes,
            "recipe": e.obj.recipe.to_dict(),
            "description": e.obj.description,
        }
        for e in model_entries(pm).values()
    ]
    attributions = [
        {
            "name": e.name,
            "plugin": e.plugin,
            "distribution": dists.get(e.plugin, "?"),
            "uses_layer": e.obj.uses_layer,
            "signed": e.obj.signed,
            "scale": e.obj.scale,
            "description": (e.obj.__doc__ or "").strip().splitlines()[0] if e.obj.__doc__ else "",
        }
        for e in attribution_entries(pm).values()
    ]
    datasets = [
        {
            "name": e.name,
            "plugin": e.plugin,
            "distribution": dists.get(e.plugin, "?"),
            "description": e.obj.description,
        }
        for e in dataset_entries(pm).values()
    ]
    errors = [{"plugin": err.name, "distribution": err.dist, "error": err.error} for err in pm.load_errors]
    key = lambda d: d["name"]  # noqa: E731
    return {
        "models": sorted(models, key=key),
        "attributions": sorted(attributions, key=key),
        "datasets": sorted(datasets, key=key),
        "errors": errors,
    }


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
    models = Table("model", "params", "CAM layer", "plugin", "description", title="Models")
    for m in summary["models"]:
        models.add_row(m["name"], f"{m['params']:,}", m["target_layer"], m["plugin"], m["description"])
    attrs = Table("method", "layer", "sign", "plugin", "description", title="Attribution methods")
    for a in summary["attributions"]:
        attrs.add_row(
            a["name"], "yes" if a["uses_layer"] else "-", "signed" if a["signed"] else ">= 0",
            a["plugin"], a["description"],
        )
    data = Table("dataset", "plugin", "description", title="Datasets")
    for d in summary["datasets"]:
        data.add_row(d["name"], d["plugin"], d["description"])
    console.print(models, attrs, data)
    if summary["errors"]:
        errors = Table("plugin", "distribution", "error", title="Plugins that failed to load", style="red")
        for e in summary["errors"]:
            errors.add_row(e["plugin"], e["distribution"], e["error"])
        console.print(errors)
