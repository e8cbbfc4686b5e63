"""The baseline: a plain torchvision training loop, as most CIFAR-10 tutorials write it.

A ``Dataset`` holds the images as ``uint8`` HWC arrays (as ``torchvision.datasets.CIFAR10``
does) and returns one PIL image at a time; per-image transforms
``RandomCrop(32, padding=4, padding_mode="reflect") > RandomHorizontalFlip > ToTensor >
Normalize`` run in ``DataLoader`` worker processes; every batch is copied to the device.
Model, optimizer, one-cycle scheduler and loss are passed in, so the benchmark gives this loop
exactly the objects that ``xaikit.train.loop.train_one_epoch`` gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from xaikit.train.loop import training_step


class PILImageDataset(Dataset):
    """Images ``uint8 [N, C, H, W]`` and labels served one PIL image at a time.

    Args:
        images: ``uint8 [N, 3, H, W]`` (a ``DataBundle`` split), kept as HWC numpy.
        labels: ``int64 [N]``.
        transform: Applied to each PIL image (e.g. :func:`plain_transform`).
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None
    ) -> None:
        self.data = np.ascontiguousarray(images.cpu().permute(0, 2, 3, 1).numpy())
        self.targets = labels.cpu().tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[object, int]:
        image = Image.fromarray(self.data[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def plain_transform(
    mean: Sequence[float], std: Sequence[float], augment: bool = True, crop_padding: int = 4
) -> transforms.Compose:
    """Per-image transforms: random crop (reflect) and flip when ``augment``, then to tensor."""
    steps: list[Callable] = []
    if augment:
        steps += [
            transforms.RandomCrop(32, padding=crop_padding, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
        ]
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def plain_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    *,
    augment: bool = True,
    num_workers: int = 2,
    pin_memory: bool = False,
) -> DataLoader:
    """``DataLoader(PILImageDataset(...), batch_size, shuffle=True, num_workers=...)``."""
    dataset = PILImageDataset(images, labels, plain_transform(mean, std, augment))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


@dataclass
class PlainEpochResult:
    """Mean training loss and accuracy over the epoch, and the number of images seen."""

    loss: float
    acc: float
    images: int


def train_plain_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    bf16: bool = False,
    channels_last: bool = False,
) -> PlainEpochResult:
    """One epoch over ``loader``: forward, loss, backward, optimizer and scheduler step per batch.

    ``loss`` is the image-weighted mean of the batch losses, as in ``train_one_epoch``.
    """
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, logits = training_step(model, optimizer, scheduler, criterion, x, y, bf16=bf16)
        loss_sum += loss.detach() * y.shape[0]
        correct += (logits.argmax(dim=1) == y).sum()
        seen += y.shape[0]
    return PlainEpochResult(loss=loss_sum.item() / seen, acc=correct.item() / seen, images=seen)
