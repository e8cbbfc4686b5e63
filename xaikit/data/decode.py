"""Decoding raw bytes into uint8 image tensors: image files and CIFAR-10 python batches.

Every failure a user's data can cause is a one-line ``DataError`` that names the member
(file or archive entry) it came from.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Sequence

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

from xaikit.errors import DataError

#: Suffixes (lower case) of the files an ImageFolder tree may hold; others are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")

_PICKLE_GLOBALS = {
    ("_codecs", "encode"),  # bytes objects in protocol-2 pickles written by Python 3
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
    *((f"numpy.{core}.multiarray", "scalar") for core in ("core", "_core")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


def first_line(exc: BaseException) -> str:
    """``"Type: first line of the message"``, for one-line error messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _decode_with_pil(name: str, data: bytes) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL raises many types for bad files
        raise DataError(f"cannot decode image {name}: {first_line(exc)}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def decode_one_image(name: str, data: bytes) -> torch.Tensor:
    """Decode one image file to a ``uint8`` RGB tensor ``[3, H, W]``.

    torchvision's libjpeg-turbo/libpng decoder is used first (about 4x faster than PIL on
    32x32 JPEGs, identical pixels); anything it cannot give as 8-bit RGB goes through PIL.

    Raises:
        DataError: The bytes are not a decodable image; the message names ``name``.
    """
    if not data:
        raise DataError(f"cannot decode image {name}: the file is empty")
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)  # writable copy, a few KiB
    try:
        image = decode_image(raw, mode=ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError):
        return _decode_with_pil(name, data)
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        return _decode_with_pil(name, data)  # grey, alpha, palette, CMYK, 16-bit...
    return image


def decode_images(named_blobs: Sequence[tuple[str, bytes]]) -> torch.Tensor:
    """Decode image files that must all have the same size into one ``uint8 [N, 3, H, W]``.

    Args:
        named_blobs: ``(name, bytes)`` per image; ``name`` appears in error messages.

    Raises:
        DataError: An image cannot be decoded, or its size differs from the first one's.
    """
    if not named_blobs:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    first_name, first_data = named_blobs[0]
    first = decode_one_image(first_name, first_data)
    out = torch.empty((len(named_blobs), *first.shape), dtype=torch.uint8)
    out[0] = first
    for i in range(1, len(named_blobs)):
        name, data = named_blobs[i]
        image = decode_one_image(name, data)
        if image.shape != first.shape:
            raise DataError(
                f"images are not all the same size: {name} is {image.shape[2]}x{image.shape[1]}, "
                f"{first_name} is {first.shape[2]}x{first.shape[1]}"
            )
        out[i] = image
    return out


class _CifarBatchUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays and plain containers (no arbitrary code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _unpickle(name: str, data: bytes) -> dict:
    try:
        obj = _CifarBatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # truncated or foreign pickles raise many types
        raise DataError(f"cannot read CIFAR-10 batch {name}: {first_line(exc)}") from None
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        raise DataError(f"cannot read CIFAR-10 batch {name}: expected a dict, got {kind}")
    return obj


def read_cifar_batch(name: str, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one ``data_batch_N``/``test_batch`` pickle of the CIFAR-10 python version.

    The format (Krizhevsky, 2009): a dict with ``b"data"``, ``uint8 [N, 3072]`` (1024 red,
    then 1024 green, then 1024 blue values of a 32x32 image, row-major) and ``b"labels"``,
    ``N`` ints in ``0..9``.

    Returns:
        ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.

    Raises:
        DataError: Not such a batch; the message names ``name``.
    """
    batch = _unpickle(name, data)
    images = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise DataError(f"CIFAR-10 batch {name} has no uint8 [N, 3072] 'data' array")
    if labels is None or len(labels) != images.shape[0]:
        raise DataError(
            f"CIFAR-10 batch {name} has {images.shape[0]} images but not as many labels"
        )
    if images.dtype != np.uint8:
        raise DataError(f"CIFAR-10 batch {name}: 'data' is {images.dtype}, expected uint8")
    image_tensor = torch.from_numpy(np.ascontiguousarray(images).reshape(-1, 3, 32, 32).copy())
    label_tensor = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return image_tensor, label_tensor


def read_cifar_meta(name: str, data: bytes) -> list[str]:
    """Class names from ``batches.meta`` (``b"label_names"``, a list of bytes)."""
    meta = _unpickle(name, data)
    names = meta.get(b"label_names", meta.get("label_names"))
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"CIFAR-10 meta file {name} has no 'label_names' list")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
