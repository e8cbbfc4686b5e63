"""xaikit attribution plugin wrapping Captum (https://captum.ai).

Every method is a subclass of :class:`xaikit.Attribution`; :mod:`xaikit_captum.plugin` registers
them. The modules import Captum lazily on first use only through their own imports, so
``import xaikit_captum`` is cheap apart from Captum itself.
"""

from xaikit_captum.deeplift import DeepLift
from xaikit_captum.gradcam import CaptumGradCam
from xaikit_captum.guided_backprop import GuidedBackprop
from xaikit_captum.input_x_gradient import InputXGradient
from xaikit_captum.integrated_gradients import IntegratedGradients
from xaikit_captum.occlusion import Occlusion
from xaikit_captum.saliency import Saliency
from xaikit_captum.smoothgrad import SmoothGrad

ALL_METHODS = (
    IntegratedGradients,
    Saliency,
    InputXGradient,
    SmoothGrad,
    DeepLift,
    Occlusion,
    GuidedBackprop,
    CaptumGradCam,
)

__all__ = [
    "ALL_METHODS",
    "CaptumGradCam",
    "DeepLift",
    "GuidedBackprop",
    "InputXGradient",
    "IntegratedGradients",
    "Occlusion",
    "Saliency",
    "SmoothGrad",
]
