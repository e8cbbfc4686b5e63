"""xaikit attribution plugin wrapping Captum (https://captum.ai).

Every method is a subclass of :class:`xaikit.Attribution`; :mod:`xaikit_captum.plugin` registers
them. Each wraps the Captum class of the same name; the modules whose names start with an
underscore hold what several share (hook hygiene, seeding, patch grids, SHAP references,
shared noise).
"""

from xaikit_captum.deconvolution import Deconvolution
from xaikit_captum.deeplift import DeepLift
from xaikit_captum.deeplift_shap import DeepLiftShap
from xaikit_captum.feature_ablation import FeatureAblation
from xaikit_captum.gradcam import CaptumGradCam
from xaikit_captum.gradient_shap import GradientShap
from xaikit_captum.guided_backprop import GuidedBackprop
from xaikit_captum.guided_gradcam import GuidedGradCam
from xaikit_captum.input_x_gradient import InputXGradient
from xaikit_captum.integrated_gradients import IntegratedGradients
from xaikit_captum.kernel_shap import KernelShap
from xaikit_captum.lime import Lime
from xaikit_captum.lrp import LRP
from xaikit_captum.occlusion import Occlusion
from xaikit_captum.saliency import Saliency
from xaikit_captum.shapley_sampling import ShapleyValueSampling
from xaikit_captum.smoothgrad import SmoothGrad
from xaikit_captum.smoothgrad_sq import SmoothGradSquared
from xaikit_captum.vargrad import VarGrad

ALL_METHODS = (
    IntegratedGradients,
    Saliency,
    InputXGradient,
    SmoothGrad,
    DeepLift,
    Occlusion,
    GuidedBackprop,
    CaptumGradCam,
    GradientShap,
    DeepLiftShap,
    Deconvolution,
    GuidedGradCam,
    FeatureAblation,
    ShapleyValueSampling,
    Lime,
    KernelShap,
    LRP,
    VarGrad,
    SmoothGradSquared,
)

__all__ = [
    "ALL_METHODS",
    "LRP",
    "CaptumGradCam",
    "Deconvolution",
    "DeepLift",
    "DeepLiftShap",
    "FeatureAblation",
    "GradientShap",
    "GuidedBackprop",
    "GuidedGradCam",
    "InputXGradient",
    "IntegratedGradients",
    "KernelShap",
    "Lime",
    "Occlusion",
    "Saliency",
    "ShapleyValueSampling",
    "SmoothGrad",
    "SmoothGradSquared",
    "VarGrad",
]
