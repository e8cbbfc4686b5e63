"""The hook specifications plugins implement. Full docs with examples: docs/plugins.md."""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("xaikit")
hookimpl = pluggy.HookimplMarker("xaikit")


@hookspec
def register_models(register: Callable) -> None:
    """Call ``register(ModelSpec(...))`` once for each model the plugin offers."""


@hookspec
def register_attributions(register: Callable) -> None:
    """Call ``register(AttributionClass)`` once for each attribution method (a subclass of ``xaikit.Attribution``)."""


@hookspec
def register_datasets(register: Callable) -> None:
    """Call ``register(DatasetSpec(...))`` once for each data set the plugin offers."""
