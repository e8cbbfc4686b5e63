"""The registry: models, attribution methods and data sets, each with the plugin that gave it.

It walks ``get_hookimpls()`` of each hook and calls one implementation at a time, so every
entry knows its plugin and distribution. The tables are collected once per plugin manager
(cached in ``pm.state.registry``, dropped when a plugin is registered or unregistered).

A name registered more than once is a :class:`Conflict`: the name is left out of its table,
the rest works, ``xaikit plugins list`` reports it, and looking the name up raises
``DuplicateNameError`` naming the plugins and distributions involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from torch import nn

from xaikit.errors import DuplicateNameError, UnknownNameError, XaikitError
from xaikit.plugins import Distribution, PluginManager, get_plugin_manager
from xaikit.specs import DatasetSpec, ModelSpec

T = TypeVar("T")

#: Kind (as in ``Conflict.kind`` and ``plugins list --json``) -> the words used in messages.
KIND_WORDS = {"model": "model", "attribution": "attribution method", "dataset": "dataset"}


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing and where it came from.

    Attributes:
        name: Registry name.
        obj: A ``ModelSpec``, an ``Attribution`` subclass or a ``DatasetSpec``.
        plugin: Name of the plugin that registered it.
        dist: The distribution that plugin came from.
    """

    name: str
    obj: T
    plugin: str
    dist: Distribution

    def origin(self) -> str:
        """``plugin 'x' (distribution xaikit-x 0.1)``, for messages."""
        return f"plugin {self.plugin!r} (distribution {self.dist})"


@dataclass(frozen=True)
class Conflict:
    """A name that more than one registration claims; it is left out of its table.

    Attributes:
        kind: ``"model"``, ``"attribution"`` or ``"dataset"``.
        name: The contested name.
        entries: Every registration of it, in hook order.
    """

    kind: str
    name: str
    entries: tuple[Entry, ...]

    def advice(self) -> str:
        """What the user can do: which distributions to uninstall one of."""
        dists = list(dict.fromkeys(str(e.dist) for e in self.entries))
        if len(dists) > 1:
            return f"uninstall one of {', '.join(dists)}"
        return f"{dists[0]} registers it {len(self.entries)} times; report it to its authors"

    def message(self) -> str:
        """One line naming every plugin and distribution, and what to do."""
        who = " and ".join(e.origin() for e in self.entries)
        return f"{KIND_WORDS[self.kind]} {self.name!r} is registered by {who}; {self.advice()}"


@dataclass
class Tables:
    """Everything the plugins of one manager registered (built once, cached on the manager)."""

    models: dict[str, Entry[ModelSpec]] = field(default_factory=dict)
    attributions: dict[str, Entry[type]] = field(default_factory=dict)
    datasets: dict[str, Entry[DatasetSpec]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    def table(self, kind: str) -> dict[str, Entry]:
        """The table of ``kind``: ``"model"``, ``"attribution"`` or ``"dataset"``."""
        by_kind = {"model": self.models, "attribution": self.attributions, "dataset": self.datasets}
        return by_kind[kind]


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


_HOOKS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "model": ("register_models", _check_model),
    "attribution": ("register_attributions", _check_attribution),
    "dataset": ("register_datasets", _check_dataset),
}


def _collect(pm: PluginManager, kind: str, tables: Tables) -> None:
    hook_name, check = _HOOKS[kind]
    claims: dict[str, list[Entry]] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin = impl.plugin_name

        def register(obj: Any, _plugin: str = plugin) -> None:
            name = check(obj)
            claims.setdefault(name, []).append(Entry(name, obj, _plugin, pm.distribution(_plugin)))

        impl.function(register=register)
    table = tables.table(kind)
    for name, entries in claims.items():
        if len(entries) == 1:
            table[name] = entries[0]
        else:
            tables.conflicts.append(Conflict(kind, name, tuple(entries)))


def tables(pm: PluginManager | None = None) -> Tables:
    """The registry tables of ``pm`` (default: the process-wide manager), collected once.

    Raises:
        XaikitError: A plugin registered something of the wrong type.
    """
    pm = pm or get_plugin_manager()
    if pm.state.registry is None:
        collected = Tables()
        for kind in _HOOKS:
            _collect(pm, kind, collected)
        pm.state.registry = collected
    return pm.state.registry


def model_entries(pm: PluginManager | None = None) -> dict[str, Entry[ModelSpec]]:
    """Registered models by name (names claimed twice are left out, see :func:`conflicts`)."""
    return dict(tables(pm).models)


def attribution_entries(pm: PluginManager | None = None) -> dict[str, Entry[type]]:
    """Registered attribution methods by name."""
    return dict(tables(pm).attributions)


def dataset_entries(pm: PluginManager | None = None) -> dict[str, Entry[DatasetSpec]]:
    """Registered data sets by name."""
    return dict(tables(pm).datasets)


def conflicts(pm: PluginManager | None = None) -> list[Conflict]:
    """Names registered more than once, of every kind."""
    return list(tables(pm).conflicts)


def get_entry(kind: str, name: str, pm: PluginManager | None = None) -> Entry:
    """The entry of ``name`` in the table of ``kind`` (``"model"``, ``"attribution"``...).

    Raises:
        DuplicateNameError: ``name`` is registered by more than one plugin.
        UnknownNameError: No plugin registered ``name``; the message lists the known names.
    """
    registry = tables(pm)
    entries = registry.table(kind)
    if name in entries:
        return entries[name]
    for conflict in registry.conflicts:
        if conflict.kind == kind and conflict.name == name:
            raise DuplicateNameError(conflict.message())
    known = ", ".join(sorted(entries)) or "none"
    raise UnknownNameError(f"unknown {KIND_WORDS[kind]} {name!r}; registered: {known}")


def list_models(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(tables(pm).models)


def get_model_spec(name: str, pm: PluginManager | None = None) -> ModelSpec:
    """The spec of model ``name``; raises ``UnknownNameError`` listing the known names."""
    return get_entry("model", name, pm).obj


def create_model(name: str, pm: PluginManager | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with its factory; ``kwargs`` go to the factory."""
    return get_model_spec(name, pm).create(**kwargs)


def list_attributions(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered attribution methods, sorted."""
    return sorted(tables(pm).attributions)


def get_attribution(name: str, pm: PluginManager | None = None) -> type:
    """The ``Attribution`` subclass registered as ``name``."""
    return get_entry("attribution", name, pm).obj


def list_datasets(pm: PluginManager | None = None) -> list[str]:
    """Names of all registered data sets, sorted."""
    return sorted(tables(pm).datasets)


def get_dataset_spec(name: str, pm: PluginManager | None = None) -> DatasetSpec:
    """The spec of data set ``name``."""
    return get_entry("dataset", name, pm).obj


def resolve_methods(
    methods: Sequence[str] | None, default: Sequence[str], pm: PluginManager | None = None
) -> list[str]:
    """The attribution methods a command runs.

    Args:
        methods: The user's choice. ``None`` or empty: those of ``default`` that are
            registered; ``["all"]``: every registered method, sorted; else each name is
            checked and duplicates are dropped, keeping the first occurrence's order.
        default: The command's default methods, in order.
        pm: The plugin manager (default: the process-wide one).

    Raises:
        XaikitError: No method is left (none of the defaults is registered, or none at all).
        UnknownNameError: A name no plugin registered (the message lists the registered ones).
        DuplicateNameError: A name more than one plugin registered.
    """
    registered = list_attributions(pm)
    if not methods:
        chosen = [name for name in default if name in registered]
        if not chosen:
            others = f"; registered: {', '.join(registered)}" if registered else ""
            raise XaikitError(
                f"none of the default attribution methods ({', '.join(default) or 'none'}) is "
                f"registered; install a plugin such as xaikit-gradcam or pass --method{others}"
            )
        return chosen
    if "all" in methods and list(methods) != ["all"]:
        others = ", ".join(m for m in methods if m != "all")
        raise XaikitError(f"--method all already means every method; drop {others} or 'all'")
    if list(methods) == ["all"]:
        if not registered:
            raise XaikitError(
                "no attribution method is registered; install a plugin such as xaikit-gradcam"
            )
        return registered
    for name in methods:
        get_entry("attribution", name, pm)
    return list(dict.fromkeys(methods))
