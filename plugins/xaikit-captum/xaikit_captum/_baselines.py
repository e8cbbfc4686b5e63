"""The reference images of the SHAP methods (GradientSHAP, DeepLIFT-SHAP).

SHAP explains ``f(x)`` against the expectation of ``f`` over a reference distribution, so the
choice of references shapes the map (Sturmfels, Lundberg and Lee, "Visualizing the Impact of
Feature Attribution Baselines", Distill 2020). Each image ``x`` gets ``K = 1 + len(blur_sigmas)
+ n_noise`` references, in this order:

1. the mean colour: the all-zero image in the model's normalised input space;
2. ``x`` blurred by a Gaussian of each standard deviation in ``blur_sigmas`` (pixels; the
   border repeats the edge pixel): removes the fine detail and keeps the layout and colours;
3. ``n_noise`` images of i.i.d. ``N(0, noise_std^2)`` noise in normalised units (about the
   data set's own spread per channel for ``noise_std=1``), drawn once per call from a
   ``torch.Generator`` seeded with ``seed`` and shared by every image (the global RNG is
   untouched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xaikit import XaikitError


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """``x`` ``[B, C, H, W]`` convolved per channel with a separable Gaussian of ``sigma``
    pixels (kernel radius ``ceil(3 sigma)``, edge pixels repeated at the border)."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    rows = kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


def check_baseline_options(blur_sigmas: Sequence[float], n_noise: int, noise_std: float) -> None:
    """Raise :class:`XaikitError` for options that give fewer than two references."""
    if any(s < 0 for s in blur_sigmas) or n_noise < 0 or noise_std < 0:
        raise XaikitError("blur_sigmas, n_noise and noise_std must be >= 0")
    if 1 + len(blur_sigmas) + n_noise < 2:
        raise XaikitError("SHAP needs at least two references: give blur_sigmas or n_noise > 0")


def shap_baselines(
    x: Tensor, blur_sigmas: Sequence[float], n_noise: int, noise_std: float, seed: int
) -> Tensor:
    """The references ``[B, K, C, H, W]`` of every image of ``x`` (see the module docstring)."""
    batch = x.shape[0]
    parts = [torch.zeros_like(x)[:, None]]
    parts += [gaussian_blur(x, float(s))[:, None] for s in blur_sigmas]
    if n_noise:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((n_noise, *x.shape[1:]), generator=generator) * noise_std
        parts.append(noise.to(x)[None].expand(batch, -1, -1, -1, -1))
    return torch.cat(parts, dim=1)
