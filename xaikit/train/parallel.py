"""Data-parallel training under torchrun: checks, the DDP wrapper, the sharded test pass.

What is exact and what is not, with ``W`` processes against one with the same global batch:

* exact: the epoch's batches (one permutation, broadcast from rank 0, each batch cut into
  ``W`` contiguous parts), every image's crop, flip and cutout (drawn for the whole batch from
  the shared data generator, see :mod:`xaikit.train.shard`), the LR schedule, the gradient's
  weighting (an unevenly cut batch is weighted so that DDP's average is the global batch mean),
  and the checkpoint (one model, one optimizer state, one data-generator state), so a resume
  with another ``W`` continues the same sequence of batches;
* not bit-exact: floating-point sums (the gradient all-reduce, per-shard losses and
  evaluation sums) are taken in another order, so numbers drift apart at the level of float
  rounding (about 1e-6 relative per step, growing slowly over training);
* different: BatchNorm normalises each process's part with that part's own statistics unless
  ``sync_bn`` (SyncBatchNorm, CUDA only), and its running statistics are rank 0's (DDP
  broadcasts rank 0's buffers before each forward pass); randomness inside the model
  (dropout) comes from the global generator, seeded each epoch from ``(seed, epoch, rank)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xaikit import distributed
from xaikit.errors import XaikitError
from xaikit.evaluate import predict
from xaikit.run import RunConfig
from xaikit.schedule import steps_per_epoch
from xaikit.specs import DataBundle
from xaikit.train.shard import Shard


def check_parallel(config: RunConfig, device: torch.device) -> None:
    """Refuse what this world size cannot run: SyncBatchNorm on the CPU (torch's has CUDA
    kernels only).

    Raises:
        XaikitError: one line.
    """
    if config.sync_bn and distributed.world_size() > 1 and device.type != "cuda":
        raise XaikitError(
            "--sync-bn needs CUDA (torch's SyncBatchNorm has no CPU kernels); on the CPU drop "
            "--sync-bn: each process then normalises its part of a batch with that part's statistics"
        )


def check_batch_split(num_images: int, batch_size: int, world: int) -> None:
    """Every batch of an epoch must give each of ``world`` processes at least one image.

    Raises:
        XaikitError: the smallest batch has fewer images than there are processes.
    """
    smallest = num_images // steps_per_epoch(num_images, batch_size)
    if smallest < world:
        raise XaikitError(
            f"batches of {smallest} images cannot be split over {world} processes; "
            f"use --batch-size {world} or more, or fewer processes"
        )


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of the global generator (randomness inside the model) of ``rank`` in ``epoch``."""
    return distributed.derived_seed(seed, "epoch", epoch, "rank", rank)


def wrap(model: nn.Module, device: torch.device, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """``(model, ddp)``: the model (its BatchNorm layers converted to SyncBatchNorm with
    ``sync_bn``; same state-dict keys) and its DistributedDataParallel wrapper. DDP copies
    rank 0's parameters and buffers to every process here."""
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return model, DistributedDataParallel(model, device_ids=device_ids)


def evaluate_sharded(
    model: nn.Module, data: DataBundle, shard: Shard, *, tta: bool, bf16: bool, channels_last: bool,
    tta_shift: int = 0,
) -> dict[str, float]:
    """The test loss and accuracy (and ``acc_tta``) of ``model``, each process predicting its
    contiguous part of the test split; the sums are added over all processes.

    Rank 0's buffers (BatchNorm running statistics, which differ per process without
    SyncBatchNorm) are first copied to every process, so the model evaluated is the one
    rank 0 saves.
    """
    distributed.broadcast_buffers(model)
    n = int(data.test_labels.shape[0])
    start, stop = shard.bounds(n)
    device = data.test_images.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    if stop > start:
        images, labels = data.test_images[start:stop], data.test_labels[start:stop].to(device)
        kwargs: dict[str, Any] = dict(log=True, bf16=bf16, channels_last=channels_last)
        log_p = predict(model, images, data.mean, data.std, **kwargs)
        sums[0] = nn.functional.nll_loss(log_p, labels, reduction="sum")
        sums[1] = (log_p.argmax(dim=1) == labels).sum()
        if tta:
            sums[2] = (predict(model, images, data.mean, data.std, tta=True, tta_shift=tta_shift,
                               **kwargs).argmax(dim=1) == labels).sum()
    totals = distributed.all_reduce_sum(sums).tolist()
    result = {"loss": totals[0] / n, "acc": totals[1] / n}
    if tta:
        result["acc_tta"] = totals[2] / n
    return result
