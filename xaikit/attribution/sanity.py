"""Model-parameter randomisation sanity check of attribution maps.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018 (arXiv:1810.03292): an explanation that does not change when the model's weights
are re-initialised cannot be explaining what the model learned. Cascading randomisation
re-initialises the parameterised layers one by one from the logits back to the input and
compares each image's map with its original map by Spearman rank correlation.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from xaikit.attribution.base import (
    Attribution,
    TargetLike,
    resolve_layer,
    resolve_targets,
)
from xaikit.errors import XaikitError
from xaikit.modules import model_device, module_mode

RANDOMIZATION_THRESHOLD = 0.5  # mean |rho| at full randomisation at or above this fails


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each row pair of ``a`` and ``b`` ``[B, ...]`` -> ``[B]``.

    ``rho = pearson(rank(a), rank(b))`` with tied values given their average rank. A
    constant map has no ranking to share: its rho is defined as 0.
    """
    def avg_ranks(v: Tensor) -> Tensor:
        v = v.flatten(1).double()
        s = v.sort(dim=1).values
        lo = torch.searchsorted(s, v, right=False)
        hi = torch.searchsorted(s, v, right=True)
        return (lo + hi - 1).double() / 2

    ra, rb = avg_ranks(a), avg_ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denom = ra.norm(dim=1) * rb.norm(dim=1)
    rho = (ra * rb).sum(dim=1) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, rho, torch.zeros_like(rho)).float()


def _parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, from the logits back to the input (reverse definition order)."""
    layers = [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(False))]
    return layers[::-1]


def _reinitialise(module: nn.Module) -> None:
    """``reset_parameters()`` where the module has it, else N(0, std of the old values)."""
    if callable(getattr(module, "reset_parameters", None)):
        module.reset_parameters()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.float().std()) if p.numel() > 1 else 0.0
            p.normal_(0.0, std if math.isfinite(std) and std > 0 else 0.02)


def _bind(method: type[Attribution] | Attribution, model: nn.Module, layer: str | None,
          method_kwargs: dict[str, Any]) -> Attribution:
    if isinstance(method, Attribution):  # same options, other model
        bound = copy.copy(method)
        bound.model = model
        if method.layer_name is not None:
            bound.layer = resolve_layer(model, method.layer_name)
        return bound
    return method(model, layer=layer, **method_kwargs)


def randomization_sanity(
    model: nn.Module,
    method_cls: type[Attribution] | Attribution,
    x: Tensor,
    target: TargetLike,
    layer: str | None = None,
    seed: int = 0,
    *,
    threshold: float = RANDOMIZATION_THRESHOLD,
    method_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cascading model-parameter randomisation test (Adebayo et al., NeurIPS 2018).

    On a deep copy of ``model`` the modules that own parameters are re-initialised one at a
    time from the logits back to the input (``reset_parameters()`` where a module has it,
    else ``N(0, std of the old values)``; seeded by ``seed``); after each step the maps are
    recomputed for the *original* model's targets and compared with the original maps by
    Spearman's rank correlation ``rho`` per image (:func:`spearman`). A method whose maps
    explain the model must change: it **fails** when ``mean_i |rho_i|`` at full
    randomisation is ``>= threshold`` (default 0.5). ``|rho|`` is used so that a map whose
    sign flips but whose ranking survives still counts as unchanged.

    Args:
        model: The classifier; it is not modified.
        method_cls: An ``Attribution`` subclass (built as ``method_cls(model, layer=layer,
            **method_kwargs)``), or an instance, which is shallow-copied with its ``model``
            and ``layer`` replaced (its options are kept).
        x: Images ``[B, C, H, W]``.
        target: Classes (``None``: the original model's predictions).
        layer: Layer for CAM methods (``None``: the model's default).
        seed: Seed of the re-initialisation.
        threshold: Fail threshold on the final mean ``|rho|``.
        method_kwargs: Constructor options when ``method_cls`` is a class.

    Returns:
        ``"layers"`` (names, cascade order), ``"rho_by_layer"`` ``[L, B]``, ``"rho_final"``
        ``[B]``, ``"mean_abs_rho_final"``, ``"threshold"`` and ``"passes"``.
    """
    kwargs = dict(method_kwargs or {})
    device = model_device(model)
    x = x.to(device, torch.float32)
    with module_mode(model, training=False):
        targets = resolve_targets(target, model, x)
    original = _bind(method_cls, model, layer, kwargs)(x, targets)
    randomised = copy.deepcopy(model)
    layers = _parameterised_layers(randomised)
    if not layers:
        raise XaikitError(f"{type(model).__name__} has no parameters to randomise")
    method = _bind(method_cls, randomised, layer, kwargs)
    rhos = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for _name, module in layers:
            _reinitialise(module)
            rhos.append(spearman(original, method(x, targets)).cpu())
    rho_by_layer = torch.stack(rhos)
    mean_abs = float(rho_by_layer[-1].abs().mean())
    return {
        "layers": [name for name, _ in layers],
        "rho_by_layer": rho_by_layer,
        "rho_final": rho_by_layer[-1],
        "mean_abs_rho_final": mean_abs,
        "threshold": threshold,
        "passes": mean_abs < threshold,
    }
