"""DeepLIFT (Shrikumar, Greenside and Kundaje, "Learning Important Features Through
Propagating Activation Differences", ICML 2017), through Captum's ``DeepLift``."""

from __future__ import annotations

import contextlib
from collections import Counter

import torch
from captum.attr import DeepLift as _CaptumDeepLift
from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call, relus_not_inplace


class DeepLift(Attribution):
    """DeepLIFT with the Rescale rule and a zero baseline (the mean image in normalised space).

    Contributions C of each input to ``Delta f_c = f_c(x) - f_c(x')`` are propagated with
    multipliers ``m = Delta y / Delta x`` through every nonlinearity module (chain rule for
    multipliers), so ``sum_i C_i = f_c(x) - f_c(x')`` (summation-to-delta).

    Limits of Captum's implementation: only nonlinearities that are *modules* (``nn.ReLU``,
    ``nn.Sigmoid``, ``nn.Softmax``, ...) get the Rescale rule -- functional calls such as
    ``F.relu`` are treated by their plain gradient; a module object used twice in one forward
    pass (a shared ``nn.ReLU``) gives wrong multipliers -- this wrapper checks for that with
    one forward pass of the first image and raises :class:`XaikitError`; and in-place ReLUs
    overwrite what the hooks saved, so this wrapper sets ``inplace=False`` for the call and
    restores it.

    Summation-to-delta is exact only where every nonlinearity is a module DeepLIFT handles
    and the multipliers compose: it holds on resnet18 (ReLU modules, average pooling), but
    not on ULTIMUS, whose attention (a functional softmax and products of two activations)
    is passed by its plain gradient (median gap 17% of ``|f_c(x) - f_c(0)|``), nor on
    custom-resnet, whose ``nn.AdaptiveMaxPool2d`` head has no DeepLIFT rule in Captum and is
    also passed by its gradient (median gap 13%). There a map's sum is only a rough guide to
    ``f_c(x) - f_c(0)``. The scorecard measures that gap on the images explained (its
    ``completeness_gap``, from :meth:`baselines`), so the report shows it per model.

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**, logit units.
    """

    name = "deeplift"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = (
        "signed, logit units; each map sums to f_c(x) - f_c(0) on ReLU/avg-pool models "
        "(13-17% off on max-pool or attention heads)"
    )

    def baselines(self, x: Tensor) -> Tensor:
        """The reference images ``[B, C, H, W]``: zeros, the mean image in normalised space."""
        return torch.zeros_like(x)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        reused = reused_nonlinearities(self.model, x[:1])
        if reused:
            raise XaikitError(
                f"deeplift needs each nonlinearity module used once per forward pass; "
                f"{', '.join(reused)} is called more than once (give each use its own module)"
            )
        explainer = _CaptumDeepLift(self.model, multiply_by_inputs=True)
        with captum_call(self.model), relus_not_inplace(self.model):
            return explainer.attribute(x, baselines=self.baselines(x), target=target)


def reused_nonlinearities(model: nn.Module, x: Tensor) -> list[str]:
    """Names of DeepLift-handled nonlinearity modules called more than once in ``model(x)``."""
    calls: Counter[str] = Counter()
    with contextlib.ExitStack() as stack:
        for name, module in model.named_modules():
            if type(module) in SUPPORTED_NON_LINEAR:
                handle = module.register_forward_pre_hook(
                    lambda _m, _i, _name=name: calls.update([_name])
                )
                stack.callback(handle.remove)
        with torch.no_grad():
            model(x)
    return [name for name, count in calls.items() if count > 1]
