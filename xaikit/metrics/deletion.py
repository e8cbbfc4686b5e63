"""Deletion and insertion curves (RISE, Petsiuk, Das and Saenko, BMVC 2018), made fair.

Pixels (all channels) are ranked by the map, most important first (ties broken by a seeded
permutation, :func:`~xaikit.metrics.ordering.pixel_ranks`), and changed in ``steps`` equal
chunks; after chunk ``k = 0..steps`` the target probability ``p_c = softmax(f(x_k))_c`` is
recorded, and ``AUC = trapezoid of p_c over the fraction k / steps in [0, 1]``.

* **Deletion** starts from ``x`` and sets the first ``k`` chunks to the data set's mean colour
  (0 for normalised inputs; ``mean`` otherwise). Lower is better.
* **Insertion** starts from a **blurred** copy of ``x`` (Gaussian, ``blur_sigma`` pixels) and
  copies the first ``k`` chunks from ``x``, as RISE does. Higher is better.

Why two canvases: if insertion started from the same canvas that deletion ends on, the
insertion image after ``k`` chunks (``x`` on the top pixels, canvas elsewhere) would be the
deletion image of the *bottom* pixels, so insertion would be exactly the least-relevant-first
deletion of the same map and add nothing (0.2781 vs 0.2781 on ULTIMUS before this change).
On a blurred canvas, insertion asks another question: do the top pixels alone bring back the
class on an image that keeps the coarse colours but has lost its detail?

Reference: each map is compared with a seeded random map drawn at ``reference_resolution``
and upsampled bilinearly (:func:`~xaikit.metrics.references.random_reference`), so a smooth
CAM is compared with an equally smooth random map rather than with i.i.d. pixel noise (which
is easier to delete around and penalises smooth maps). The scorecard passes the method's own
resolution (:func:`~xaikit.metrics.references.map_resolution`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from xaikit.attribution.base import TargetLike
from xaikit.errors import XaikitError
from xaikit.metrics._common import check_maps, prepare, target_probability
from xaikit.metrics.ordering import pixel_ranks
from xaikit.metrics.references import gaussian_blur, random_reference
from xaikit.modules import module_mode

CURVES = ("deletion", "insertion", "deletion_random", "insertion_random")


def auc_trapezoid(curve: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Area under ``curve`` ``[..., K]`` over ``fractions`` (default: K equal steps of 0..1).

    Trapezoid rule ``AUC = sum_k (t_{k+1} - t_k) (y_k + y_{k+1}) / 2``; a constant curve ``y``
    on 0..1 has AUC ``y``.
    """
    if fractions is None:
        fractions = torch.linspace(0.0, 1.0, curve.shape[-1], device=curve.device)
    return torch.trapezoid(curve, fractions.to(curve), dim=-1)


def _curves(model: nn.Module, x: Tensor, deletion_fill: Tensor, canvas: Tensor, ranks: Tensor,
            insertion: Tensor, image: Tensor, targets: Tensor, steps: int, batch_size: int) -> Tensor:
    """``p_c`` for every (curve, step): ``[N, steps + 1]``.

    Curve ``n`` perturbs image ``image[n]`` in the pixel order ``ranks[n]``: after step ``k``
    its first ``round(k * HW / steps)`` pixels are ``deletion_fill`` (deletion) or the only
    ones taken from ``x`` on ``canvas`` (insertion, ``insertion[n]`` True).
    """
    n = ranks.shape[0]
    _, _, h, w = x.shape
    counts = torch.round(torch.arange(steps + 1, device=x.device) * (h * w) / steps).long()
    total = n * (steps + 1)
    probs = torch.empty(total, device=x.device)
    for start in range(0, total, batch_size):
        flat = torch.arange(start, min(start + batch_size, total), device=x.device)
        curve, step = flat // (steps + 1), flat % (steps + 1)
        img = image[curve]
        first_k = ranks[curve] < counts[step][:, None]
        ins = insertion[curve]
        keep_x = (first_k == ins[:, None]).view(-1, 1, h, w)
        other = torch.where(ins.view(-1, 1, 1, 1), canvas[img], deletion_fill[img])
        probs[flat] = target_probability(model, torch.where(keep_x, x[img], other), targets[img])
    return probs.view(n, steps + 1)


def deletion_insertion(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: TargetLike = None,
    *,
    steps: int = 16,
    reference_maps: Tensor | None = None,
    reference_resolution: Sequence[int] | None = None,
    mean: Sequence[float] | Tensor | None = None,
    blur_sigma: float = 2.0,
    seed: int = 0,
    batch_size: int = 1024,
    with_reference: bool = True,
) -> dict[str, Tensor]:
    """Deletion (to the mean colour) and insertion (onto a blur) curves of ``maps`` and of a reference.

    Args:
        model: The classifier (logits out), evaluated in eval mode (flags restored).
        x: Images ``[B, C, H, W]`` as the model takes them (normalised).
        maps: Attribution maps ``[B, H, W]``, ranked by signed value.
        target: Class of each image (``None``: the model's prediction).
        steps: Number of equal chunks of pixels.
        reference_maps: Reference maps ``[B, H, W]`` (``None``: :func:`random_reference` at
            ``reference_resolution`` seeded by ``seed``).
        reference_resolution: ``(h, w)`` of the random reference (``None``: i.i.d. pixels).
        mean: Per-channel deletion colour in ``x``'s units (``None``: 0, the data set's mean
            colour for normalised inputs).
        blur_sigma: Std in pixels of the Gaussian blur insertion starts from.
        seed: Seed of the random reference and of the tie-breaking permutation.
        batch_size: Perturbed images per forward pass.
        with_reference: Also compute the reference's curves (``False``: half the forward
            passes, for a caller that already has them for these images and resolution).

    Returns:
        CPU tensors: ``"deletion"``, ``"insertion"``, ``"deletion_random"``,
        ``"insertion_random"`` (AUCs ``[B]``), the matching ``"..._curve"`` ``[B, steps + 1]``
        and ``"fractions"`` ``[steps + 1]`` (without the ``"..._random"`` keys when
        ``with_reference`` is ``False``).
    """
    check_maps(x, maps)
    if steps < 1:
        raise XaikitError(f"steps must be >= 1, got {steps}")
    x, targets = prepare(model, x, target)
    device = x.device
    b = x.shape[0]
    curve_names = CURVES if with_reference else CURVES[:2]
    if with_reference and reference_maps is None:
        reference_maps = random_reference(maps.shape, reference_resolution, seed, device)
    if with_reference:
        check_maps(x, reference_maps)
    if mean is None:
        fill = torch.zeros_like(x)
    else:
        fill = torch.as_tensor(mean, dtype=x.dtype, device=device).reshape(1, -1, 1, 1).expand_as(x)
    rankings = [pixel_ranks(maps.to(device), seed)] * 2
    if with_reference:
        rankings += [pixel_ranks(reference_maps.to(device), seed)] * 2
    ranks = torch.cat(rankings)
    n_curves = len(curve_names)
    insertion = torch.tensor([False, True] * (n_curves // 2), device=device).repeat_interleave(b)
    image = torch.arange(b, device=device).repeat(n_curves)
    with module_mode(model, training=False), torch.no_grad():
        canvas = gaussian_blur(x, blur_sigma)
        curves = _curves(model, x, fill, canvas, ranks, insertion, image, targets.to(device),
                         steps, batch_size)
    curves = curves.cpu().view(n_curves, b, steps + 1)
    fractions = torch.linspace(0.0, 1.0, steps + 1)
    result: dict[str, Tensor] = {"fractions": fractions}
    for i, key in enumerate(curve_names):
        result[key] = auc_trapezoid(curves[i], fractions)
        result[f"{key}_curve"] = curves[i]
    return result
