"""Building a ``DataBundle`` from decoded arrays: checks and per-channel statistics."""

from __future__ import annotations

import torch

from xaikit.errors import DataError
from xaikit.specs import DataBundle


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) standard deviation on the 0..1 scale.

    Uses a 256-bin histogram per channel, so no float copy of the images is made:
    ``mean_c = sum_v v * n_c(v) / (255 N)`` and
    ``std_c = sqrt(sum_v v^2 * n_c(v) / (255^2 N) - mean_c^2)``.

    Args:
        images: ``uint8 [N, C, H, W]`` with ``N > 0``.
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1).cpu(), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total / 255.0
        second_moment = (counts * values * values).sum() / total / (255.0 * 255.0)
        means.append(float(mean))
        stds.append(float((second_moment - mean * mean).clamp_min(0.0).sqrt()))
    return tuple(means), tuple(stds)


def make_bundle(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    classes: list[str],
    source: str,
) -> DataBundle:
    """Check decoded splits and wrap them, with mean/std from the train images.

    Raises:
        DataError: A split is empty, images and labels disagree, or a label is out of range.
    """
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        if images.shape[0] == 0:
            raise DataError(f"the {split} split of {source} has no images")
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"the {split} split of {source} is not uint8 [N, C, H, W] images")
        if labels.shape != (images.shape[0],):
            raise DataError(
                f"the {split} split of {source} has {images.shape[0]} images "
                f"but {labels.numel()} labels"
            )
        if int(labels.min()) < 0 or int(labels.max()) >= len(classes):
            raise DataError(
                f"the {split} split of {source} has labels outside 0..{len(classes) - 1}"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"images are not all the same size: train {tuple(train_images.shape[1:])}, "
            f"test {tuple(test_images.shape[1:])} in {source}"
        )
    mean, std = channel_mean_std(train_images)
    return DataBundle(
        train_images=train_images.contiguous(),
        train_labels=train_labels.to(torch.int64),
        test_images=test_images.contiguous(),
        test_labels=test_labels.to(torch.int64),
        classes=list(classes),
        mean=mean,
        std=std,
        source=source,
    )
