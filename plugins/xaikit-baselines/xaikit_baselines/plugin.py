"""The module named by the ``xaikit`` entry point ``baselines``: registers the controls."""

from __future__ import annotations

from collections.abc import Callable

from xaikit import hookimpl
from xaikit_baselines.center import CenterGaussian
from xaikit_baselines.random_map import RandomMap
from xaikit_baselines.sobel import SobelEdges


@hookimpl
def register_attributions(register: Callable) -> None:
    for method in (RandomMap, SobelEdges, CenterGaussian):
        register(method)
