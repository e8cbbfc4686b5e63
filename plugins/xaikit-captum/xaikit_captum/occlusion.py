"""Occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014), through Captum's ``Occlusion``."""

from __future__ import annotations

from captum.attr import Occlusion as _CaptumOcclusion
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call


class Occlusion(Attribution):
    """Drop of the target logit when a square window (all channels) is set to zero.

    A ``window x window`` patch slides with ``stride`` over the image; for each position p,
    ``d_p = f_c(x) - f_c(x with the patch set to 0)``, and each pixel gets the mean of ``d_p``
    over the patches that cover it. Zero is the data set's mean colour in normalised space.
    On 32x32 images the default 4x4 window with stride 2 makes 15 x 15 = 225 occluded copies
    per image; ``perturbations_per_eval`` of them go through one forward pass per image
    (``B * perturbations_per_eval`` images a pass).

    Output: ``[B, H, W]`` (one channel of Captum's per-channel-identical map); **signed**
    (positive = occluding lowers the target logit), logit units.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        window: Side of the occluding square in pixels.
        stride: Step between windows in pixels.
        perturbations_per_eval: Occluded copies of each image per forward pass.
    """

    name = "occlusion"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, mean drop of the target logit over covering windows"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        window: int = 4,
        stride: int = 2,
        perturbations_per_eval: int = 32,
    ) -> None:
        super().__init__(model, layer)
        if window < 1 or stride < 1 or perturbations_per_eval < 1:
            raise XaikitError("occlusion window, stride and perturbations_per_eval must be >= 1")
        self.window = window
        self.stride = stride
        self.perturbations_per_eval = perturbations_per_eval

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        channels, height, width = x.shape[1:]
        if self.window > min(height, width):
            raise XaikitError(
                f"occlusion window {self.window} is larger than the {height}x{width} image"
            )
        with captum_call(self.model):
            maps = _CaptumOcclusion(self.model_forward).attribute(
                x,
                sliding_window_shapes=(channels, self.window, self.window),
                strides=(channels, self.stride, self.stride),
                baselines=0.0,
                target=target,
                perturbations_per_eval=self.perturbations_per_eval,
            )
        return maps[:, 0]
