"""Normalisation and whole-batch augmentation on the batch's own device.

Augmentations, each drawn independently per image with one generator:

* random crop with reflect padding: pad by ``p`` on every side, then take the 32x32 window
  at offset ``(oy, ox)``, ``oy, ox ~ U{0..2p}``;
* horizontal flip with probability 1/2 (folded into the crop's column index, so the crop and
  the flip cost one gather), or the alternating flip (:class:`AlternatingFlip`);
* cutout (DeVries & Taylor, 2017, "Improved Regularization of Convolutional Neural Networks
  with Cutout"): a ``s x s`` square centred at ``(cy, cx) ~ U{0..H-1} x U{0..W-1}`` is set to
  zero (the data set mean, as images are normalised); near the border it is clipped.

Everything is a handful of tensor ops over the whole batch: no per-image Python loop.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xaikit.specs import Recipe

KNOWN_AUGMENTATIONS = ("crop", "flip", "altflip", "cutout")


def normalize(
    images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor
) -> Tensor:
    """``(images / 255 - mean) / std`` per channel, as float32 on the images' device.

    A channel whose ``std`` is 0 (the same value in every pixel of every image, e.g. an unused
    colour channel) is treated as ``std = 1``, so that channel maps to 0 rather than to NaN.

    Args:
        images: ``uint8 [B, C, H, W]``.
        mean: Per-channel means on the 0..1 scale (e.g. ``DataBundle.mean``).
        std: Per-channel standard deviations on the 0..1 scale; 0 behaves as 1.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"normalize expects uint8 images, got {images.dtype}")
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        mean_255, std_255 = _scaled_constants(mean, std, images.device)
    else:  # cached: no host-to-device copy (and stream sync) per batch
        mean_255, std_255 = _cached_constants(tuple(mean), tuple(std), images.device)
    return (images.to(torch.float32) - mean_255) / std_255


def _scaled_constants(
    mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, device: torch.device
) -> tuple[Tensor, Tensor]:
    shape = (1, -1, 1, 1)
    mean_255 = torch.as_tensor(mean, dtype=torch.float32, device=device).view(shape) * 255
    std_255 = torch.as_tensor(std, dtype=torch.float32, device=device).view(shape) * 255
    std_255 = torch.where(std_255 == 0, torch.full_like(std_255, 255.0), std_255)  # std 0 -> 1
    return mean_255, std_255


_cached_constants = functools.lru_cache(maxsize=32)(_scaled_constants)


class BatchAugment:
    """Random crop (reflect padding), horizontal flip and cutout of a whole batch at once.

    Args:
        crop_padding: Padding in pixels of the random crop; 0 disables the crop.
        flip: Whether to flip each image horizontally with probability 1/2.
        cutout: Side in pixels of the zeroed square; 0 disables cutout.
    """

    def __init__(self, crop_padding: int = 4, flip: bool = True, cutout: int = 8) -> None:
        if crop_padding < 0 or cutout < 0:
            raise ValueError("crop_padding and cutout must be >= 0")
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.cutout = int(cutout)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> "BatchAugment":
        """The augmentation of a recipe (its ``augment``, ``crop_padding`` and ``cutout``)."""
        unknown = sorted(set(recipe.augment) - set(KNOWN_AUGMENTATIONS))
        if unknown:
            known = ", ".join(KNOWN_AUGMENTATIONS)
            raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}; known: {known}")
        return cls(
            crop_padding=recipe.crop_padding if "crop" in recipe.augment else 0,
            flip="flip" in recipe.augment,
            cutout=recipe.cutout if "cutout" in recipe.augment else 0,
        )

    def __repr__(self) -> str:
        return (
            f"BatchAugment(crop_padding={self.crop_padding}, flip={self.flip}, "
            f"cutout={self.cutout})"
        )

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch; every image gets its own random draw.

        Args:
            x: Normalised float images ``[B, C, H, W]`` on any device; not modified.
            generator: Source of randomness for reproducible runs. It must live on the same
                device as ``x`` (``torch.Generator(device=x.device)``); ``None`` uses the
                global generator of that device.

        Returns:
            A new tensor of the same shape, dtype and device (``x`` itself if nothing is on).
        """
        if x.ndim != 4:
            raise ValueError(f"BatchAugment expects [B, C, H, W], got shape {tuple(x.shape)}")
        if generator is not None and generator.device.type != x.device.type:
            raise ValueError(
                f"the generator is on {generator.device} but the batch is on {x.device}; "
                "create it with torch.Generator(device=x.device)"
            )
        if self.crop_padding or self.flip:
            x = self._crop_and_flip(x, generator)
        if self.cutout:
            x = self._cutout(x, generator)
        return x

    def _crop_and_flip(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, height, width = x.shape
        pad = self.crop_padding
        if pad >= height or pad >= width:
            raise ValueError(
                f"crop_padding {pad} must be smaller than the image ({height}x{width})"
            )
        device = x.device
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
            offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
        else:
            offsets = torch.zeros(2, batch, dtype=torch.long, device=device)
        rows = offsets[0, :, None] + torch.arange(height, device=device)  # [B, H]
        cols = torch.arange(width, device=device).expand(batch, width)  # [B, W]
        if self.flip:
            flipped = torch.rand(batch, generator=generator, device=device) < 0.5
            cols = torch.where(flipped[:, None], cols.flip(1), cols)
        cols = offsets[1, :, None] + cols
        padded_width = x.shape[3]
        x = x.gather(2, rows[:, None, :, None].expand(batch, channels, height, padded_width))
        return x.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))

    def _cutout(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, _, height, width = x.shape
        device = x.device
        centres = torch.rand(2, batch, generator=generator, device=device)
        top = (centres[0] * height).long() - self.cutout // 2  # may be negative: clipped square
        left = (centres[1] * width).long() - self.cutout // 2
        ys = torch.arange(height, device=device)
        xs = torch.arange(width, device=device)
        in_rows = (ys >= top[:, None]) & (ys < top[:, None] + self.cutout)  # [B, H]
        in_cols = (xs >= left[:, None]) & (xs < left[:, None] + self.cutout)  # [B, W]
        square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # [B, 1, H, W]
        return x.masked_fill(square, 0.0)


class AlternatingFlip:
    """Alternating flip (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds", section 3.6).

    Image ``i`` is mirrored in epoch ``e`` (1-based) exactly when ``start[i] != (e is even)``,
    where ``start`` is one fair coin per image, drawn once from ``seed``: every image is seen
    mirrored and unmirrored in every two consecutive epochs, where a coin per epoch repeats a
    view half the time. Nothing is drawn per epoch, so a resumed run flips as an uninterrupted
    one does.
    """

    def __init__(self, num_images: int, seed: int, device: torch.device | str = "cpu") -> None:
        generator = torch.Generator().manual_seed(int(seed) + 0x5EED)
        self.start = (torch.rand(num_images, generator=generator) < 0.5).to(device)

    def __call__(self, x: Tensor, index: Tensor, epoch: int) -> Tensor:
        """Mirror the images of ``x [B, C, H, W]`` (images ``index`` of the data set) due in ``epoch``."""
        flipped = self.start[index.to(self.start.device)].to(x.device) ^ (epoch % 2 == 0)
        return torch.where(flipped[:, None, None, None], x.flip(-1), x)
