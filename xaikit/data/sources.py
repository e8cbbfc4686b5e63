"""Offline data sources: where the images are and how to read them.

Accepted layouts (a folder, or a ``.tar``/``.tar.gz`` holding one, with or without a top
folder):

* CIFAR-10 python version: ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and
  ``batches.meta`` (a ``cifar-10-batches-py`` folder, or a folder containing one);
* ImageFolder: ``train/<class>/<image>`` and ``test/<class>/<image>``; classes are the
  sorted names of the train class folders (for CIFAR-10 this is the official order).

Archives are read straight from the file in one sequential pass; nothing is extracted.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from xaikit.data import decode
from xaikit.errors import DataError

ACCEPTED_LAYOUTS = (
    "a cifar-10-batches-py folder (or a folder holding one), an ImageFolder tree with "
    "train/ and test/ class folders, or a .tar/.tar.gz of either"
)
BATCHES_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCH = re.compile(r"data_batch_(\d+)$")
_BATCH_FILES = ("test_batch", "batches.meta")
_SPLITS = ("train", "test")
_BATCH = "CIFAR-10 batch file"
_IMAGE = "image file"


@dataclass(frozen=True)
class Source:
    """A located data source.

    Attributes:
        path: Absolute path of the layout folder or of the archive.
        kind: ``"batches"`` or ``"imagefolder"`` (folders), or ``"archive"``.
        description: Where the data is, e.g. ``"archive /data/cifar10.tar.gz"``; the
            bundle's ``source`` is ``"<layout> in <description> (<counts>)"``.
    """

    path: Path
    kind: str
    description: str

    def fingerprint(self) -> str:
        """Identity of the source's contents: path, sizes and modification times."""
        digest = hashlib.sha256(f"{self.kind}|{self.path}".encode())
        if self.kind == "archive":
            files = [(str(self.path), _stat(self.path))]
        elif self.kind == "batches":
            files = [(str(p), _stat(p)) for p in _batch_files(self.path)]
        else:
            files = _walk_files(self.path)
        for file, st in files:
            name = Path(file).relative_to(self.path.parent)
            digest.update(f"\n{name}|{st.st_size}|{st.st_mtime_ns}".encode())
        return digest.hexdigest()


@dataclass
class DecodedSplits:
    """Decoded images of both splits, before statistics are computed."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    layout: str  # "CIFAR-10 python batches" or "ImageFolder tree"


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    """``"a named pipe (FIFO)"``... for what is neither a regular file nor a folder."""
    return next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")


def _stat(path: Path | str) -> os.stat_result:
    """``os.stat`` (following symbolic links), an ``OSError`` as one ``DataError`` line."""
    try:
        return os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or decode.first_line(exc)}") from None


def _list_folder(folder: Path) -> list[Path]:
    """The entries of ``folder``, sorted; an ``OSError`` as one ``DataError`` line."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read {folder}: {exc.strerror or decode.first_line(exc)}") from None


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _batch_files(folder: Path) -> list[Path]:
    """The regular files of a batches folder (a FIFO or device among them is never opened)."""
    return [p for p in _list_folder(folder) if _is_regular(p)]


def _walk_files(root: Path) -> list[tuple[str, os.stat_result]]:
    """Image files of an ImageFolder tree with their ``stat``, sorted (train/test, class, file).

    Raises:
        DataError: A file with an image suffix is not a regular file (a FIFO, a device, a
            dangling link): it is never opened, since reading it could block or never end.
    """
    found = []
    for split in _SPLITS:
        for dirpath, dirnames, filenames in os.walk(root / split):
            dirnames[:] = sorted(d for d in dirnames if _visible(d))
            for name in sorted(filenames):
                if _visible(name) and name.lower().endswith(decode.IMAGE_SUFFIXES):
                    file = os.path.join(dirpath, name)
                    st = _stat(file)
                    if not stat.S_ISREG(st.st_mode):
                        raise DataError(f"{file} is {_kind(st.st_mode)}, not an image file")
                    found.append((file, st))
    return found


def _read_file(path: Path | str, size: int, limit: int, what: str) -> bytes:
    """The bytes of a regular file of ``size`` bytes, refused unread if over ``limit``."""
    decode.check_file_size(str(path), size, limit, what)
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or decode.first_line(exc)}") from None


def is_batches_folder(folder: Path) -> bool:
    """Whether ``folder`` holds CIFAR-10 python batches (``test_batch`` and a ``data_batch_N``)."""
    if not _is_regular(folder / "test_batch"):
        return False
    return any(_TRAIN_BATCH.match(p.name) for p in _batch_files(folder))


def resolve_source(path: Path, description: str | None = None) -> Source:
    """Locate the data behind a user's ``--data`` path.

    Only a regular file (an archive) or a folder is accepted; ``/dev/null``, a FIFO or a
    socket is refused from its ``stat`` without being opened, so nothing blocks.

    Raises:
        DataError: The path does not exist, cannot be read, is an empty file or neither a
            file nor a folder, or holds none of the accepted layouts.
    """
    try:
        path = Path(path).expanduser().resolve()  # "../x" and symlinks share one cache entry
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unknown "~user"
        raise DataError(f"data path {path}: {decode.first_line(exc)}") from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"data path {path} does not exist; expected {ACCEPTED_LAYOUTS}") from None
    except OSError as exc:
        reason = exc.strerror or decode.first_line(exc)
        raise DataError(f"cannot read data path {path}: {reason}") from None
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise DataError(f"data file {path} is empty; expected {ACCEPTED_LAYOUTS}")
        return Source(path, "archive", description or f"archive {path}")
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(
            f"data path {path} is {_kind(st.st_mode)}, not a file or folder; "
            f"expected {ACCEPTED_LAYOUTS}"
        )
    candidates = [path, path / BATCHES_FOLDER]
    subfolders = [p for p in _list_folder(path) if _visible(p.name) and _is_folder(p)]
    if len(subfolders) == 1:
        candidates.append(subfolders[0])
    for folder in candidates:
        if _is_folder(folder) and is_batches_folder(folder):
            return Source(folder, "batches", description or f"folder {folder}")
        if all(_is_folder(folder / split) for split in _SPLITS):
            return Source(folder, "imagefolder", description or f"folder {folder}")
    raise DataError(f"{path} is not a recognised data layout; accepted: {ACCEPTED_LAYOUTS}")


def read_source(source: Source) -> DecodedSplits:
    """Read and decode every image of ``source`` (the slow path that the cache avoids)."""
    if source.kind == "batches":
        files = {
            p.name: (str(p), _read_file(p, _stat(p).st_size, decode.MAX_BATCH_FILE_BYTES, _BATCH))
            for p in _batch_files(source.path)
            if p.name in _BATCH_FILES or _TRAIN_BATCH.match(p.name)
        }
        return _assemble_batches(files, str(source.path))
    if source.kind == "imagefolder":
        entries = []
        for file, st in _walk_files(source.path):
            parts = Path(file).relative_to(source.path).parts
            if len(parts) == 3:  # split/class/file; deeper files are ignored
                data = _read_file(file, st.st_size, decode.MAX_IMAGE_FILE_BYTES, _IMAGE)
                entries.append((parts[0], parts[1], file, data))
        return _assemble_imagefolder(entries, str(source.path))
    return _read_archive(source.path)


def _assemble_batches(files: dict[str, tuple[str, bytes]], where: str) -> DecodedSplits:
    """Build splits from ``{basename: (member name, bytes)}`` of a batches folder."""
    if "batches.meta" not in files:
        raise DataError(f"CIFAR-10 batches in {where} lack batches.meta (the class names)")
    classes = decode.read_cifar_meta(*files["batches.meta"])
    train_names = sorted(
        (n for n in files if _TRAIN_BATCH.match(n)), key=lambda n: int(_TRAIN_BATCH.match(n)[1])
    )
    train = [decode.read_cifar_batch(*files[n]) for n in train_names]
    test_images, test_labels = decode.read_cifar_batch(*files["test_batch"])
    return DecodedSplits(
        torch.cat([images for images, _ in train]),
        torch.cat([labels for _, labels in train]),
        test_images,
        test_labels,
        classes,
        "CIFAR-10 python batches",
    )


def _assemble_imagefolder(entries: list[tuple[str, str, str, bytes]], where: str) -> DecodedSplits:
    """Build splits from ``(split, class, member name, bytes)`` entries of an ImageFolder."""
    classes = sorted({cls for split, cls, _, _ in entries if split == "train"})
    if not classes:
        raise DataError(f"the train split of {where} has no images")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({cls for split, cls, _, _ in entries if split == "test"} - set(index))
    if unknown:
        raise DataError(f"test classes of {where} missing from train: {', '.join(unknown)}")
    decoded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split in _SPLITS:
        items = sorted((index[c], name, data) for s, c, name, data in entries if s == split)
        if not items:
            raise DataError(f"the {split} split of {where} has no images")
        images = decode.decode_images([(name, data) for _, name, data in items])
        decoded[split] = images, torch.tensor([label for label, _, _ in items], dtype=torch.int64)
    if decoded["train"][0].shape[1:] != decoded["test"][0].shape[1:]:
        sizes = [f"{s} {decoded[s][0].shape[3]}x{decoded[s][0].shape[2]}" for s in _SPLITS]
        raise DataError(f"images are not all the same size in {where}: {', '.join(sizes)}")
    return DecodedSplits(*decoded["train"], *decoded["test"], classes, "ImageFolder tree")


def _read_archive(path: Path) -> DecodedSplits:
    """One sequential pass over a tar archive, keeping only members of a known layout."""
    batch_files: dict[tuple[str, ...], dict[str, tuple[str, bytes]]] = {}
    images: dict[tuple[str, ...], list[tuple[str, str, str, bytes]]] = {}
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # permission, I/O error...
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
        if ".tar" in path.name or path.suffix in (".tgz", ".gz"):
            reason = decode.first_line(exc).rstrip(":")
            raise DataError(f"corrupt or truncated archive {path}: {reason}") from None
        raise DataError(
            f"{path} is not a recognised data layout (not a .tar/.tar.gz archive); "
            f"accepted: {ACCEPTED_LAYOUTS}"
        ) from None
    member_name = ""
    try:
        with archive:
            for member in archive:
                member_name = member.name
                parts = tuple(p for p in PurePosixPath(member.name).parts if p not in ("/", "."))
                if not member.isfile() or not parts or not all(_visible(p) for p in parts):
                    continue
                base = parts[-1]
                if base in _BATCH_FILES or _TRAIN_BATCH.match(base):
                    decode.check_file_size(
                        f"{member.name} in {path}", member.size, decode.MAX_BATCH_FILE_BYTES, _BATCH
                    )
                    data = archive.extractfile(member).read()
                    batch_files.setdefault(parts[:-1], {})[base] = (member.name, data)
                elif (
                    len(parts) >= 3
                    and parts[-3] in _SPLITS
                    and base.lower().endswith(decode.IMAGE_SUFFIXES)
                ):
                    decode.check_file_size(
                        f"{member.name} in {path}", member.size, decode.MAX_IMAGE_FILE_BYTES, _IMAGE
                    )
                    data = archive.extractfile(member).read()
                    entry = (parts[-3], parts[-2], member.name, data)
                    images.setdefault(parts[:-3], []).append(entry)
            member_name = ""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        where = f" at member {member_name}" if member_name else ""
        reason = decode.first_line(exc)
        raise DataError(f"corrupt or truncated archive {path}{where}: {reason}") from None
    batch_sets = {k: v for k, v in batch_files.items() if "test_batch" in v}
    if batch_sets:
        return _assemble_batches(_only_one(batch_sets, path), f"archive {path}")
    if images:
        return _assemble_imagefolder(_only_one(images, path), f"archive {path}")
    raise DataError(f"archive {path} holds no recognised data layout; accepted: {ACCEPTED_LAYOUTS}")


def _only_one(trees: dict, path: Path):
    if len(trees) > 1:
        tops = ", ".join(sorted("/".join(k) + "/" if k else "(top level)" for k in trees))
        raise DataError(f"archive {path} holds several data trees ({tops}); keep only one")
    return next(iter(trees.values()))
