"""One process's share of each training batch under DistributedDataParallel.

Every process draws the same epoch permutation and the same augmentation parameters from the
same seeded data generator (its state is in the checkpoint), then takes its contiguous slice of
each batch: ``batch.tensor_split(world)[rank]``. So the union of the processes' batches is
exactly the single-process batch, image for image and crop for crop, whatever the number of
processes; and a checkpoint resumes exactly with another number of processes.

The augmentation parameters (crop offsets, flips, cutout centres) are drawn for the whole
batch -- a few numbers per image -- with the same calls, in the same order, as
:class:`xaikit.data.BatchAugment` makes for that batch, and applied to this process's images
only: the pixel work is sharded. ``test_distributed_units.py`` pins the result to
``BatchAugment`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xaikit import distributed
from xaikit.data import AlternatingFlip, BatchAugment, normalize


@dataclass(frozen=True)
class Shard:
    """Process ``rank`` of ``world`` in a data-parallel training."""

    rank: int
    world: int

    @classmethod
    def current(cls) -> "Shard":
        """This process's shard (``Shard(0, 1)`` in a plain process)."""
        return cls(distributed.rank(), distributed.world_size())

    def bounds(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this process's part of a batch of ``n`` images."""
        return distributed.shard_bounds(n, self.rank, self.world)

    def loss_weight(self, n: int) -> float:
        """Factor on this process's mean loss so that DDP's gradient average is the gradient
        of the global batch mean: ``n_rank * world / n`` (1.0 when ``world`` divides ``n``)."""
        start, stop = self.bounds(n)
        return (stop - start) * self.world / n

    def reduce(
        self, batch_losses: Tensor, start: int, stop: int, loss_sum: Tensor, correct: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Sum the batch losses ``batch_losses[start:stop]`` (written back: each process holds
        its share of each global batch mean), the loss sum and the correct count over all
        processes in one all-reduce; return the global loss sum and correct count."""
        packed = torch.cat([
            batch_losses[start:stop], loss_sum.reshape(1), correct.to(batch_losses.dtype).reshape(1)
        ])
        distributed.all_reduce_sum(packed)
        batch_losses[start:stop] = packed[:-2]
        return packed[-2], packed[-1]


def draw_augment_params(
    augment: BatchAugment, batch: int, height: int, width: int, generator: torch.Generator,
    device: torch.device,
) -> dict[str, Tensor]:
    """The random parameters ``augment`` would draw for a batch of ``batch`` images of
    ``height x width`` (same calls, same order as ``BatchAugment.__call__``)."""
    params: dict[str, Tensor] = {}
    if augment.crop_padding or augment.flip:
        pad = augment.crop_padding
        if pad >= height or pad >= width:
            raise ValueError(f"crop_padding {pad} must be smaller than the image ({height}x{width})")
        if pad:
            params["offsets"] = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
        else:
            params["offsets"] = torch.zeros(2, batch, dtype=torch.long, device=device)
        if augment.flip:
            params["flipped"] = torch.rand(batch, generator=generator, device=device) < 0.5
    if augment.cutout:
        params["centres"] = torch.rand(2, batch, generator=generator, device=device)
    return params


def apply_augment_params(
    augment: BatchAugment, x: Tensor, params: dict[str, Tensor], start: int
) -> Tensor:
    """Augment ``x`` (images ``start .. start + len(x)`` of the batch ``params`` was drawn for)
    as ``BatchAugment`` augments them: crop (reflect padding) and flip in two gathers, then
    cutout."""
    batch, channels, height, width = x.shape
    device = x.device
    part = slice(start, start + batch)
    if "offsets" in params:
        pad = augment.crop_padding
        offsets = params["offsets"][:, part]
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        rows = offsets[0, :, None] + torch.arange(height, device=device)
        cols = torch.arange(width, device=device).expand(batch, width)
        if "flipped" in params:
            cols = torch.where(params["flipped"][part, None], cols.flip(1), cols)
        cols = offsets[1, :, None] + cols
        x = x.gather(2, rows[:, None, :, None].expand(batch, channels, height, x.shape[3]))
        x = x.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))
    if "centres" in params:
        centres = params["centres"][:, part]
        top = (centres[0] * height).long() - augment.cutout // 2
        left = (centres[1] * width).long() - augment.cutout // 2
        ys = torch.arange(height, device=device)
        xs = torch.arange(width, device=device)
        in_rows = (ys >= top[:, None]) & (ys < top[:, None] + augment.cutout)
        in_cols = (xs >= left[:, None]) & (xs < left[:, None] + augment.cutout)
        x = x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)
    return x


def shard_batch(
    images: Tensor,
    batch_index: Tensor,
    shard: Shard,
    mean: Sequence[float],
    std: Sequence[float],
    augment: BatchAugment | None,
    generator: torch.Generator,
    channels_last: bool = False,
    altflip: AlternatingFlip | None = None,
    epoch: int = 1,
) -> tuple[Tensor, Tensor]:
    """This process's part of the global batch ``images[batch_index]``: its indices and its
    normalised, augmented input, drawn as the single-process batch would be."""
    start, stop = shard.bounds(batch_index.shape[0])
    index = batch_index[start:stop]
    x = normalize(images[index], mean, std)
    if augment is not None:
        params = draw_augment_params(
            augment, batch_index.shape[0], x.shape[2], x.shape[3], generator, x.device
        )
        x = apply_augment_params(augment, x, params, start)
    if altflip is not None:
        x = altflip(x, index, epoch)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return index, x
