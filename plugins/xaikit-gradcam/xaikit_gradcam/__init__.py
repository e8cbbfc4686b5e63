"""Grad-CAM family attribution methods for xaikit (entry point ``gradcam``)."""

from xaikit_gradcam.gradcam import GradCAM
from xaikit_gradcam.gradcam_plus_plus import GradCAMPlusPlus
from xaikit_gradcam.hirescam import HiResCAM
from xaikit_gradcam.layercam import LayerCAM
from xaikit_gradcam.scorecam import ScoreCAM
from xaikit_gradcam.xgradcam import XGradCAM

__all__ = ["GradCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "ScoreCAM", "XGradCAM"]
