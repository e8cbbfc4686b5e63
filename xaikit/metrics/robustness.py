"""Robustness of a method's maps to small input noise: max-sensitivity (Captum).

Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
Explanations", NeurIPS 2019, computed by ``captum.metrics.sensitivity_max``::

    SENS_max = max_{||d||_inf <= r} ||Phi(x + d) - Phi(x)||_F / ||Phi(x)||_F

estimated by Monte Carlo over ``n_perturb_samples`` draws of ``d``, uniform in the
L-infinity ball of radius ``r`` (Captum's ``default_perturb_func``), per image. The radius is
in the units of the normalised input (default ``r = 0.02``, Captum's default: about 1.3/255 on
the 0..1 scale for CIFAR-10's stds of about 0.25, an invisible change). Lower is better; a map
that changes by more than itself under invisible noise explains the noise. The map of the
unperturbed image is recomputed by Captum, so methods with their own randomness (SmoothGrad)
are scored with it. Captum draws the noise from torch's global generator; it is seeded with
``seed`` in a forked RNG state, so every method sees the same perturbations and the caller's
RNG is untouched.
"""

from __future__ import annotations

from typing import Any, Callable

import captum.metrics
import torch
from torch import Tensor, nn

from xaikit.attribution.base import TargetLike
from xaikit.metrics._common import prepare
from xaikit.modules import model_device

ExplainFn = Callable[[Tensor, Tensor], Tensor]


def as_explanation_func(method: ExplainFn) -> Callable[..., Tensor]:
    """Captum's ``explanation_func(inputs, target=...)`` for ``method(x, target) -> [B, H, W]``.

    Captum passes the inputs as a one-tensor tuple (and expects a tuple back, as its own
    ``attribute`` methods give) and calls under ``no_grad``; gradients are re-enabled for the
    method.
    """

    def explain(inputs: Tensor | tuple[Tensor, ...], target: Tensor | None = None,
                **_: Any) -> Tensor | tuple[Tensor, ...]:
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        with torch.enable_grad():
            maps = method(x, target).detach()
        return (maps,) if isinstance(inputs, tuple) else maps

    return explain


def sensitivity_max(
    method: ExplainFn,
    x: Tensor,
    target: TargetLike = None,
    *,
    model: nn.Module | None = None,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 8,
    seed: int = 0,
    max_examples_per_batch: int | None = None,
) -> Tensor:
    """Max-sensitivity of ``method``'s maps per image via ``captum.metrics.sensitivity_max``: ``[B]``.

    Args:
        method: ``method(x, target) -> [B, H, W]`` maps (an ``Attribution`` instance or any
            callable); the targets stay fixed under the perturbation.
        x: Images ``[B, C, H, W]``.
        target: Classes (``None``: the prediction of ``model``, or of ``method.model``).
        model: The classifier, for the device and ``None`` targets (default ``method.model``).
        perturb_radius: L-infinity radius of the uniform input noise, in ``x``'s units.
        n_perturb_samples: Noise draws per image (the max is over them).
        seed: Seed of the noise.
        max_examples_per_batch: Captum's batching of the ``B * n_perturb_samples`` inputs.

    Returns:
        CPU float tensor ``[B]``, lower is better.
    """
    model = model if model is not None else getattr(method, "model", None)
    if model is not None:
        x, targets = prepare(model, x, target)
    else:
        targets = torch.as_tensor(target, device=x.device) if target is not None else None
    device = model_device(model) if model is not None else x.device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        values = captum.metrics.sensitivity_max(
            as_explanation_func(method), x, perturb_radius=perturb_radius,
            n_perturb_samples=n_perturb_samples, max_examples_per_batch=max_examples_per_batch,
            target=targets,
        )
    return values.detach().float().cpu()
