"""Feature ablation over image patches (Zeiler and Fergus, "Visualizing and Understanding
Convolutional Networks", ECCV 2014, occlusion sensitivity on a grid), through Captum's
``FeatureAblation``."""

from __future__ import annotations

from captum.attr import FeatureAblation as _CaptumFeatureAblation
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._patches import patch_mask


class FeatureAblation(Attribution):
    """Drop of the target logit when one patch of the grid (all channels) is set to zero.

    The image is cut into a fixed grid of ``patch x patch`` squares (64 features on 32x32
    images with the default 4; the last row or column is narrower when ``patch`` does not
    divide the size). For patch P::

        phi_P = f_c(x) - f_c(x with P set to 0)

    and every pixel of P gets ``phi_P``. Zero is the data set's mean colour in normalised
    space. Unlike ``occlusion`` the patches do not overlap, so the map is piecewise constant.

    Cost: ``1 + n_patches`` forward passes of each image, ``perturbations_per_eval`` ablated
    copies of every image per pass (``B * perturbations_per_eval`` images a pass).
    Deterministic.

    Output: ``[B, H, W]`` (one channel of Captum's per-channel-identical map); **signed**
    (positive = removing the patch lowers the target logit), logit units.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        patch: Side of the grid's squares in pixels.
        perturbations_per_eval: Ablated copies of each image per forward pass.
    """

    name = "feature-ablation"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, drop of the target logit when the pixel's patch is zeroed"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        patch: int = 4,
        perturbations_per_eval: int = 16,
    ) -> None:
        super().__init__(model, layer)
        if patch < 1 or perturbations_per_eval < 1:
            raise XaikitError("feature-ablation patch and perturbations_per_eval must be >= 1")
        self.patch = patch
        self.perturbations_per_eval = perturbations_per_eval

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model):
            maps = _CaptumFeatureAblation(self.model_forward).attribute(
                x,
                baselines=0.0,
                target=target,
                feature_mask=patch_mask(x.shape, self.patch, x.device),
                perturbations_per_eval=self.perturbations_per_eval,
            )
        return maps[:, 0]
