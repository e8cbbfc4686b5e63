"""A user's own image files as model input: ``xaikit explain RUN --image cat.jpg``."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from xaikit.errors import DataError

MAX_PIXELS = 8192 * 8192
"""Larger images are refused from their header, before any pixel is decoded."""


def read_image_files(paths: Sequence[str | Path], shape: Sequence[int]) -> torch.Tensor:
    """Decode image files (any format PIL reads, any size and mode) as ``uint8 [N, C, H, W]``.

    Each image is converted to RGB (``L`` for a one-channel model) and resized to ``H x W``
    with PIL's bilinear filter (antialiased when shrinking); an image already ``H x W`` is
    left as it is, as the run's own data was.

    Args:
        paths: The files.
        shape: The model's input ``(C, H, W)``.

    Raises:
        DataError: a missing or unreadable file, not an image, or larger than
            :data:`MAX_PIXELS` (one line naming the file).
    """
    channels, height, width = (int(v) for v in shape)
    if channels not in (1, 3):
        raise DataError(f"image files can feed a model of 1 or 3 channels, not {channels}")
    mode = "RGB" if channels == 3 else "L"
    decoded = []
    for path in map(Path, paths):
        try:
            info = path.stat()
        except OSError as exc:
            raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"image {path} is not a regular file")
        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise DataError(
                        f"image {path} is {image.width}x{image.height}, larger than "
                        f"{MAX_PIXELS:,} pixels"
                    )
                image = image.convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{path} is not an image xaikit can read ({first})") from None
        if array.ndim == 2:
            array = array[:, :, None]
        decoded.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    if not decoded:
        raise DataError("no image files given")
    return torch.stack(decoded)
