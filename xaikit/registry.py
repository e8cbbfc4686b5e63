"""The registry: models, attribution methods and data sets, each with the plugin that gave it.

It walks ``get_hookimpls()`` of each hook and calls one implementation at a time, so every
entry knows its plugin. A name registered twice is an error that names both plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from torch import nn

from xaikit.errors import DuplicateNameError, UnknownNameError, XaikitError
from xaikit.plugins import PluginManager, get_plugin_manager
from xaikit.specs import DatasetSpec, ModelSpec

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing and the plugin that registered it."""

    name: str
    obj: T
    plugin: str


def _collect(pm: PluginManager, hook_name: str, check: Callable[[Any], str]) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin = impl.plugin_name

        def register(obj: Any, _plugin: str = plugin) -> None:
            name = check(obj)
            if name in entries:
                raise DuplicateNameError(
                    f"{hook_name}: name {name!r} is registered by both plugin "
                    f"{entries[name].plugin!r} and plugin {_plugin!r}"
                )
            entries[name] = Entry(name, obj, _plugin)

        impl.function(register=register)
    return entries


def _check_model(obj: Any) -> str:
    if not isinstance(obj, ModelSpec):
        raise XaikitError(f"register_models: expected a ModelSpec, got {type(obj).__name__}")
    return obj.name


def _check_dataset(obj: Any) -> str:
    if not isinstance(obj, DatasetSpec):
        raise XaikitError(f"register_datasets: expected a DatasetSpec, got {type(obj).__name__}")
    return obj.name


def _check_attribution(obj: Any) -> str:
    from xaikit.attribution.base import Attribution

    if not (isinstance(obj, type) and issubclass(obj, Attribution)) or not getattr(obj, "name", ""):
        raise XaikitError(
            f"register_attributions: expected an Attribution subclass with a name, got {obj!r}"
        )
    return obj.name


def model_entries(pm: PluginManager | None = None) -> dict[str, Entry[ModelSpec]]:
    return _collect(pm or get_plugin_manager(), "register_models", _check_model)


def attribution_entries(pm: PluginManager | None = None) -> dict[str, Entry[type]]:
    return _collect(pm or get_plugin_manager(), "register_attributions", _check_attribution)


def dataset_entries(pm: PluginManager | None = None) -> dict[str, Entry[DatasetSpec]]:
    return _collect(pm or get_plugin_manager(), "register_datasets", _check_dataset)


def _lookup(entries: dict[str, Entry], kind: str, name: str) -> Entry:
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise UnknownNameError(f"unknown {kind} {name!r}; registered: {known}")
    return entries[name]


def list_models(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(model_entries(pm))


def get_model_spec(name: str, pm: PluginManager | None = None) -> ModelSpec:
    """The spec of model ``name``; raises ``UnknownNameError`` listing the known names."""
    return _lookup(model_entries(pm), "model", name).obj


def create_model(name: str, pm: PluginManager | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with its factory; ``kwargs`` go to the factory."""
    return get_model_spec(name, pm).create(**kwargs)


def list_attributions(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered attribution methods, sorted."""
    return sorted(attribution_entries(pm))


def get_attribution(name: str, pm: PluginManager | None = None) -> type:
    """The ``Attribution`` subclass registered as ``name``."""
    return _lookup(attribution_entries(pm), "attribution method", name).obj


def list_datasets(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered data sets, sorted."""
    return sorted(dataset_entries(pm))


def get_dataset_spec(name: str, pm: PluginManager | None = None) -> DatasetSpec:
    """The spec of data set ``name``."""
    return _lookup(dataset_entries(pm), "dataset", name).obj
