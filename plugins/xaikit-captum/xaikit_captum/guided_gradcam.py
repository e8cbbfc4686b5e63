"""Guided Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017, section 3.1), through Captum's ``GuidedGradCam``."""

from __future__ import annotations

from typing import Literal

from captum.attr import GuidedGradCam as _CaptumGuidedGradCam
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call, relus_not_inplace, require_relu_modules


class GuidedGradCam(Attribution):
    """Guided backprop multiplied element-wise by the upsampled Grad-CAM of a layer.

    With ``A^k`` the layer's channel-k activation, ``GB`` the guided-backprop gradient of the
    target logit f_c with respect to the input and ``up`` the upsampling to the input size::

        alpha_k = (1 / hw) sum_ij d f_c / d A^k_ij,   L = ReLU(sum_k alpha_k A^k)
        M = GB * up(L)          (per input channel, then summed over channels)

    The layer is the model's default CAM layer (``--layer`` picks another); a model without a
    spatial layer raises :class:`xaikit.NotApplicableError` from the constructor.
    ``interpolate_mode`` is the upsampling of ``L``: ``"bilinear"`` by default, as in the
    paper (Captum's default is ``"nearest"``). Guided backprop changes only ``nn.ReLU``
    *modules* (a model with none raises :class:`xaikit.NotApplicableError`); in-place ReLUs
    are switched off for the call and restored.

    Cost: two forward and two backward passes (Grad-CAM, then guided backprop).

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**
    (the guided gradient's sign; Grad-CAM is >= 0), unnormalised.

    Args:
        model: The classifier (logits out).
        layer: Layer name for Grad-CAM, or ``None`` for the model's default.
        interpolate_mode: ``"bilinear"`` or ``"nearest"``.
    """

    name = "guided-gradcam"
    uses_layer = True
    signed = True
    class_discriminative = True
    scale = "signed, guided gradient x ReLU'd Grad-CAM, channel sum, unnormalised"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        interpolate_mode: Literal["bilinear", "nearest"] = "bilinear",
    ) -> None:
        super().__init__(model, layer)
        require_relu_modules(model, self.name)
        if interpolate_mode not in ("bilinear", "nearest"):
            raise XaikitError(
                f"interpolate_mode must be 'bilinear' or 'nearest', got {interpolate_mode!r}"
            )
        self.interpolate_mode = interpolate_mode

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        assert self.layer is not None  # set by Attribution.__init__ since uses_layer is True
        explainer = _CaptumGuidedGradCam(self.model, self.layer)
        with captum_call(self.model), relus_not_inplace(self.model):
            maps = explainer.attribute(x, target=target, interpolate_mode=self.interpolate_mode)
        if maps.numel() == 0:  # Captum returns an empty tensor when it cannot upsample
            raise XaikitError(
                f"guided-gradcam cannot upsample layer {self.layer_name!r}'s Grad-CAM to the input"
            )
        return maps
