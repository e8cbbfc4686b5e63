"""Plugin manager factory and entry-point loading.

Plugins are found through the ``xaikit`` entry-point group. A plugin that fails to import
is recorded in ``PluginManager.load_errors`` and the others still load. Environment switches:

* ``XAIKIT_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (built-ins only).
* ``XAIKIT_LOAD_PLUGINS=a,b``: load only the named entry points (built-ins always load).

The registry tables built from a manager's hooks are cached on it (``state.registry``) and
dropped whenever a plugin is registered or unregistered on that manager.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from xaikit import hookspecs

ENTRY_POINT_GROUP = "xaikit"
BUILTIN_PLUGINS = ("xaikit.builtin",)


@dataclass(frozen=True)
class Distribution:
    """The installed distribution a plugin comes from.

    Attributes:
        name: Distribution name as pip knows it, e.g. ``"xaikit-gradcam"``.
        version: Its version; ``""`` when unknown.
    """

    name: str
    version: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


#: The distribution of a plugin registered by hand (``pm.register(module)``), not by an entry point.
UNKNOWN_DISTRIBUTION = Distribution("unknown")


def _core_distribution() -> Distribution:
    try:
        return Distribution("xaikit", importlib.metadata.version("xaikit"))
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return Distribution("xaikit")


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin entry point that could not be loaded."""

    name: str
    dist: Distribution
    error: str


@dataclass(frozen=True)
class UnknownHook:
    """A hook implementation (``@xaikit.hookimpl``) whose name matches no hook specification.

    Attributes:
        plugin: The plugin that defines it.
        dist: The plugin's distribution.
        hook: The implementation's name, e.g. ``"register_model"``.
        suggestion: The closest valid hook name, or ``None`` when none is close.
    """

    plugin: str
    dist: Distribution
    hook: str
    suggestion: str | None


@dataclass
class PluginState:
    """What happened while loading plugins, and the registry tables cached for this manager.

    Attributes:
        load_errors: Entry points that failed to load.
        dists: Plugin name -> the distribution it came from.
        registry: The registry tables (``xaikit.registry.Tables``) built from this manager's
            hooks, or ``None`` until first needed (and again after a plugin is (un)registered).
    """

    load_errors: list[PluginLoadError] = field(default_factory=list)
    dists: dict[str, Distribution] = field(default_factory=dict)
    registry: Any = None


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which entry points failed and where plugins came from."""

    def __init__(self) -> None:
        super().__init__("xaikit")
        self.state = PluginState()
        self.add_hookspecs(hookspecs)

    @property
    def load_errors(self) -> list[PluginLoadError]:
        return self.state.load_errors

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (see pluggy) and drop the cached registry tables."""
        try:
            return super().register(plugin, name=name)
        finally:
            self.state.registry = None

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """Unregister a plugin (see pluggy) and drop the cached registry tables."""
        try:
            return super().unregister(plugin=plugin, name=name)
        finally:
            self.state.registry = None

    def distribution(self, plugin_name: str) -> Distribution:
        """The distribution plugin ``plugin_name`` came from (``UNKNOWN_DISTRIBUTION`` if none)."""
        return self.state.dists.get(plugin_name, UNKNOWN_DISTRIBUTION)

    def unknown_hooks(self) -> list[UnknownHook]:
        """Hook implementations that match no hook specification (a misspelt hook name).

        pluggy keeps such implementations on a hook caller without a spec and never calls
        them; ``optionalhook=True`` implementations are left out, as pluggy does.
        """
        callers = {n: caller for n, caller in vars(self.hook).items() if not n.startswith("_")}
        valid = sorted(name for name, caller in callers.items() if caller.has_spec())
        found = []
        for name, caller in sorted(callers.items()):
            if caller.has_spec():
                continue
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    plugin = impl.plugin_name
                    suggestion = close[0] if close else None
                    found.append(UnknownHook(plugin, self.distribution(plugin), name, suggestion))
        return found


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def make_plugin_manager(load_entrypoints: bool | None = None) -> PluginManager:
    """Build a fresh plugin manager: built-in plugins plus the ``xaikit`` entry points.

    Args:
        load_entrypoints: Override ``XAIKIT_DISABLE_PLUGIN_AUTOLOAD``; ``None`` reads the env.
    """
    pm = PluginManager()
    core = _core_distribution()
    for module_name in BUILTIN_PLUGINS:
        plugin_name = module_name.rsplit(".", 1)[-1]
        pm.register(importlib.import_module(module_name), name=plugin_name)
        pm.state.dists[plugin_name] = core
    if load_entrypoints is None:
        load_entrypoints = os.environ.get("XAIKIT_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    if not load_entrypoints:
        return pm
    only = _env_list("XAIKIT_LOAD_PLUGINS")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only is not None and ep.name not in only:
            continue
        if pm.has_plugin(ep.name):
            continue
        dist = Distribution(ep.dist.name, ep.dist.version) if ep.dist else UNKNOWN_DISTRIBUTION
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            pm.state.load_errors.append(
                PluginLoadError(ep.name, dist, f"{type(exc).__name__}: {exc}".splitlines()[0])
            )
            continue
        pm.state.dists[ep.name] = dist
    return pm


_pm: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is None:
        _pm = make_plugin_manager()
    return _pm


def set_plugin_manager(pm: PluginManager | None) -> None:
    """Replace the process-wide manager (``None`` rebuilds it lazily); used by tests."""
    global _pm
    _pm = pm
