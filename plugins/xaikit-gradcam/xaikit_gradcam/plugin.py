"""The module named by the ``xaikit`` entry point: registers the CAM methods."""

from __future__ import annotations

from collections.abc import Callable

from xaikit.hookspecs import hookimpl
from xaikit_gradcam import METHODS


@hookimpl
def register_attributions(register: Callable) -> None:
    for method in METHODS:
        register(method)
