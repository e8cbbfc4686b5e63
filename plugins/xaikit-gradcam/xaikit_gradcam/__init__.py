"""Class-activation-map attribution methods for xaikit (entry point ``gradcam``)."""

from xaikit_gradcam.ablationcam import AblationCAM
from xaikit_gradcam.cam import CAM
from xaikit_gradcam.eigencam import EigenCAM
from xaikit_gradcam.eigengradcam import EigenGradCAM
from xaikit_gradcam.fem import FEM
from xaikit_gradcam.finercam import FinerCAM
from xaikit_gradcam.fullgrad import FullGrad
from xaikit_gradcam.gradcam import GradCAM
from xaikit_gradcam.gradcam_elementwise import GradCAMElementWise
from xaikit_gradcam.gradcam_plus_plus import GradCAMPlusPlus
from xaikit_gradcam.hirescam import HiResCAM
from xaikit_gradcam.iscam import ISCAM
from xaikit_gradcam.kpca_cam import KPCACAM
from xaikit_gradcam.layercam import LayerCAM
from xaikit_gradcam.scorecam import ScoreCAM
from xaikit_gradcam.shapleycam import ShapleyCAM
from xaikit_gradcam.smoothgradcam_plus_plus import SmoothGradCAMPlusPlus
from xaikit_gradcam.sscam import SSCAM
from xaikit_gradcam.xgradcam import XGradCAM

#: Every method the plugin registers, in the order ``xaikit plugins list`` shows them.
METHODS = (
    GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, ScoreCAM,
    GradCAMElementWise, EigenCAM, EigenGradCAM, AblationCAM, FullGrad, KPCACAM, ShapleyCAM,
    FinerCAM, FEM, SSCAM, ISCAM, SmoothGradCAMPlusPlus, CAM,
)

__all__ = [cls.__name__ for cls in METHODS] + ["METHODS"]
