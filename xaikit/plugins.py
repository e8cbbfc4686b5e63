"""Plugin manager factory and entry-point loading.

Plugins are found through the ``xaikit`` entry-point group. A plugin that fails to import
is recorded in ``PluginManager.load_errors`` and the others still load. Environment switches:

* ``XAIKIT_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (built-ins only).
* ``XAIKIT_LOAD_PLUGINS=a,b``: load only the named entry points (built-ins always load).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from xaikit import hookspecs

ENTRY_POINT_GROUP = "xaikit"
BUILTIN_PLUGINS = ("xaikit.builtin",)


@dataclass
class PluginLoadError:
    """A plugin entry point that could not be loaded."""

    name: str
    dist: str
    error: str


@dataclass
class PluginState:
    """What happened while loading plugins."""

    load_errors: list[PluginLoadError] = field(default_factory=list)
    dists: dict[str, str] = field(default_factory=dict)  # plugin name -> "dist version"


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which entry points failed and where plugins came from."""

    def __init__(self) -> None:
        super().__init__("xaikit")
        self.add_hookspecs(hookspecs)
        self.state = PluginState()

    @property
    def load_errors(self) -> list[PluginLoadError]:
        return self.state.load_errors


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
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name.rsplit(".", 1)[-1])
        pm.state.dists[module_name.rsplit(".", 1)[-1]] = "xaikit (built-in)"
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
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
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
