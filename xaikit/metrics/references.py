"""Reference maps and canvases of the perturbation metrics: smooth random maps, blurred images.

* :func:`random_reference` -- a seeded uniform random map drawn at a coarse resolution and
  upsampled bilinearly, as a CAM is. A map's deletion/insertion AUC is only meaningful next to
  a random map's, and an i.i.d. per-pixel random map is the wrong reference for a smooth map:
  removing scattered pixels hurts a CNN less than removing a blob of the same size, so the
  i.i.d. reference penalises smooth maps on deletion and flatters them on insertion (by
  0.01-0.02 AUC on ULTIMUS). A random map at the method's own resolution removes that
  confound: only *where* the blobs are differs.
* :func:`map_resolution` -- that resolution: the spatial size of a CAM method's layer, else the
  input's.
* :func:`gaussian_blur` -- the canvas insertion starts from (RISE, Petsiuk et al. 2018).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.errors import XaikitError
from xaikit.modules import module_mode


def random_reference(shape: Sequence[int], resolution: Sequence[int] | None = None, seed: int = 0,
                     device: torch.device | str | None = None) -> Tensor:
    """Seeded random maps ``[B, H, W]``: uniform ``[0, 1)`` at ``resolution``, upsampled bilinearly.

    Args:
        shape: ``(B, H, W)`` of the maps to return.
        resolution: ``(h, w)`` at which the values are drawn (``None`` or ``(H, W)``: i.i.d.
            per pixel). Upsampling is bilinear with ``align_corners=False``, as
            :func:`xaikit.attribution.upsample` does for CAMs.
        seed: Seed (drawn on the CPU, so every device gets the same maps).
        device: Device of the result.
    """
    b, h, w = (int(v) for v in shape)
    rh, rw = (h, w) if resolution is None else (int(resolution[0]), int(resolution[1]))
    if rh < 1 or rw < 1:
        raise XaikitError(f"reference resolution must be positive, got {(rh, rw)}")
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(b, 1, rh, rw, generator=generator)
    if (rh, rw) != (h, w):
        values = F.interpolate(values, size=(h, w), mode="bilinear", align_corners=False)
    return values[:, 0].to(device)


def map_resolution(method: Any, x: Tensor) -> tuple[int, int]:
    """Resolution at which ``method`` resolves detail: its layer's output ``(h, w)``, else ``x``'s.

    A method with a ``layer`` module (CAM methods) is probed with one forward pass of its
    model on ``x[:1]`` and a hook on that layer; any other method is taken as pixel-level.
    """
    layer = getattr(method, "layer", None)
    model = getattr(method, "model", None)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if not isinstance(layer, nn.Module) or not isinstance(model, nn.Module):
        return size
    seen: dict[str, tuple[int, int]] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor) and output.ndim == 4:
            seen["size"] = (int(output.shape[-2]), int(output.shape[-1]))

    handle = layer.register_forward_hook(hook)
    try:
        with module_mode(model, training=False), torch.no_grad():
            model(x[:1])
    finally:
        handle.remove()
    return seen.get("size", size)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` per channel (reflect padding, 3-sigma kernel)."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
