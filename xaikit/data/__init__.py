"""Data: CIFAR-10 sources and cache, the synthetic set, subsets, normalisation, augmentation.

A data set lives in memory as a ``DataBundle`` of uint8 tensors (move it to the training
device with ``bundle.to(device)``); batches are normalised with :func:`normalize` and
augmented on that device with :class:`BatchAugment`.
"""

from __future__ import annotations

import os
from pathlib import Path

from xaikit.data.augment import AlternatingFlip, BatchAugment, normalize
from xaikit.data.bundle import validate_bundle
from xaikit.data.subset import balanced_subset
from xaikit.errors import DataError, XaikitError
from xaikit.specs import DataBundle

CACHE_ENV = "XAIKIT_CACHE"

__all__ = [
    "AlternatingFlip",
    "BatchAugment",
    "DataBundle",
    "balanced_subset",
    "default_cache_dir",
    "load_data",
    "normalize",
    "validate_bundle",
]


def default_cache_dir() -> Path:
    """``$XAIKIT_CACHE`` if set, else ``~/.cache/xaikit`` (not created here)."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "xaikit"


def load_data(
    dataset: str = "cifar10", path: str | None = None, cache_dir: Path | None = None
) -> DataBundle:
    """Load a registered data set through its plugin's ``DatasetSpec.load``, and check it.

    Every bundle is checked by :func:`xaikit.data.bundle.validate_bundle` (uint8 images of one
    size, integer labels in range, unique class names, per-channel mean/std), so a plugin's
    mistake is reported here, naming the plugin, not later as a diverged training.

    Args:
        dataset: Registry name, e.g. ``"cifar10"`` or ``"synthetic"``.
        path: The user's ``--data`` value; ``None`` is the data set's default source.
        cache_dir: The xaikit cache folder; ``None`` means :func:`default_cache_dir`.

    Raises:
        UnknownNameError: No plugin registered ``dataset``.
        DuplicateNameError: More than one plugin registered ``dataset``.
        DataError: The data could not be found or read, the plugin's ``load`` failed, or the
            bundle it returned is malformed (one line naming the plugin and its distribution).
    """
    from xaikit.registry import get_entry

    entry = get_entry("dataset", dataset)
    context = f"dataset {dataset!r} (plugin {entry.plugin}, distribution {entry.dist})"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        bundle = entry.obj.load(path, cache)
    except XaikitError:
        raise
    except Exception as exc:  # a plugin's bug: one line naming it, not a traceback
        first_line = (str(exc).strip().splitlines() or [""])[0]
        detail = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        raise DataError(f"{context}: load failed with {detail}") from exc
    return validate_bundle(bundle, context)
