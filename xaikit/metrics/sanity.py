"""Sanity checks: does the map depend on the model's weights and on the class it explains?

* :func:`randomization` -- cascading model-parameter randomisation (Adebayo, Gilmer, Muelly,
  Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018). The modules
  that own parameters are re-initialised one at a time from the logits back to the input; after
  each step every image's map is compared with its original map by Spearman's rank correlation,
  once on the raw maps and once on the absolute-valued maps (the paper reports both), and the
  per-image values are averaged over images. A method that explains the model must change:
  a high rho at full randomisation fails.
* :func:`random_logit` -- Sixt, Granz and Landgraf, "When Explanations Lie: Why Many Modified BP
  Attributions Fail", ICML 2020 (Quantus's ``RandomLogit``): the map for a random *other*
  class (seeded) should differ from the map for the target class; Spearman rho per image,
  lower is better.
* :func:`emprt` -- efficient MPRT (Hedström, Weber, Lapuschkin and Höhne, "Sanity Checks
  Revisited: An Exploration to Repair the Model Parameter Randomisation Test", XAI in Action
  workshop, NeurIPS 2023; Quantus's ``EfficientMPRT``): the relative rise in explanation
  complexity from the original to the fully randomised model,
  ``(H(e_rand) - H(e_orig)) / H(e_orig)``, with ``H`` the entropy of the map's 100-bin value
  histogram. A map of a random network should look like noise, so a faithful method's
  complexity rises: higher is better, > 0 passes. Chosen over smooth MPRT because it is less
  noisy *and* cheap: it compares two model states instead of a layer-by-layer cascade whose
  order and pixel-rank similarity dominate the score (rho of two noisy gradient maps is mostly
  the noise), and it costs one extra map per image, where sMPRT averages each map over N noisy
  copies of the input (N = 50 in the paper) at every layer.

Re-initialisation is ``reset_parameters()`` where a module has it, else ``N(0, std of the old
values)``, seeded per layer (``seed``, layer index) inside a forked RNG state, so the random
models are the same whatever the method draws from the RNG in between (SmoothGrad does), and
the caller's RNG is untouched. The model itself is never modified (a deep copy is).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from xaikit.attribution.base import Attribution, TargetLike, resolve_layer
from xaikit.errors import XaikitError
from xaikit.metrics._common import prepare
from xaikit.metrics.complexity import histogram_entropy
from xaikit.modules import model_device, module_mode

MethodLike = type[Attribution] | Attribution


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each row pair of ``a`` and ``b`` ``[B, ...]`` -> ``[B]``.

    ``rho = pearson(rank(a), rank(b))`` with tied values given their average rank. A constant
    map has no ranking to share: its rho is defined as 0.
    """
    def avg_ranks(v: Tensor) -> Tensor:
        v = v.flatten(1).double()
        s = v.sort(dim=1).values
        lo = torch.searchsorted(s, v, right=False)
        hi = torch.searchsorted(s, v, right=True)
        return (lo + hi - 1).double() / 2

    ra, rb = avg_ranks(a), avg_ranks(b.to(a.device))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denom = ra.norm(dim=1) * rb.norm(dim=1)
    rho = (ra * rb).sum(dim=1) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, rho, torch.zeros_like(rho)).float()


def parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, from the logits back to the input (reverse definition order)."""
    layers = [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(False))]
    return layers[::-1]


def reinitialise(module: nn.Module) -> None:
    """``reset_parameters()`` where the module has it, else ``N(0, std of the old values)``."""
    if callable(getattr(module, "reset_parameters", None)):
        module.reset_parameters()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.float().std()) if p.numel() > 1 else 0.0
            p.normal_(0.0, std if math.isfinite(std) and std > 0 else 0.02)


def bind(method: MethodLike, model: nn.Module, layer: str | None = None,
         method_kwargs: dict[str, Any] | None = None) -> Attribution:
    """``method`` bound to ``model``: a class is built, an instance is shallow-copied with its
    ``model`` and ``layer`` replaced (its options are kept)."""
    if isinstance(method, Attribution):
        bound = copy.copy(method)
        bound.model = model
        if method.layer_name is not None:
            bound.layer = resolve_layer(model, method.layer_name)
        return bound
    return method(model, layer=layer, **dict(method_kwargs or {}))


def _devices(model: nn.Module) -> list[torch.device]:
    device = model_device(model)
    return [device] if device.type == "cuda" else []


def _cascade(model: nn.Module, seed: int) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer name, copy)`` after re-initialising each layer in turn, top-down, cumulatively."""
    randomised = copy.deepcopy(model)
    layers = parameterised_layers(randomised)
    if not layers:
        raise XaikitError(f"{type(model).__name__} has no parameters to randomise")
    for i, (name, module) in enumerate(layers):
        torch.manual_seed(seed * 100_003 + i)
        reinitialise(module)
        yield name, randomised


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every parameterised layer re-initialised: the end state of
    :func:`randomization`'s cascade for the same seed. ``model`` and the RNG are untouched."""
    with torch.random.fork_rng(devices=_devices(model)):
        randomised = model
        for _name, randomised in _cascade(model, seed):
            pass
    return randomised


def randomization(
    model: nn.Module,
    method: MethodLike,
    x: Tensor,
    target: TargetLike = None,
    *,
    layer: str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    maps: Tensor | None = None,
    seed: int = 0,
    steps: int | None = None,
) -> dict[str, Any]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018), Spearman per image.

    Args:
        model: The classifier; not modified.
        method: An ``Attribution`` class (built with ``layer`` and ``method_kwargs``) or
            instance (re-bound to each randomised copy).
        x: Images ``[B, C, H, W]``.
        target: Classes (``None``: the original model's predictions), fixed throughout.
        maps: The original model's maps of ``x`` (computed if ``None``).
        seed: Seed of the re-initialisation.
        steps: Compare the maps after this many cascade steps only (``None``: after every
            step): evenly spaced, always including the fully random model
            (:func:`cascade_steps`). The layers are re-initialised in the same order either way,
            so a step's rho is the same as in the full cascade; only the maps in between are
            skipped, for a method whose maps are too expensive to recompute at every layer.

    Returns:
        ``"layers"`` (names of the compared steps, cascade order), ``"steps"`` (their 1-based
        positions in the cascade), ``"cascade"`` (every layer's name), ``"rho"`` and
        ``"rho_abs"`` ``[S, B]`` (raw and absolute-valued maps), ``"rho_final"`` and
        ``"rho_abs_final"`` ``[B]`` (fully random model); CPU tensors.
    """
    x, targets = prepare(model, x, target)
    with torch.random.fork_rng(devices=_devices(model)):
        torch.manual_seed(seed)
        original = bind(method, model, layer, method_kwargs)(x, targets) if maps is None else maps
        original = original.to(x.device)
        cascade = [name for name, _module in parameterised_layers(model)]
        compared = set(cascade_steps(len(cascade), steps))
        names, positions, rho, rho_abs = [], [], [], []
        for i, (name, randomised) in enumerate(_cascade(model, seed), start=1):
            if i not in compared:
                continue
            torch.manual_seed(seed)  # the method's own randomness, the same at every layer
            new = bind(method, randomised, layer, method_kwargs)(x, targets)
            names.append(name)
            positions.append(i)
            rho.append(spearman(original, new).cpu())
            rho_abs.append(spearman(original.abs(), new.abs()).cpu())
    rho_t, rho_abs_t = torch.stack(rho), torch.stack(rho_abs)
    return {"layers": names, "steps": positions, "cascade": cascade, "rho": rho_t,
            "rho_abs": rho_abs_t, "rho_final": rho_t[-1], "rho_abs_final": rho_abs_t[-1]}


def cascade_steps(length: int, steps: int | None) -> list[int]:
    """The 1-based cascade positions :func:`randomization` compares for ``steps`` of ``length``:
    all when ``steps`` is ``None`` or at least ``length``, else ``steps`` (at least 1) evenly
    spaced positions ending at ``length``, the fully random model."""
    if steps is None or steps >= length:
        return list(range(1, length + 1))
    k = max(1, int(steps))
    return sorted({length - (j * length) // k for j in range(k)})


def random_logit(
    model: nn.Module,
    method: MethodLike,
    x: Tensor,
    target: TargetLike = None,
    *,
    layer: str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    maps: Tensor | None = None,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Spearman rho between the map for the target class and for a random other class (Sixt et al. 2020).

    The other class of each image is uniform over the classes other than its target, from a
    CPU generator seeded by ``seed``. Lower is better (the map depends on the class).

    Returns:
        ``"rho"`` ``[B]`` and ``"other_class"`` ``[B]`` (CPU).
    """
    x, targets = prepare(model, x, target)
    with module_mode(model, training=False), torch.no_grad():
        num_classes = int(model(x[:1]).shape[1])
    if num_classes < 2:
        raise XaikitError("the random-logit check needs a model with at least 2 classes")
    generator = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, (x.shape[0],), generator=generator).to(targets.device)
    other = (targets + shift) % num_classes
    explainer = bind(method, model, layer, method_kwargs)
    with torch.random.fork_rng(devices=_devices(model)):
        torch.manual_seed(seed)
        original = explainer(x, targets) if maps is None else maps.to(x.device)
        torch.manual_seed(seed)
        for_other = explainer(x, other)
    return {"rho": spearman(original, for_other).cpu(), "other_class": other.cpu()}


def emprt(
    model: nn.Module,
    method: MethodLike,
    x: Tensor,
    target: TargetLike = None,
    *,
    layer: str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    maps: Tensor | None = None,
    randomized_model: nn.Module | None = None,
    n_bins: int = 100,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Efficient MPRT (Hedström et al. 2023): relative rise of histogram entropy under full randomisation.

    ``score = (H(e_rand) - H(e_orig)) / H(e_orig)`` per image, ``H`` =
    :func:`~xaikit.metrics.complexity.histogram_entropy` with ``n_bins`` bins (NaN where the
    original map is constant). Higher is better, > 0 passes.

    Args:
        randomized_model: The fully randomised model (default :func:`randomized_copy` with
            ``seed``, the end state of :func:`randomization`'s cascade).
        maps: The original model's maps of ``x`` (computed if ``None``).

    Returns:
        ``"score"``, ``"entropy_original"``, ``"entropy_randomized"`` ``[B]`` (CPU).
    """
    x, targets = prepare(model, x, target)
    randomized = randomized_model if randomized_model is not None else randomized_copy(model, seed)
    with torch.random.fork_rng(devices=_devices(model)):
        torch.manual_seed(seed)
        original = bind(method, model, layer, method_kwargs)(x, targets) if maps is None else maps
        torch.manual_seed(seed)
        random_maps = bind(method, randomized, layer, method_kwargs)(x, targets)
    h0 = histogram_entropy(original, n_bins)
    h1 = histogram_entropy(random_maps, n_bins)
    score = torch.where(h0 > 0, (h1 - h0) / h0.clamp_min(1e-12), torch.full_like(h0, float("nan")))
    return {"score": score, "entropy_original": h0, "entropy_randomized": h1}
