"""Checking a ``DataBundle`` (every data set a plugin loads) and building one from decoded
arrays with its per-channel statistics."""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import torch

from xaikit.errors import DataError
from xaikit.specs import DataBundle


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) standard deviation on the 0..1 scale.

    Uses a 256-bin histogram per channel, so no float copy of the images is made:
    ``mean_c = sum_v v * n_c(v) / (255 N)`` and
    ``std_c = sqrt(sum_v (v - 255 mean_c)^2 * n_c(v) / N) / 255``, so a constant channel has a
    standard deviation of exactly 0.

    Args:
        images: ``uint8 [N, C, H, W]`` with ``N > 0``.
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1).cpu(), minlength=256).to(torch.float64)
        total = counts.sum()
        mean_255 = (counts * values).sum() / total
        variance_255 = (counts * (values - mean_255) ** 2).sum() / total
        means.append(float(mean_255 / 255.0))
        stds.append(float(variance_255.sqrt() / 255.0))
    return tuple(means), tuple(stds)


def _describe(value: Any) -> str:
    """``float32 [40, 3, 32, 32]`` for a tensor, else the type's name."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    return type(value).__name__


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _check_splits(
    train_images: Any, train_labels: Any, test_images: Any, test_labels: Any, classes: Any
) -> list[str]:
    """Check images, labels and classes; return the class names as a list of str.

    Raises:
        DataError: The first problem found, naming the field (no context prefix).
    """
    if not isinstance(classes, (list, tuple)) or not classes:
        raise DataError(f"classes must be a non-empty list of names, got {classes!r}")
    if not all(isinstance(name, str) and name.strip() for name in classes):
        raise DataError(f"classes must be non-empty strings, got {list(classes)!r}")
    repeated = sorted(name for name, count in collections.Counter(classes).items() if count > 1)
    if repeated:
        raise DataError(
            f"classes must be unique, got {', '.join(map(repr, repeated))} more than once"
        )
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                f"{split}_images must be uint8 [N, C, H, W] images, got {_describe(images)}"
            )
        if images.shape[0] == 0:
            raise DataError(f"the {split} split has no images ({split}_images {_describe(images)})")
        if (
            not isinstance(labels, torch.Tensor)
            or not _is_integer(labels.dtype)
            or labels.shape != (images.shape[0],)
        ):
            raise DataError(
                f"{split}_labels must be integer class indices of shape [{images.shape[0]}] "
                f"(one per image), got {_describe(labels)}"
            )
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= len(classes):
            raise DataError(
                f"{split}_labels must be in 0..{len(classes) - 1} ({len(classes)} classes), "
                f"got values from {low} to {high}"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"images are not all the same size: train_images {list(train_images.shape[1:])}, "
            f"test_images {list(test_images.shape[1:])} ([C, H, W] must agree)"
        )
    return list(classes)


def _check_stats(name: str, values: Any, channels: int, low: float) -> tuple[float, ...]:
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise DataError(
            f"{name} must be {channels} numbers (one per channel), got {values!r}"
        ) from None
    if len(floats) != channels:
        raise DataError(
            f"{name} must have {channels} values (one per channel), got {len(floats)}"
        )
    if not all(math.isfinite(v) and v >= low for v in floats):
        bound = f" and >= {low:g}" if low > -math.inf else ""
        raise DataError(f"{name} must be finite{bound}, got {floats}")
    return floats


def validate_bundle(bundle: Any, context: str = "") -> DataBundle:
    """Check a data set a plugin returned, and normalise its types.

    Checks: ``train_images``/``test_images`` are ``uint8 [N, C, H, W]`` with ``N > 0`` and the
    same ``[C, H, W]``; ``train_labels``/``test_labels`` are integer ``[N]`` in
    ``0..len(classes)-1``; ``classes`` are non-empty, unique strings; ``mean`` and ``std``
    have ``C`` finite values and ``std >= 0``.

    Args:
        bundle: What ``DatasetSpec.load`` returned.
        context: Prefix of the error message, e.g. ``"dataset 'x' (plugin p, distribution d)"``.

    Returns:
        The bundle with labels as ``int64``, ``classes`` a list and ``mean``/``std`` tuples of
        float.

    Raises:
        DataError: One line naming the context and the field that is wrong.
    """
    try:
        if not isinstance(bundle, DataBundle):
            raise DataError(f"load must return a DataBundle, got {type(bundle).__name__}")
        classes = _check_splits(
            bundle.train_images, bundle.train_labels, bundle.test_images, bundle.test_labels,
            bundle.classes,
        )
        channels = bundle.train_images.shape[1]
        mean = _check_stats("mean", bundle.mean, channels, -math.inf)
        std = _check_stats("std", bundle.std, channels, 0.0)
        from xaikit.data.augment import KNOWN_AUGMENTATIONS

        forbidden = tuple(bundle.forbidden_augment)
        if not set(forbidden) <= set(KNOWN_AUGMENTATIONS):
            raise DataError(
                f"forbidden_augment must name augmentations among {', '.join(KNOWN_AUGMENTATIONS)}, "
                f"got {list(forbidden)}"
            )
    except DataError as exc:
        raise DataError(f"{context}: {exc}" if context else str(exc)) from None
    return dataclasses.replace(
        bundle,
        train_labels=bundle.train_labels.to(torch.int64),
        test_labels=bundle.test_labels.to(torch.int64),
        classes=classes,
        mean=mean,
        std=std,
        forbidden_augment=forbidden,
    )


def make_bundle(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    classes: list[str],
    source: str,
) -> DataBundle:
    """Check decoded splits and wrap them, with mean/std from the train images.

    The checks are those of :func:`validate_bundle`.

    Raises:
        DataError: A split is empty, images and labels disagree, a label is out of range or
            the class names are not unique non-empty strings (the message names ``source``).
    """
    try:
        classes = _check_splits(train_images, train_labels, test_images, test_labels, classes)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    mean, std = channel_mean_std(train_images)
    return DataBundle(
        train_images=train_images.contiguous(),
        train_labels=train_labels.to(torch.int64),
        test_images=test_images.contiguous(),
        test_labels=test_labels.to(torch.int64),
        classes=classes,
        mean=mean,
        std=std,
        source=source,
    )
