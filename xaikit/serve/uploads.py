"""A user's uploaded image: size limit, type check, decoding as ``xaikit explain --image`` does.

The body is read in chunks and refused as soon as it passes the limit (HTTP 413), before it is
decoded. Only PNG and JPEG are taken, recognised by their first bytes, not by the name or the
content type the browser sends (415). The image is then decoded by
:func:`xaikit.images.read_image_files` -- any size and mode, converted to RGB (or greyscale) and
resized to each served model's input -- from a private temporary file; an image that cannot be
decoded is one line (422). Images over :data:`MAX_UPLOAD_PIXELS` are refused from their header,
before any pixel is decoded (413).
"""

from __future__ import annotations

import hashlib
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from xaikit.errors import DataError, XaikitError
from xaikit.images import read_image_files
from xaikit.serve.state import Upload

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
"""Default size limit of one upload (8 MiB)."""
MAX_UPLOAD_PIXELS = 4096 * 4096
"""Larger images are refused from their header (the model sees 32 x 32 pixels anyway)."""
MAX_NAME = 120

_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


class UploadError(XaikitError):
    """An upload the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def display_name(raw: str | None) -> str:
    """The file name the page sent (URL-encoded), as plain printable text of at most
    :data:`MAX_NAME` characters; ``"upload"`` when there is none."""
    name = urllib.parse.unquote(raw or "", errors="replace")
    name = "".join(c for c in name if c.isprintable()).strip()
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return (name[:MAX_NAME] or "upload")


def _mib(n: int) -> str:
    """A size for messages: ``64 KiB``, ``8.0 MiB``."""
    return f"{n / 1024:.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body, refused (413) once it passes ``limit`` bytes.

    Raises:
        UploadError: too large (by its Content-Length or while reading) or empty.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise UploadError(f"the upload is {_mib(int(declared))}; the limit is {_mib(limit)}", 413)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise UploadError(f"the upload is larger than the limit of {_mib(limit)}", 413)
    if not body:
        raise UploadError("the upload is empty; choose a PNG or JPEG image", 400)
    return bytes(body)


def upload_id(body: bytes) -> str:
    """The server-chosen id of an upload: ``u:`` and 16 hex digits of its SHA-256."""
    return "u:" + hashlib.sha256(body).hexdigest()[:16]


def decode_upload(body: bytes, name: str, shapes: Sequence[tuple[int, int, int]]) -> Upload:
    """Decode an uploaded PNG or JPEG for every model input shape in ``shapes``.

    Raises:
        UploadError: not a PNG or JPEG (415), too many pixels (413), cannot be decoded (422).
    """
    kind = next((k for magic, k in _MAGIC.items() if body.startswith(magic)), None)
    if kind is None:
        raise UploadError(f"{name!r} is not a PNG or JPEG image", 415)
    with tempfile.TemporaryDirectory(prefix="xaikit-upload-") as folder:
        path = Path(folder) / ("upload.png" if kind == "PNG" else "upload.jpg")
        path.write_bytes(body)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UploadError(f"{name!r} is not an image xaikit can read "
                              f"({_reason(exc, path, name)})", 422) from None
        if width * height > MAX_UPLOAD_PIXELS:
            raise UploadError(f"{name!r} is {width}x{height} pixels; the limit is "
                              f"{MAX_UPLOAD_PIXELS:,} pixels", 413)
        pixels = {}
        for shape in dict.fromkeys(shapes):
            try:
                pixels[shape] = read_image_files([path], shape)[0]
            except DataError as exc:
                raise UploadError(_plain(_named(str(exc), path, name)), 422) from None
    return Upload(name, width, height, pixels)


def _named(text: str, path: Path, name: str) -> str:
    """``text`` with the temporary file's path (quoted or not) replaced by the upload's name."""
    return text.replace(repr(str(path)), repr(name)).replace(str(path), repr(name))


def _reason(exc: BaseException, path: Path, name: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _plain(_named(text, path, name))


def _plain(text: str) -> str:
    return "".join(c for c in text if c.isprintable())
