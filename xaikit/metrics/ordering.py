"""The order in which perturbation metrics remove pixels: by map value, ties broken at random.

ROAD, deletion and insertion remove (or insert) pixels most-relevant-first by the map's
*signed* value (most positive evidence first), all channels of a pixel together. Maps often
have ties (a ReLU'd CAM is 0 over large areas, occlusion is constant over patches); the ROAD
reference breaks them by adding ``1e-4`` Gaussian noise to the min-max normalised map. Here a
tie is broken by a seeded random permutation instead, which is exact (it never reorders
distinct values) and gives every method the same permutation for the same seed, so that
paired comparisons between methods on the same images share it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit.errors import XaikitError


def pixel_ranks(maps: Tensor, seed: int = 0) -> Tensor:
    """Rank of each pixel, most important (largest value) first: ``[B, H*W]`` long, 0 = first.

    Args:
        maps: ``[B, H, W]`` attribution maps (NaN counts as least important).
        seed: Seed of the random permutation that breaks ties (drawn on the CPU, so the
            order is the same on every device).
    """
    if maps.ndim != 3:
        raise XaikitError(f"expected maps [B, H, W], got shape {tuple(maps.shape)}")
    flat = torch.nan_to_num(maps.flatten(1).float(), nan=float("-inf"))
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1).to(flat.device)
    in_shuffled = torch.argsort(flat.gather(1, shuffle), dim=1, descending=True, stable=True)
    order = shuffle.gather(1, in_shuffled)  # pixel indices, most important first
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks
