"""CIFAR-10 (Krizhevsky, 2009): 60,000 32x32 colour images in 10 classes, 50,000 train and
10,000 test.

Sources, in order: the ``path`` argument (the CLI's ``--data``), else ``$XAIKIT_DATA``, else
torchvision's download into ``cache_dir / "torchvision"``. A path may be a
``cifar-10-batches-py`` folder, an ImageFolder tree or a ``.tar``/``.tar.gz`` of either
(see ``xaikit.data.sources``). Decoded arrays are cached under ``cache_dir / "arrays"``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

from xaikit.data import bundle as bundle_lib
from xaikit.data import cache, decode, sources
from xaikit.errors import DataError
from xaikit.specs import DataBundle

DATA_ENV = "XAIKIT_DATA"
DOWNLOAD_TIMEOUT_S = 60.0


def _download_with_torchvision(root: Path) -> None:
    """Fetch and unpack the official python version into ``root`` (torchvision's mirror)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torchvision prints progress
            download_and_extract_archive(
                CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
            )
    except Exception as exc:  # offline, proxy, disk full, bad checksum...
        raise DataError(
            f"cannot download CIFAR-10 with torchvision ({decode.first_line(exc)}); "
            f"pass --data PATH or set {DATA_ENV} to a local copy"
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def torchvision_source(cache_dir: Path) -> sources.Source:
    """The torchvision copy under ``cache_dir / "torchvision"``, downloading it if absent."""
    root = Path(cache_dir).expanduser().resolve() / "torchvision"
    folder = root / sources.BATCHES_FOLDER
    if not (folder.is_dir() and sources.is_batches_folder(folder)):
        _download_with_torchvision(root)
    return sources.resolve_source(folder, description=f"torchvision download {folder}")


def load_source(source: sources.Source, cache_dir: Path) -> DataBundle:
    """Decode ``source`` once; later calls load the cached arrays."""

    def build() -> DataBundle:
        splits = sources.read_source(source)
        description = (
            f"{splits.layout} in {source.description} ({splits.train_images.shape[0]:,} train / "
            f"{splits.test_images.shape[0]:,} test)"
        )
        return bundle_lib.make_bundle(
            splits.train_images,
            splits.train_labels,
            splits.test_images,
            splits.test_labels,
            splits.classes,
            description,
        )

    file = cache.cache_file(Path(cache_dir), source.fingerprint(), source.path.name)
    return cache.cached(file, build)


def load_cifar10(path: str | None, cache_dir: Path) -> DataBundle:
    """Load CIFAR-10 as uint8 tensors (``DatasetSpec.load`` of ``"cifar10"``).

    Args:
        path: A local copy (``--data``); ``None`` reads ``$XAIKIT_DATA``, and if that is unset
            too, uses torchvision's download into ``cache_dir / "torchvision"``.
        cache_dir: The xaikit cache folder.

    Raises:
        DataError: Missing path, unrecognised layout, corrupt archive or image, mixed image
            sizes, empty split, or a failed download (one line, saying what to do).
    """
    if path is None:
        path = os.environ.get(DATA_ENV) or None
    if path is None:
        source = torchvision_source(cache_dir)
    else:
        source = sources.resolve_source(Path(path))
    return load_source(source, cache_dir)
