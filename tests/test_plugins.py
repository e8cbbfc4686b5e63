"""The plugin system: discovery, provenance, duplicates, broken plugins, env switches, CLI."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import xaikit
from xaikit import hookspecs, plugins
from xaikit.cli import app
from xaikit.errors import DuplicateNameError, UnknownNameError
from xaikit.registry import attribution_entries, dataset_entries, model_entries
from xaikit.specs import ModelSpec, Recipe

ROOT = Path(__file__).resolve().parents[1]


def _tiny_model(num_classes: int = 10):
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def _model_plugin(name: str, model_name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    @xaikit.hookimpl
    def register_models(register):
        register(ModelSpec(model_name, _tiny_model, target_layer="0", recipe=Recipe(epochs=1)))

    module.register_models = register_models
    return module


def test_builtin_datasets_are_registered_by_the_builtin_plugin(plugin_manager):
    entries = dataset_entries(plugin_manager)
    assert {"cifar10", "synthetic"} <= set(entries)
    assert entries["cifar10"].plugin == "builtin"


def test_installed_plugins_are_discovered_with_their_plugin_names(plugin_manager):
    models = model_entries(plugin_manager)
    for name, plugin in [("ultimus", "ultimus"), ("custom-resnet", "resnet"), ("resnet18", "resnet")]:
        assert models[name].plugin == plugin
    methods = attribution_entries(plugin_manager)
    assert methods["gradcam"].plugin == "gradcam"
    assert methods["integrated-gradients"].plugin == "captum"
    assert plugin_manager.load_errors == []


def test_a_registered_plugin_model_can_be_listed_and_created(plugin_manager):
    plugin_manager.register(_model_plugin("extra", "tiny-test"), name="extra")
    assert "tiny-test" in xaikit.list_models()
    assert model_entries(plugin_manager)["tiny-test"].plugin == "extra"
    model = xaikit.create_model("tiny-test", num_classes=3)
    assert model.xaikit_target_layer == "0"
    assert model[-1].out_features == 3


def test_duplicate_names_are_an_error_naming_both_plugins(plugin_manager):
    plugin_manager.register(_model_plugin("first", "twin"), name="first")
    plugin_manager.register(_model_plugin("second", "twin"), name="second")
    with pytest.raises(DuplicateNameError, match=r"'twin'.*'(first|second)'.*'(first|second)'"):
        xaikit.list_models()


def test_unknown_names_list_the_registered_ones(plugin_manager):
    with pytest.raises(UnknownNameError, match=r"unknown model 'nope'; registered: .*ultimus"):
        xaikit.get_model_spec("nope")
    with pytest.raises(UnknownNameError, match="unknown attribution method 'nope'"):
        xaikit.get_attribution("nope")


def _fake_entry_points(monkeypatch, extra: list[importlib.metadata.EntryPoint]) -> None:
    real = list(importlib.metadata.entry_points(group="xaikit"))

    def entry_points(group: str):
        assert group == "xaikit"
        return real + extra

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", entry_points)


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_load(monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "xaikit_no_such_module_xyz", "xaikit")
    _fake_entry_points(monkeypatch, [broken])
    pm = plugins.make_plugin_manager()
    assert [e.name for e in pm.load_errors] == ["broken"]
    assert "ModuleNotFoundError" in pm.load_errors[0].error
    assert "ultimus" in xaikit.list_models(pm)


def test_disable_autoload_keeps_only_builtins(monkeypatch):
    monkeypatch.setenv("XAIKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = plugins.make_plugin_manager()
    assert xaikit.list_models(pm) == []
    assert xaikit.list_attributions(pm) == []
    assert set(xaikit.list_datasets(pm)) == {"cifar10", "synthetic"}


def test_load_plugins_selects_entry_points_by_name(monkeypatch):
    monkeypatch.setenv("XAIKIT_LOAD_PLUGINS", "ultimus, gradcam")
    pm = plugins.make_plugin_manager()
    assert xaikit.list_models(pm) == ["ultimus"]
    assert "gradcam" in xaikit.list_attributions(pm)
    assert "integrated-gradients" not in xaikit.list_attributions(pm)


def test_the_manager_is_built_lazily_and_fresh_per_factory_call():
    assert plugins.make_plugin_manager() is not plugins.make_plugin_manager()
    plugins.set_plugin_manager(None)
    assert plugins._pm is None
    first = plugins.get_plugin_manager()
    assert plugins.get_plugin_manager() is first
    plugins.set_plugin_manager(None)


def test_plugins_list_json_has_models_attributions_and_datasets(plugin_manager):
    result = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ultimus = next(m for m in data["models"] if m["name"] == "ultimus")
    assert ultimus["plugin"] == "ultimus" and ultimus["params"] == 26074
    assert {"name", "plugin"} <= set(data["attributions"][0])
    assert {d["name"] for d in data["datasets"]} >= {"cifar10", "synthetic"}


def test_plugins_list_table_names_each_plugin(plugin_manager):
    result = CliRunner().invoke(app, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    for word in ("ultimus", "26,074", "gradcam", "integrated-gradients", "synthetic"):
        assert word in result.stdout


def test_every_hookspec_is_documented_with_its_signature():
    """Meta-test: docs/plugins.md documents each hook with its exact signature."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    specs = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert specs, "no hook specs found"
    for name in specs:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"def {name}({params}):" in docs, f"{name}({params}) is not documented in docs/plugins.md"
        assert f"## `{name}`" in docs, f"docs/plugins.md has no section for {name}"
