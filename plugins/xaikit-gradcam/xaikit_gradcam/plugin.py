"""The module named by the ``xaikit`` entry point: registers the CAM methods."""

from __future__ import annotations

from typing import Callable

from xaikit.hookspecs import hookimpl

from xaikit_gradcam.gradcam import GradCAM
from xaikit_gradcam.gradcam_plus_plus import GradCAMPlusPlus
from xaikit_gradcam.hirescam import HiResCAM
from xaikit_gradcam.layercam import LayerCAM
from xaikit_gradcam.scorecam import ScoreCAM
from xaikit_gradcam.xgradcam import XGradCAM


@hookimpl
def register_attributions(register: Callable) -> None:
    for method in (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, ScoreCAM):
        register(method)
