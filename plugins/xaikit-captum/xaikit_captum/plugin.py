"""Entry point ``captum`` of the ``xaikit`` group: registers the Captum-backed methods."""

from __future__ import annotations

from collections.abc import Callable

from xaikit.hookspecs import hookimpl


@hookimpl
def register_attributions(register: Callable) -> None:
    from xaikit_captum import ALL_METHODS

    for method_cls in ALL_METHODS:
        register(method_cls)
