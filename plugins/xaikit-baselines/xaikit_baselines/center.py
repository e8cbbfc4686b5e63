"""The ``center`` control: a centred isotropic Gaussian, the same for every image."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from xaikit import Attribution


def center_gaussian(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """``exp(-((i - ci)^2 + (j - cj)^2) / (2 sigma^2))`` ``[H, W]``, sigma = min(H, W) / 4.

    ``(ci, cj) = ((H - 1) / 2, (W - 1) / 2)`` is the image centre in pixel-centre coordinates,
    so the map is symmetric under both flips; its maximum is 1 (at the centre pixel, or shared
    by the central 2 or 4 pixels when a side is even).
    """
    sigma = min(height, width) / 4.0
    i = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2.0
    j = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2.0
    squared = i[:, None] ** 2 + j[None, :] ** 2
    return torch.exp(-squared / (2.0 * sigma**2))


class CenterGaussian(Attribution):
    """Centre-bias control: a centred isotropic Gaussian, the same map for every image.

    The centre-bias baseline of saliency prediction (Judd, Ehinger, Durand, Torralba, "Learning
    to predict where humans look", ICCV 2009): photographed objects tend to sit in the middle,
    so "the centre matters" already scores well on data sets such as CIFAR-10. With ``H x W``
    the input size::

        sigma = min(H, W) / 4          (a quarter of the image side: 8 px on 32 x 32)
        map[i, j] = exp(-((i - (H-1)/2)^2 + (j - (W-1)/2)^2) / (2 sigma^2))

    Neither the image, the model nor the target is used (the base class calls the model only
    to resolve the targets). ``image_independent = True`` says so: the contract's check that a
    map changes with its image cannot hold for this control by design.

    Sign and scale: positive, in ``(0, 1]``, 1 at the centre.
    """

    name = "center"
    signed = False
    scale = (
        "centred Gaussian, sigma = min(H, W)/4, in (0, 1], 1 at the centre; same for every image"
    )
    image_independent: ClassVar[bool] = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        gaussian = center_gaussian(x.shape[2], x.shape[3], x.device)
        return gaussian.expand(x.shape[0], -1, -1).clone()
