"""The decoded-array cache: one file per source under ``cache_dir / "arrays"``.

A cache file is a ``torch.save`` of plain tensors, lists and strings, loaded with
``torch.load(weights_only=True)`` so that reading it never executes code. It is written to a
temporary file in the same folder and moved into place (``atomic.atomic_path``), so a reader never
sees half a file and concurrent writers do not corrupt each other. The key is the source's
fingerprint (absolute path, sizes and modification times of its files) plus a format version.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Callable

import torch

from xaikit.atomic import atomic_path
from xaikit.specs import DataBundle

CACHE_FORMAT_VERSION = 1
_TENSOR_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")


def cache_file(cache_dir: Path, fingerprint: str, label: str) -> Path:
    """The cache file for a source.

    Args:
        cache_dir: The xaikit cache folder; arrays live in its ``arrays/`` subfolder.
        fingerprint: ``Source.fingerprint()`` (or any string identifying the contents).
        label: A readable prefix for the file name, e.g. the archive's name.
    """
    key = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}|{fingerprint}".encode()).hexdigest()[:20]
    safe_label = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:60] or "data"
    return Path(cache_dir) / "arrays" / f"{safe_label}-{key}.pt"


def load_cached(file: Path) -> DataBundle | None:
    """The bundle stored in ``file``, or ``None`` if it is missing or unreadable."""
    if not file.is_file():
        return None
    try:
        stored = torch.load(file, map_location="cpu", weights_only=True)
        if stored.get("version") != CACHE_FORMAT_VERSION:
            return None
        return DataBundle(
            **{name: stored[name] for name in _TENSOR_FIELDS},
            classes=list(stored["classes"]),
            mean=tuple(stored["mean"]),
            std=tuple(stored["std"]),
            source=str(stored["source"]),
        )
    except Exception as exc:  # a damaged cache file is rebuilt, not fatal
        warnings.warn(f"ignoring unreadable data cache {file}: {exc}", stacklevel=2)
        return None


def save_cached(file: Path, bundle: DataBundle) -> None:
    """Write ``bundle`` to ``file`` atomically; a cache that cannot be written only warns."""
    payload = {
        "version": CACHE_FORMAT_VERSION,
        **{name: getattr(bundle, name).cpu() for name in _TENSOR_FIELDS},
        "classes": list(bundle.classes),
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "source": bundle.source,
    }
    try:
        with atomic_path(file) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        warnings.warn(f"could not write data cache {file}: {exc}", stacklevel=2)


def cached(file: Path, build: Callable[[], DataBundle]) -> DataBundle:
    """Load ``file`` if it holds a bundle, else ``build()`` one and store it there."""
    bundle = load_cached(file)
    if bundle is None:
        bundle = build()
        save_cached(file, bundle)
    return bundle
