"""Input x gradient (Shrikumar, Greenside, Shcherbina and Kundaje, "Not Just a Black Box:
Learning Important Features Through Propagating Activation Differences", 2016), through
Captum's ``InputXGradient``."""

from __future__ import annotations

from captum.attr import InputXGradient as _CaptumInputXGradient
from torch import Tensor

from xaikit import Attribution
from xaikit_captum._captum_call import captum_call


class InputXGradient(Attribution):
    """Input times gradient of the target logit, summed over channels.

    ``M_ij = sum_k x_kij * d f_c(x) / d x_kij`` -- for a ReLU network without biases this is
    integrated gradients with a zero baseline taken in a single step. ``x`` is the
    normalised input, so zero means the data set's mean colour.

    Output: ``[B, H, W]`` (Captum's ``[B, C, H, W]`` summed over channels by the base class),
    **signed** (positive = raises the target logit), logit units.
    """

    name = "input-x-gradient"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, sum over channels of x * d logit / dx, logit units"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model):
            return _CaptumInputXGradient(self.model).attribute(x, target=target)
