"""Seeded calls of Captum's random methods, with the global RNG state left as it was.

Captum draws its randomness from the global generators: torch's (CPU and the input's device)
for noise, masks and permutations, and NumPy's for GradientSHAP's baseline picks and path
points. :func:`seeded` seeds all three for a block and restores them on exit, also on an
exception, so a seeded map repeats exactly and the caller's random stream is untouched.

:func:`per_image` runs a Captum call on one image at a time, each under the same seed, so an
image's map is the map Captum gives for that image alone after ``torch.manual_seed(seed)``
and ``numpy.random.seed(seed)``: it does not depend on the batch it came in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from xaikit import XaikitError


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch (CPU and ``device``) and NumPy with ``seed`` inside the block; restore their
    states on exit. ``seed=None`` leaves the generators alone (the block draws from them)."""
    if seed is None:
        yield
        return
    cuda = device.type == "cuda"
    index = None
    if cuda:
        index = device.index if device.index is not None else torch.cuda.current_device()
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[index] if cuda else []):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(numpy_state)


def per_image(
    x: Tensor, target: Tensor, seed: int | None, fn: Callable[[Tensor, Tensor, int], Tensor]
) -> Tensor:
    """``fn(x[i:i+1], target[i:i+1], i)`` for every image, each under :func:`seeded` ``(seed)``,
    concatenated along the batch."""
    maps = []
    for i in range(x.shape[0]):
        with seeded(seed, x.device):
            maps.append(fn(x[i : i + 1], target[i : i + 1], i))
    return torch.cat(maps)


def check_seed(seed: int | None) -> None:
    """Raise :class:`xaikit.XaikitError` for a seed that torch cannot take."""
    if seed is not None and not 0 <= seed < 2**63:
        raise XaikitError(f"seed must be in 0..2**63-1 or None, got {seed}")
