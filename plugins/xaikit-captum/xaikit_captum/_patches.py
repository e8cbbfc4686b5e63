"""The fixed grid of square patches that the perturbation methods (feature ablation, Shapley
value sampling, LIME, KernelSHAP) use as their features."""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit import XaikitError


def patch_mask(shape: torch.Size | tuple[int, ...], patch: int, device: torch.device) -> Tensor:
    """Feature ids ``[1, C, H, W]`` (``long``, contiguous) of a grid of ``patch x patch`` squares.

    Patches are numbered row by row from the top-left; every channel of a pixel belongs to
    the pixel's patch. When ``patch`` does not divide ``H`` or ``W``, the last row or column
    of patches is narrower. 32x32 images with ``patch=4`` give 8 x 8 = 64 features.
    """
    channels, height, width = shape[-3:]
    if patch < 1:
        raise XaikitError(f"patch must be >= 1 pixel, got {patch}")
    columns = -(-width // patch)
    rows = torch.arange(height, device=device) // patch
    cols = torch.arange(width, device=device) // patch
    ids = rows[:, None] * columns + cols[None, :]
    return ids.expand(1, channels, height, width).contiguous()


def n_patches(shape: torch.Size | tuple[int, ...], patch: int) -> int:
    """Number of patches of :func:`patch_mask` for images of ``shape`` (``[..., H, W]``)."""
    return -(-shape[-2] // patch) * -(-shape[-1] // patch)
