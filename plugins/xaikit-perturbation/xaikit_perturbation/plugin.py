"""The module named by the ``xaikit`` entry point ``perturbation``: registers its methods."""

from __future__ import annotations

from collections.abc import Callable

from xaikit import hookimpl


@hookimpl
def register_attributions(register: Callable) -> None:
    from xaikit_perturbation import ALL_METHODS

    for method in ALL_METHODS:
        register(method)
