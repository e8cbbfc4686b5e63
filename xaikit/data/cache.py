"""The decoded-array cache: one file per source under ``cache_dir / "arrays"``.

A cache file is a ``torch.save`` of plain tensors, lists and strings, loaded with
``torch.load(weights_only=True)`` so that reading it never executes code. It is written to a
temporary file in the same folder and moved into place (``atomic.atomic_path``), so a reader never
sees half a file and concurrent writers do not corrupt each other. The key is the source's
fingerprint (absolute path, sizes and modification times of its files) plus a format version.

The file also holds a SHA-256 of its payload (:func:`payload_checksum`). A file whose checksum
does not match (a flipped byte, edited labels, another channel count), that ``torch.load``
cannot read (truncated) or whose bundle fails :func:`xaikit.data.bundle.validate_bundle` is
reported in one warning and rebuilt from the source: the cache never changes what is trained
on. The cache is optional: a write that fails (full disk, read-only folder) only warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from xaikit.atomic import atomic_path, remove_stale_temporaries
from xaikit.data.bundle import validate_bundle
from xaikit.errors import DataError
from xaikit.specs import DataBundle

CACHE_FORMAT_VERSION = 2  # 2: payload checksum
#: Temporary files of a killed cache write older than this are removed before the next write.
STALE_TEMPORARY_AGE_S = 3600.0
#: Images the decoders produce are RGB; a cached bundle with another channel count is corrupt.
CHANNELS = 3
_TENSOR_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")
_TENSOR_DTYPES = {
    "train_images": torch.uint8,
    "test_images": torch.uint8,
    "train_labels": torch.int64,
    "test_labels": torch.int64,
}


class _CorruptCache(Exception):
    """Why a cache file is not used (internal; becomes one warning)."""


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


def payload_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of everything a cache file stores, except the checksum itself.

    Covers each tensor's name, dtype, shape and bytes (in C order), then ``classes``, ``mean``,
    ``std``, ``source`` and ``forbidden_augment`` as JSON. About 0.1 s for CIFAR-10's
    180 MB of images.

    Args:
        payload: The dict :func:`save_cached` writes (tensors on the CPU).

    Raises:
        TypeError, KeyError, ValueError: ``payload`` lacks a field or holds the wrong types.
    """
    digest = hashlib.sha256(f"xaikit-array-cache v{CACHE_FORMAT_VERSION}\n".encode())
    for name in _TENSOR_FIELDS:
        tensor = payload[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} is a {type(tensor).__name__}, not a tensor")
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    meta = {key: payload[key] for key in ("classes", "mean", "std", "source", "forbidden_augment")}
    digest.update(json.dumps(meta, sort_keys=True, allow_nan=True).encode())
    return digest.hexdigest()


def _bundle_from(stored: Any) -> DataBundle:
    """Check a loaded cache payload and turn it into a bundle.

    Raises:
        _CorruptCache: The payload is not what :func:`save_cached` wrote.
    """
    if not isinstance(stored, dict):
        raise _CorruptCache(f"holds a {type(stored).__name__}, not a dict")
    try:
        checksum = payload_checksum(stored)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _CorruptCache(f"malformed payload ({type(exc).__name__}: {exc})") from None
    if stored.get("checksum") != checksum:
        raise _CorruptCache("checksum mismatch, the file changed after it was written")
    for name, dtype in _TENSOR_DTYPES.items():
        if stored[name].dtype != dtype:
            raise _CorruptCache(f"{name} is {stored[name].dtype}, expected {dtype}")
    for name in ("train_images", "test_images"):
        shape = list(stored[name].shape)
        if len(shape) != 4 or shape[1] != CHANNELS:
            raise _CorruptCache(f"{name} has shape {shape}, expected [N, {CHANNELS}, H, W]")
    bundle = DataBundle(
        **{name: stored[name] for name in _TENSOR_FIELDS},
        classes=list(stored["classes"]),
        mean=tuple(stored["mean"]),
        std=tuple(stored["std"]),
        source=str(stored["source"]),
        forbidden_augment=tuple(stored["forbidden_augment"]),
    )
    try:
        return validate_bundle(bundle)
    except DataError as exc:
        raise _CorruptCache(str(exc)) from None


def load_cached(file: Path) -> DataBundle | None:
    """The bundle stored in ``file``, or ``None`` if it is missing, stale or damaged.

    A file of another format version is ignored silently (its key differs anyway). A file
    that cannot be read, or whose payload fails its checksum or the bundle checks, gives one
    ``UserWarning`` line naming the file and the reason; the caller rebuilds it.
    """
    if not file.is_file():
        return None
    try:
        stored = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, unreadable: rebuilt, not fatal
        text = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        _warn(f"ignoring unreadable data cache {file} ({reason}); rebuilding it from the source")
        return None
    if isinstance(stored, dict) and stored.get("version") != CACHE_FORMAT_VERSION:
        return None
    try:
        return _bundle_from(stored)
    except _CorruptCache as exc:
        _warn(f"ignoring corrupt data cache {file} ({exc}); rebuilding it from the source")
        return None


def save_cached(file: Path, bundle: DataBundle) -> None:
    """Write ``bundle`` to ``file`` atomically, with its checksum.

    The cache is optional: any failure (cannot create the folder, read-only folder, disk full
    in the middle of ``torch.save``) is one ``UserWarning`` line and no partial file is left.
    Temporary files of killed writes older than :data:`STALE_TEMPORARY_AGE_S` are removed
    first.
    """
    payload: dict[str, Any] = {
        "version": CACHE_FORMAT_VERSION,
        **{name: getattr(bundle, name).cpu().contiguous() for name in _TENSOR_FIELDS},
        "classes": list(bundle.classes),
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "source": bundle.source,
        "forbidden_augment": list(bundle.forbidden_augment),
    }
    payload["checksum"] = payload_checksum(payload)
    remove_stale_temporaries(file.parent, min_age_s=STALE_TEMPORARY_AGE_S)
    try:
        # Unbuffered, so that a full disk is the OSError of the write, not a RuntimeError
        # from torch's stream writer.
        with atomic_path(file) as tmp, open(tmp, "wb", buffering=0) as f:
            torch.save(payload, f)
    except Exception as exc:  # OSError, or torch's RuntimeError for a failed write
        text = str(exc).strip().splitlines()
        if isinstance(exc, OSError) and exc.errno:
            reason = os.strerror(exc.errno)
        else:
            reason = text[0] if text else type(exc).__name__
        _warn(f"could not write data cache {file} ({reason}); the data is used without it")


def _warn(message: str) -> None:
    warnings.warn(message.replace("\n", " "), UserWarning, stacklevel=3)


def cached(file: Path, build: Callable[[], DataBundle]) -> DataBundle:
    """Load ``file`` if it holds a sound bundle, else ``build()`` one and store it there."""
    bundle = load_cached(file)
    if bundle is None:
        bundle = build()
        save_cached(file, bundle)
    return bundle
