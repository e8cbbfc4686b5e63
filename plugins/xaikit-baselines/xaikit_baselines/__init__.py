"""Control attribution maps for xaikit (entry point ``baselines``): random, sobel, center.

A method is only worth showing if it beats these on the scorecard: ``random`` (no information,
but a CAM's smoothness), ``sobel`` (edges of the input, no model) and ``center`` (the centre
bias of photographs, no image).
"""

from xaikit_baselines.center import CenterGaussian
from xaikit_baselines.random_map import RandomMap
from xaikit_baselines.sobel import SobelEdges

__all__ = ["CenterGaussian", "RandomMap", "SobelEdges"]
