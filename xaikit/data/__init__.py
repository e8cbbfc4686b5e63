"""Data: CIFAR-10 sources and cache, the synthetic set, subsets, normalisation, augmentation.

A data set lives in memory as a ``DataBundle`` of uint8 tensors (move it to the training
device with ``bundle.to(device)``); batches are normalised with :func:`normalize` and
augmented on that device with :class:`BatchAugment`.
"""

from __future__ import annotations

import os
from pathlib import Path

from xaikit.data.augment import BatchAugment, normalize
from xaikit.data.subset import balanced_subset
from xaikit.specs import DataBundle

CACHE_ENV = "XAIKIT_CACHE"

__all__ = [
    "BatchAugment",
    "DataBundle",
    "balanced_subset",
    "default_cache_dir",
    "load_data",
    "normalize",
]


def default_cache_dir() -> Path:
    """``$XAIKIT_CACHE`` if set, else ``~/.cache/xaikit`` (not created here)."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "xaikit"


def load_data(
    dataset: str = "cifar10", path: str | None = None, cache_dir: Path | None = None
) -> DataBundle:
    """Load a registered data set through its plugin's ``DatasetSpec.load``.

    Args:
        dataset: Registry name, e.g. ``"cifar10"`` or ``"synthetic"``.
        path: The user's ``--data`` value; ``None`` is the data set's default source.
        cache_dir: The xaikit cache folder; ``None`` means :func:`default_cache_dir`.

    Raises:
        UnknownNameError: No plugin registered ``dataset``.
        DataError: The data could not be found or read.
    """
    from xaikit.registry import get_dataset_spec

    spec = get_dataset_spec(dataset)
    return spec.load(path, Path(cache_dir) if cache_dir is not None else default_cache_dir())
