"""Training throughput: the xaikit pipeline against a plain torchvision loop.

What a round times:

* CPU: a fixed number of optimizer steps, not an epoch: ``ultimus`` 20 batches of 512
  (10,240 images); ``custom-resnet`` and ``resnet18`` at full width (``width=1``) only 3
  batches of 64 (192 images), since one ResNet step at 512 takes 10-30 s on 2 cores.
  Two timed rounds after one warm-up round.
* CUDA: one epoch over the whole train split in batches of 512; three timed rounds after one
  warm-up round.

Both loops get the same model (seeded), optimizer (``build_optimizer`` of the model's recipe),
one-cycle schedule over the round's steps (``build_scheduler``), loss (cross-entropy with the
recipe's label smoothing) and augmentation: random crop (padding 4, reflect) and flip. The
resnet recipes' cutout is left out of both, as the plain loop has no cutout. Both use what the
trainer uses: a channels-last model and batches on every device, bf16 autocast and cuDNN
autotuning (``torch.backends.cudnn.benchmark``) on CUDA.

* ``xaikit``: the data set as uint8 tensors on the device (moved once, before timing),
  whole-batch normalisation and ``BatchAugment``, ``xaikit.train.loop.train_one_epoch``.
* ``plain-torchvision``: ``benchmarks/plain_loop.py``: PIL images, per-image transforms,
  ``DataLoader(shuffle=True, num_workers=2 on CPU, min(8, cores) on CUDA)``. The loader is
  built per round, so worker start-up is inside the timed round, as in any epoch of such a loop.

Data: real CIFAR-10 when it loads (``XAIKIT_DATA`` or ``../shared/data/cifar10-jpeg.tar.gz``),
else the synthetic set (repeated to the round's size). ``extra_info`` holds images/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from harness import DEVICE_PARAMS, record_throughput, synchronize
from plain_loop import plain_loader, train_plain_epoch

MODELS = ("ultimus", "custom-resnet", "resnet18")
LOOPS = ("xaikit", "plain-torchvision")
CUDA_BATCH_SIZE = 512


@dataclass(frozen=True)
class CpuCase:
    """Steps and batch size of one round on the CPU, and how many rounds to time."""

    steps: int
    batch_size: int
    rounds: int


CPU_CASES = {
    "ultimus": CpuCase(steps=20, batch_size=512, rounds=2),
    "custom-resnet": CpuCase(steps=3, batch_size=64, rounds=2),
    "resnet18": CpuCase(steps=3, batch_size=64, rounds=2),
}
CUDA_ROUNDS = 3


def round_images(bundle: Any, device: torch.device, model_name: str) -> tuple[Any, int, int]:
    """``(images, labels)`` of one round on the CPU-held bundle, the batch size and steps."""
    from xaikit.data import balanced_subset

    images, labels = bundle.train_images, bundle.train_labels
    if device.type == "cuda":
        steps = -(-images.shape[0] // CUDA_BATCH_SIZE)
        return (images, labels), CUDA_BATCH_SIZE, steps
    case = CPU_CASES[model_name]
    n = case.steps * case.batch_size
    if n <= images.shape[0]:
        subset = balanced_subset(bundle, n, seed=0)
        return (subset.train_images, subset.train_labels), case.batch_size, case.steps
    index = torch.arange(n) % images.shape[0]  # a small (synthetic) set, repeated
    return (images[index], labels[index]), case.batch_size, case.steps


def loader_workers(device: torch.device) -> int:
    """DataLoader workers of the plain loop: 2 on the CPU, up to 8 with a GPU."""
    if device.type == "cpu":
        return 2
    from table import usable_cores

    return max(2, min(8, usable_cores()))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_training_throughput(benchmark, training_data, device, model, loop) -> None:
    """Seconds per round (fixed steps on CPU, one epoch on CUDA) of one training loop."""
    model_name = model
    from xaikit import create_model, get_model_spec
    from xaikit.data import BatchAugment
    from xaikit.schedule import build_scheduler
    from xaikit.train.loop import build_optimizer, cudnn_autotune, train_one_epoch

    data_name, bundle = training_data
    device = torch.device(device)
    (images, labels), batch_size, steps = round_images(bundle, device, model_name)
    recipe = get_model_spec(model_name).recipe.replace(batch_size=batch_size, epochs=1)
    on_cuda = device.type == "cuda"
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def fresh_state() -> dict[str, Any]:
        torch.manual_seed(0)
        net = create_model(model_name, num_classes=len(bundle.classes)).to(device)
        net = net.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(net, recipe)
        scheduler = build_scheduler(optimizer, recipe, steps)
        return {"model": net, "optimizer": optimizer, "scheduler": scheduler}

    if loop == "xaikit":
        device_images, device_labels = images.to(device), labels.to(device)
        augment = BatchAugment(crop_padding=recipe.crop_padding, flip=True, cutout=0)

        def setup() -> tuple[tuple, dict[str, Any]]:
            generator = torch.Generator(device=device).manual_seed(0)
            return (), {**fresh_state(), "generator": generator}

        def run(model, optimizer, scheduler, generator) -> float:
            result = train_one_epoch(
                model, optimizer, scheduler, criterion, device_images, device_labels,
                bundle.mean, bundle.std, augment, batch_size, generator, epoch=1,
                bf16=on_cuda, channels_last=True,
            )
            synchronize(device)
            return result.loss

    else:
        workers = loader_workers(device)

        def setup() -> tuple[tuple, dict[str, Any]]:
            loader = plain_loader(
                images, labels, bundle.mean, bundle.std, batch_size,
                num_workers=workers, pin_memory=on_cuda,
            )
            return (), {**fresh_state(), "loader": loader}

        def run(model, optimizer, scheduler, loader) -> float:
            result = train_plain_epoch(
                model, optimizer, scheduler, criterion, loader, device,
                bf16=on_cuda, channels_last=True,
            )
            synchronize(device)
            return result.loss

    rounds = CUDA_ROUNDS if on_cuda else CPU_CASES[model_name].rounds
    with cudnn_autotune(on_cuda):  # both loops, as the trainer does on CUDA
        loss = benchmark.pedantic(run, setup=setup, rounds=rounds, warmup_rounds=1, iterations=1)
    assert math.isfinite(loss), f"training loss {loss}"  # a broken loop reports no speed
    record_throughput(
        benchmark, int(images.shape[0]), data=data_name, steps=steps, batch_size=batch_size,
        unit="epoch" if on_cuda else f"{steps} steps",
    )
