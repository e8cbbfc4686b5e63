"""The plugin system: discovery, provenance, duplicates, broken plugins, env switches, CLI."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import re
import types
from pathlib import Path

import pytest
from torch import nn
from typer.testing import CliRunner

import xaikit
from xaikit import hookspecs, plugins
from xaikit.cli import app
from xaikit.errors import DuplicateNameError, UnknownNameError, XaikitError
from xaikit.registry import (
    attribution_entries,
    conflicts,
    dataset_entries,
    model_entries,
    resolve_methods,
    tables,
)
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


def _from(pm: plugins.PluginManager, name: str, dist: str, version: str) -> None:
    """Pretend plugin ``name`` came from distribution ``dist`` (as an entry point's would)."""
    pm.state.dists[name] = plugins.Distribution(dist, version)


def test_a_name_registered_twice_is_left_out_and_a_lookup_names_both_plugins(plugin_manager):
    plugin_manager.register(_model_plugin("first", "twin"), name="first")
    plugin_manager.register(_model_plugin("second", "twin"), name="second")
    _from(plugin_manager, "first", "xaikit-first", "0.1")
    _from(plugin_manager, "second", "xaikit-second", "2.0")
    assert "twin" not in xaikit.list_models()
    assert "ultimus" in xaikit.list_models()  # everything else still works
    with pytest.raises(DuplicateNameError) as info:
        xaikit.get_model_spec("twin")
    message = str(info.value)
    assert "\n" not in message
    for word in ("model 'twin'", "'first'", "'second'", "xaikit-first 0.1", "xaikit-second 2.0",
                 "uninstall one of"):
        assert word in message, message
    [conflict] = conflicts(plugin_manager)
    assert (conflict.kind, conflict.name) == ("model", "twin")
    assert [e.plugin for e in conflict.entries] == ["first", "second"]


def test_plugins_list_reports_a_conflict_and_lists_everything_else(plugin_manager):
    plugin_manager.register(_model_plugin("first", "twin"), name="first")
    plugin_manager.register(_model_plugin("second", "twin"), name="second")
    _from(plugin_manager, "first", "xaikit-first", "0.1")
    _from(plugin_manager, "second", "xaikit-second", "2.0")
    result = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "twin" not in {m["name"] for m in data["models"]} and "ultimus" in {m["name"] for m in data["models"]}
    [conflict] = data["conflicts"]
    assert conflict["kind"] == "model" and conflict["name"] == "twin"
    assert conflict["plugins"] == [
        {"plugin": "first", "distribution": "xaikit-first 0.1"},
        {"plugin": "second", "distribution": "xaikit-second 2.0"},
    ]
    assert conflict["advice"] == "uninstall one of xaikit-first 0.1, xaikit-second 2.0"
    table = CliRunner().invoke(app, ["plugins", "list"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    for word in ("registered more than once", "twin", "xaikit-first 0.1", "uninstall one of"):
        assert word in table.stdout, table.stdout


def test_a_misspelt_hook_is_reported_with_the_closest_valid_name(plugin_manager):
    module = types.ModuleType("typo")

    @xaikit.hookimpl
    def register_model(register):  # misspelt: the hook is register_models
        register(ModelSpec("never", _tiny_model, target_layer="0"))

    module.register_model = register_model
    plugin_manager.register(module, name="typo")
    _from(plugin_manager, "typo", "xaikit-typo", "0.3")
    assert "never" not in xaikit.list_models()
    [unknown] = plugin_manager.unknown_hooks()
    assert (unknown.plugin, unknown.hook, unknown.suggestion) == ("typo", "register_model", "register_models")
    result = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unknown_hooks"] == [
        {"plugin": "typo", "distribution": "xaikit-typo 0.3", "hook": "register_model",
         "suggestion": "register_models"}
    ]
    table = CliRunner().invoke(app, ["plugins", "list"], env={"COLUMNS": "250"})
    for word in ("match no hook", "register_model", "register_models", "xaikit-typo 0.3"):
        assert word in table.stdout, table.stdout


def test_no_unknown_hooks_or_conflicts_in_the_installed_plugins(plugin_manager):
    assert plugin_manager.unknown_hooks() == []
    assert conflicts(plugin_manager) == []


def test_the_registry_is_collected_once_per_manager(plugin_manager):
    calls = []
    module = types.ModuleType("counting")

    @xaikit.hookimpl
    def register_datasets(register):
        calls.append(1)

    module.register_datasets = register_datasets
    plugin_manager.register(module, name="counting")
    xaikit.list_models()
    xaikit.list_datasets()
    xaikit.get_dataset_spec("synthetic")
    dataset_entries(plugin_manager)
    assert calls == [1]
    assert tables(plugin_manager) is tables(plugin_manager)


def test_registering_or_unregistering_a_plugin_refreshes_the_registry(plugin_manager):
    assert "late" not in xaikit.list_models()
    module = _model_plugin("late", "late")
    plugin_manager.register(module, name="late")
    assert "late" in xaikit.list_models()
    plugin_manager.unregister(name="late")
    assert "late" not in xaikit.list_models()


def test_each_entry_knows_its_distribution(plugin_manager):
    ultimus = model_entries(plugin_manager)["ultimus"]
    assert ultimus.dist.name == "xaikit-ultimus" and ultimus.dist.version
    assert str(ultimus.dist) == f"xaikit-ultimus {importlib.metadata.version('xaikit-ultimus')}"
    assert dataset_entries(plugin_manager)["synthetic"].dist.name == "xaikit"
    plugin_manager.register(_model_plugin("byhand", "byhand"), name="byhand")
    assert model_entries(plugin_manager)["byhand"].dist == plugins.UNKNOWN_DISTRIBUTION


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


def test_resolve_methods_defaults_all_and_names(plugin_manager):
    assert resolve_methods(None, ["nope", "gradcam", "saliency"]) == ["gradcam", "saliency"]
    assert resolve_methods([], ["saliency"]) == ["saliency"]
    assert resolve_methods(["all"], []) == xaikit.list_attributions()
    assert resolve_methods(["saliency", "gradcam", "saliency"], []) == ["saliency", "gradcam"]
    with pytest.raises(UnknownNameError, match=r"unknown attribution method 'nope'; registered: .*gradcam"):
        resolve_methods(["gradcam", "nope"], [])


def test_resolve_methods_without_any_default_installed_says_what_to_install(monkeypatch):
    monkeypatch.setenv("XAIKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = plugins.make_plugin_manager()
    with pytest.raises(XaikitError, match="install a plugin such as xaikit-gradcam") as info:
        resolve_methods(None, ["gradcam"], pm)
    assert "\n" not in str(info.value)
    with pytest.raises(XaikitError, match="xaikit-gradcam"):
        resolve_methods(["all"], ["gradcam"], pm)


def test_model_descriptions_state_no_parameter_count(plugin_manager):
    """The count depends on num_classes and options; plugins list computes it instead."""
    for entry in model_entries(plugin_manager).values():
        assert not re.search(r"\d[\d,.]*\s*[kM]?\s*param", entry.obj.description, re.I), entry.name


def test_plugins_list_shows_each_models_options_and_defaults(plugin_manager):
    module = types.ModuleType("opts")

    def factory(num_classes: int = 10, width: int = 4, residual: bool = False, **extra) -> nn.Module:
        return _tiny_model(num_classes)

    @xaikit.hookimpl
    def register_models(register):
        register(ModelSpec("with-options", factory, target_layer=None))

    module.register_models = register_models
    plugin_manager.register(module, name="opts")
    data = json.loads(CliRunner().invoke(app, ["plugins", "list", "--json"]).stdout)
    model = next(m for m in data["models"] if m["name"] == "with-options")
    assert model["options"] == [
        {"name": "width", "type": "int", "default": 4},
        {"name": "residual", "type": "bool", "default": False},
    ]
    assert model["target_layer"] is None and model["params"] == 4 * 3 * 9 + 4 + 4 * 10 + 10
    resnet = next(m for m in data["models"] if m["name"] == "resnet18")
    assert resnet["options"] == [{"name": "width", "type": "float", "default": 1.0}]
    table = CliRunner().invoke(app, ["plugins", "list"], env={"COLUMNS": "250"})
    assert "width: int = 4" in table.stdout and "residual: bool = False" in table.stdout


def test_a_spec_without_a_target_layer_sets_none_on_the_model(plugin_manager):
    spec = ModelSpec("flat", _tiny_model, target_layer=None)
    assert not hasattr(spec.create(), "xaikit_target_layer")
    assert ModelSpec("conv", _tiny_model, target_layer="0").create().xaikit_target_layer == "0"


def test_every_hookspec_is_documented_with_its_signature():
    """Meta-test: docs/plugins.md documents each hook with its exact signature."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    specs = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert specs, "no hook specs found"
    for name in specs:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"def {name}({params}):" in docs, f"{name}({params}) is not documented in docs/plugins.md"
        assert f"## `{name}`" in docs, f"docs/plugins.md has no section for {name}"
