"""The ``random`` control: a seeded random map at the CAM layer's resolution."""

from __future__ import annotations

import hashlib
from typing import ClassVar

import torch
from torch import Tensor, nn

from xaikit import Attribution, NotApplicableError


def image_seed(image: Tensor, seed: int, size: tuple[int, int]) -> int:
    """A 63-bit seed from ``seed``, the map size and the bytes of one image ``[C, H, W]``.

    BLAKE2b (8-byte digest) of: ``seed`` and ``size`` as little-endian int64s, the image's shape,
    then its float32 values in C order (``-0.0`` folded into ``0.0``). The same image gives the
    same seed in any batch, at any position, on any device and in any process.
    """
    values = (image.detach().to("cpu", torch.float32) + 0.0).contiguous()
    digest = hashlib.blake2b(digest_size=8)
    for number in (seed, *size, *values.shape):
        digest.update(int(number).to_bytes(8, "little", signed=True))
    digest.update(values.numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def random_low_resolution_maps(x: Tensor, size: tuple[int, int], seed: int = 0) -> Tensor:
    """Per-image uniform ``[0, 1)`` maps ``[B, h, w]`` on ``x``'s device (drawn on the CPU)."""
    maps = []
    for image in x.detach().cpu():
        generator = torch.Generator().manual_seed(image_seed(image, seed, size))
        maps.append(torch.rand(size, generator=generator))
    return torch.stack(maps).to(x.device)


class RandomMap(Attribution):
    """Random control: i.i.d. uniform noise at the CAM layer's resolution, upsampled like a CAM.

    The control of Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, and of
    Quantus's ``Random`` explainer (Hedstroem et al., JMLR 2023), made as smooth as a CAM so
    that smoothness alone cannot beat it (issue 11, item 2). With ``h x w`` the spatial size of
    the target layer's output (the model's default CAM layer, or ``layer=``) on this batch::

        R_i ~ U[0, 1)^{h x w}, drawn from torch.Generator(seed_i)
        seed_i = BLAKE2b-64(seed, h, w, shape and float32 bytes of image i) mod 2^63
        map_i  = bilinear_upsample(R_i, H x W)        (align_corners=False, as every CAM)

    Seeding: per image, from the fixed ``seed`` (default 0) and the image's content, so a map
    depends on its image alone: the same image gets the same map in any batch, at any position,
    on CPU or GPU, in any process; the global RNG is neither used nor advanced. Two different
    images (even differing in one value) get independent maps. The model is run once, on the
    batch's first image, only to learn ``h x w``; the target class is ignored.

    Sign and scale: non-negative, in ``[0, 1)`` (bilinear weights are a convex combination).
    """

    name = "random"
    uses_layer = True
    signed = False
    scale = "uniform [0, 1) at the CAM layer's h x w, seeded per image, upsampled bilinearly"

    default_seed: ClassVar[int] = 0

    def __init__(self, model: nn.Module, layer: str | None = None, seed: int | None = None) -> None:
        super().__init__(model, layer)
        self.seed = self.default_seed if seed is None else int(seed)

    def layer_size(self, x: Tensor) -> tuple[int, int]:
        """The spatial size ``(h, w)`` of the target layer's output for images shaped like ``x``."""
        with torch.no_grad(), self.capture(retain_grad=False) as captured:
            self.model(x[:1])
        activation = captured.get("activation")
        if not isinstance(activation, Tensor) or activation.ndim != 4:
            got = (
                f"shape {list(activation.shape)}"
                if isinstance(activation, Tensor)
                else "no output"
                if activation is None
                else type(activation).__name__
            )
            raise NotApplicableError(
                f"random: layer {self.layer_name!r} gives {got}, not a spatial map [B, C, h, w]"
            )
        return int(activation.shape[2]), int(activation.shape[3])

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        return random_low_resolution_maps(x, self.layer_size(x), self.seed)
