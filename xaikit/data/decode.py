"""Decoding raw bytes into uint8 image tensors: image files and CIFAR-10 python batches.

Every failure a user's data can cause is a one-line ``DataError`` that names the member
(file or archive entry) it came from.

Sizes are checked before anything is decoded, so a small hostile file cannot take the memory:
an image file over :data:`MAX_IMAGE_FILE_BYTES` or a batch file over
:data:`MAX_BATCH_FILE_BYTES` is refused before it is read (:func:`check_file_size`), and an
image whose header gives more than :data:`MAX_IMAGE_PIXELS` pixels, or another size than the
first image's, is refused before it is decoded (a 16384x16384 PNG compresses to a few hundred
KB but decodes to 805 MB).
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import struct
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

from xaikit.errors import DataError

#: Suffixes (lower case) of the files an ImageFolder tree may hold; others are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")

#: Largest image accepted, in pixels (width x height): 4096x4096, 48 MiB as RGB.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Largest image file (or archive member) that is read: 64 MiB.
MAX_IMAGE_FILE_BYTES = 64 * 2**20
#: Largest CIFAR-10 python batch or meta file that is read: 512 MiB (a real batch is 30 MiB).
MAX_BATCH_FILE_BYTES = 512 * 2**20

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (SOF0..SOF15 except DHT, JPG and DAC), which carry the size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

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


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


def check_file_size(name: str, size: int, limit: int, what: str = "image file") -> None:
    """Refuse a file before it is read if it is larger than ``limit`` bytes.

    Args:
        name: The file or archive member, for the message.
        size: Its size in bytes (``os.stat`` or ``TarInfo.size``).
        limit: :data:`MAX_IMAGE_FILE_BYTES` or :data:`MAX_BATCH_FILE_BYTES`.
        what: What the file is, e.g. ``"image file"`` or ``"CIFAR-10 batch"``.

    Raises:
        DataError: ``size > limit``; one line naming the file, its size and the limit.
    """
    if size > limit:
        raise DataError(
            f"{what} {name} is {_mib(size)}, over the limit of {_mib(limit)}; "
            f"refused before reading"
        )


def _png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk, or ``None`` if ``data`` is not a PNG."""
    if len(data) >= 24 and data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's first start-of-frame segment, or ``None``.

    Walks the marker segments (ITU T.81, B.1.1): ``FF xx`` then a 2-byte big-endian length
    that counts itself; an SOF segment holds precision (1 byte), height and width (2 each).
    """
    if data[:2] != b"\xff\xd8":
        return None
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > end or length < 7:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _pixel_limit() -> str:
    """``"16,777,216 pixels (4096x4096)"``: :data:`MAX_IMAGE_PIXELS` in words."""
    side = math.isqrt(MAX_IMAGE_PIXELS)
    square = f" ({side}x{side})" if side * side == MAX_IMAGE_PIXELS else ""
    return f"{MAX_IMAGE_PIXELS:,} pixels{square}"


@contextlib.contextmanager
def _opened_with_pil(name: str, data: bytes) -> Iterator[Any]:
    """PIL's lazy ``Image.open`` of ``data``; every failure, in the block too, is one line.

    PIL's own decompression-bomb guard (a warning above ``Image.MAX_IMAGE_PIXELS``, an error
    above twice that) is turned into the same ``DataError`` as :data:`MAX_IMAGE_PIXELS`.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                yield image
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"image {name} is larger than the limit of {_pixel_limit()}; refused before decoding"
        ) from None
    except Exception as exc:  # PIL raises many types for bad files
        raise DataError(f"cannot decode image {name}: {first_line(exc)}") from None


def _pil_header(name: str, data: bytes) -> tuple[str, int, int]:
    """Format and size from PIL's lazy ``Image.open`` (reads the header, decodes nothing)."""
    with _opened_with_pil(name, data) as image:
        return str(image.format), *image.size


def image_header(name: str, data: bytes) -> tuple[str, int, int]:
    """Format (``"PNG"``, ``"JPEG"`` or PIL's name) and ``(width, height)`` of an image file,
    read from its header without decoding any pixel.

    PNG and JPEG headers are parsed here (about 1 microsecond against PIL's 25); other formats
    go through PIL's lazy ``Image.open``.

    Raises:
        DataError: The file is empty or not an image, or it has more than
            :data:`MAX_IMAGE_PIXELS` pixels (one line naming ``name`` and the limit).
    """
    if not data:
        raise DataError(f"cannot decode image {name}: the file is empty")
    size = _png_size(data)
    kind = "PNG"
    if size is None:
        size, kind = _jpeg_size(data), "JPEG"
    if size is None:
        kind, *size = _pil_header(name, data)
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"image {name} is {width}x{height}, over the limit of {_pixel_limit()}; "
            f"refused before decoding"
        )
    if width <= 0 or height <= 0:
        raise DataError(f"cannot decode image {name}: its header gives a size of {width}x{height}")
    return kind, width, height


def _decode_with_pil(name: str, data: bytes) -> torch.Tensor:
    with _opened_with_pil(name, data) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def decode_one_image(
    name: str, data: bytes, header: tuple[str, int, int] | None = None
) -> torch.Tensor:
    """Decode one image file to a ``uint8`` RGB tensor ``[3, H, W]``.

    The header is checked first (:func:`image_header`), so an image over
    :data:`MAX_IMAGE_PIXELS` is refused before any memory is spent on its pixels. PNG and JPEG
    go through torchvision's libpng/libjpeg-turbo decoder (about 4x faster than PIL on 32x32
    JPEGs, identical pixels); anything it cannot give as 8-bit RGB, and every other format,
    goes through PIL.

    Args:
        name: The file or archive member, for messages.
        data: The file's bytes.
        header: ``image_header(name, data)`` if the caller has it already.

    Raises:
        DataError: The bytes are not a decodable image, the image is too large, or it decodes
            to another size than its header gives; the message names ``name``.
    """
    kind, width, height = header if header is not None else image_header(name, data)
    image = None
    if kind in ("PNG", "JPEG"):
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)  # writable copy, a few KiB
        try:
            image = decode_image(raw, mode=ImageReadMode.UNCHANGED)
        except (RuntimeError, ValueError):
            image = None
        if image is not None and (
            image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3
        ):
            image = None  # grey, alpha, palette, CMYK, 16-bit...
    if image is None:
        image = _decode_with_pil(name, data)
    if tuple(image.shape[1:]) != (height, width):
        raise DataError(
            f"cannot decode image {name}: its header gives {width}x{height} but it decodes to "
            f"{image.shape[2]}x{image.shape[1]}"
        )
    return image


def decode_images(named_blobs: Sequence[tuple[str, bytes]]) -> torch.Tensor:
    """Decode image files that must all have the same size into one ``uint8 [N, 3, H, W]``.

    Every header is read before any image is decoded, so an image that is too large or of
    another size than the first is reported without decoding the others.

    Args:
        named_blobs: ``(name, bytes)`` per image; ``name`` appears in error messages.

    Raises:
        DataError: An image cannot be decoded, is over :data:`MAX_IMAGE_PIXELS`, its size
            differs from the first one's, or the decoded set does not fit in memory.
    """
    if not named_blobs:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    headers = [image_header(name, data) for name, data in named_blobs]
    first_name = named_blobs[0][0]
    _, width, height = headers[0]
    for (name, _), (_, w, h) in zip(named_blobs, headers):
        if (w, h) != (width, height):
            raise DataError(
                f"images are not all the same size: {name} is {w}x{h}, "
                f"{first_name} is {width}x{height}"
            )
    count = len(named_blobs)
    try:
        out = torch.empty((count, 3, height, width), dtype=torch.uint8)
    except (RuntimeError, MemoryError):
        raise DataError(
            f"{count:,} images of {width}x{height} need {_mib(count * 3 * height * width)} of "
            f"memory, more than is available"
        ) from None
    for i, ((name, data), header) in enumerate(zip(named_blobs, headers)):
        out[i] = decode_one_image(name, data, header)
    return out


class _CifarBatchUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays and plain containers (no arbitrary code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _unpickle(name: str, data: bytes) -> dict:
    check_file_size(name, len(data), MAX_BATCH_FILE_BYTES, "CIFAR-10 batch file")
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
