"""Integrated gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017), through Captum's ``IntegratedGradients``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from captum.attr import IntegratedGradients as _CaptumIG
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call


class IntegratedGradients(Attribution):
    """Integrated gradients along the straight line from a baseline x' to the input x.

    For pixel i and channel k, with f_c the target logit::

        IG_ik(x) = (x_ik - x'_ik) * integral_0^1 df_c(x' + a (x - x')) / dx_ik da

    approximated by Captum with ``n_steps`` Gauss-Legendre points. Completeness: the
    attributions of all pixels and channels sum to ``f_c(x) - f_c(x')``; Captum's convergence
    delta, ``sum(IG) - (f_c(x) - f_c(x'))``, is kept per image in :attr:`last_delta` after
    each call (more steps make it smaller).

    Baseline: ``baseline=0.0`` is the all-zero image *in the model's normalised input space*,
    i.e. the data set's mean colour, not black. For a black image pass the per-channel
    ``baseline=[-m / s for m, s in zip(mean, std)]``.

    Output: ``[B, H, W]``, the channel sum of IG (the base class sums ``[B, C, H, W]``);
    **signed** (positive = raises the target logit), in logit units, so a map sums to
    ``f_c(x) - f_c(x')`` up to :attr:`last_delta`.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None`` (IG explains the input).
        n_steps: Integration points per image.
        internal_batch_size: Path points per forward pass inside Captum (default 512, so
            memory stays bounded for any batch; ``None``: all ``B * n_steps`` at once).
        baseline: A scalar, a per-channel sequence, or a ``[C, H, W]`` tensor, in normalised
            input space.
    """

    name = "integrated-gradients"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, logit units; each map sums to f_c(x) - f_c(baseline) (+ last_delta)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        n_steps: int = 32,
        internal_batch_size: int | None = 512,
        baseline: float | Sequence[float] | Tensor = 0.0,
    ) -> None:
        super().__init__(model, layer)
        if n_steps < 1:
            raise XaikitError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size
        self.baseline = baseline
        self.last_delta: Tensor | None = None

    def baselines(self, x: Tensor) -> Tensor:
        """The baseline images ``[B, C, H, W]`` for inputs ``x`` (same device and dtype)."""
        b = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device)
        if b.ndim == 1:  # per channel
            if b.numel() not in (1, x.shape[1]):
                raise XaikitError(f"baseline has {b.numel()} channels, images have {x.shape[1]}")
            b = b.reshape(1, -1, 1, 1)
        return b.expand_as(x).contiguous()

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        ig = _CaptumIG(self.model, multiply_by_inputs=True)
        with captum_call(self.model):
            attributions, delta = ig.attribute(
                x,
                baselines=self.baselines(x),
                target=target,
                n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size,
                return_convergence_delta=True,
            )
        self.last_delta = delta.detach().reshape(-1)
        return attributions
