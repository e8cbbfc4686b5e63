"""The decoded-array cache never changes what is trained on, and never fails a command
(issue 10): a damaged cache file is detected (checksum, bundle checks), reported in one
warning and rebuilt; a cache that cannot be written (full disk, read-only folder) only warns."""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xaikit.data import cache, sources
from xaikit.data.cifar10 import load_cifar10
from xaikit.specs import DataBundle

CLASSES = ("ant", "bee", "cat")


def write_tree(root: Path) -> Path:
    """An ImageFolder of 8x8 PNGs: 3 classes, 2 train and 1 test image each."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}.png")
    return root


def cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "data cache" in str(w.message)]


def load(tree: Path, cache_dir: Path) -> tuple[DataBundle, list[str]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        bundle = load_cifar10(str(tree), cache_dir)
    return bundle, cache_warnings(record)


def assert_same(a: DataBundle, b: DataBundle) -> None:
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name
    assert (a.classes, a.mean, a.std, a.source, a.forbidden_augment) == (
        b.classes, b.mean, b.std, b.source, b.forbidden_augment)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAIKIT_DATA", raising=False)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path, DataBundle, Path]:
    """``(tree, cache_dir, first bundle, its cache file)`` after one load."""
    tree = write_tree(tmp_path / "tree")
    cache_dir = tmp_path / "cache"
    first, messages = load(tree, cache_dir)
    assert messages == []
    (file,) = (cache_dir / "arrays").iterdir()
    return tree, cache_dir, first, file


# ---------------------------------------------------------------- ways to damage a cache file


def storage_offset(file: Path, numel_bytes: int) -> int:
    """Offset in ``file`` of the first byte of the tensor storage of ``numel_bytes`` bytes."""
    raw = file.read_bytes()
    with zipfile.ZipFile(file) as archive:
        (info,) = [i for i in archive.infolist() if "/data/" in i.filename
                   and i.file_size == numel_bytes]
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def flip_image_byte(file: Path, bundle: DataBundle) -> None:
    raw = bytearray(file.read_bytes())
    raw[storage_offset(file, bundle.train_images.numel()) + 100] ^= 0xFF
    file.write_bytes(bytes(raw))


def rewrite(file: Path, change: Callable[[dict], None], checksum: bool = False) -> None:
    stored = torch.load(file, weights_only=True)
    change(stored)
    if checksum:  # a consistent-looking file: only the bundle checks can tell
        stored["checksum"] = cache.payload_checksum(stored)
    torch.save(stored, file)


def shift_labels(stored: dict) -> None:
    stored["train_labels"] = (stored["train_labels"] + 1) % len(CLASSES)


def one_channel(stored: dict) -> None:
    for name in ("train_images", "test_images"):
        stored[name] = stored[name][:, :1].contiguous()
    stored["mean"], stored["std"] = stored["mean"][:1], stored["std"][:1]


def label_out_of_range(stored: dict) -> None:
    stored["test_labels"][0] = 7


def no_checksum(stored: dict) -> None:
    del stored["checksum"]


def truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


DAMAGE: dict[str, tuple[Callable[[Path, DataBundle], None], str]] = {
    "flipped image byte": (flip_image_byte, "checksum mismatch"),
    "shifted labels": (lambda f, b: rewrite(f, shift_labels), "checksum mismatch"),
    "one channel": (lambda f, b: rewrite(f, one_channel), "checksum mismatch"),
    "one channel, checksum redone": (
        lambda f, b: rewrite(f, one_channel, checksum=True), "expected [N, 3, H, W]"),
    "label out of range, checksum redone": (
        lambda f, b: rewrite(f, label_out_of_range, checksum=True), "test_labels must be in 0..2"),
    "no checksum": (lambda f, b: rewrite(f, no_checksum), "checksum mismatch"),
    "truncated": (lambda f, b: truncate(f), "unreadable data cache"),
    "not a torch file": (lambda f, b: f.write_bytes(b"not a torch file"), "unreadable data cache"),
    "a list": (lambda f, b: torch.save([1, 2], f), "holds a list, not a dict"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_detected_and_rebuilt(
    built: tuple[Path, Path, DataBundle, Path], damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, cache_dir, first, file = built
    do_damage, reason = DAMAGE[damage]
    do_damage(file, first)

    second, messages = load(tree, cache_dir)
    assert len(messages) == 1, messages
    (message,) = messages
    assert str(file) in message and reason in message and "rebuilding it" in message
    assert "\n" not in message
    assert_same(second, first)

    def no_decoding(source: sources.Source) -> None:
        raise AssertionError("decoded again: the rebuilt cache was not written")

    monkeypatch.setattr(sources, "read_source", no_decoding)
    third, messages = load(tree, cache_dir)
    assert messages == [] and list((cache_dir / "arrays").iterdir()) == [file]
    assert_same(third, first)


def test_checksum_covers_every_field(built: tuple[Path, Path, DataBundle, Path]) -> None:
    *_, file = built
    stored = torch.load(file, weights_only=True)
    assert stored["version"] == cache.CACHE_FORMAT_VERSION == 2
    assert stored["checksum"] == cache.payload_checksum(stored)
    changes = {
        "train_images": lambda s: s["train_images"].view(-1)[0].add_(1),
        "train_labels as int32": lambda s: s.update(train_labels=s["train_labels"].int()),
        "test_images reshaped": lambda s: s.update(test_images=s["test_images"].view(3, 3, 4, 16)),
        "test_labels": lambda s: s["test_labels"].view(-1)[0].add_(1),
        "classes": lambda s: s.update(classes=["ant", "bee", "dog"]),
        "mean": lambda s: s.update(mean=[0.5, *s["mean"][1:]]),
        "std": lambda s: s.update(std=[0.5, *s["std"][1:]]),
        "source": lambda s: s.update(source="elsewhere"),
        "forbidden_augment": lambda s: s.update(forbidden_augment=["flip"]),
    }
    for name, change in changes.items():
        copy = torch.load(file, weights_only=True)
        change(copy)
        assert cache.payload_checksum(copy) != stored["checksum"], name


# ---------------------------------------------------------------- writes that fail only warn


def only_warns(tree: Path, cache_dir: Path, reason: str) -> DataBundle:
    bundle, messages = load(tree, cache_dir)
    assert len(messages) == 1, messages
    assert "could not write data cache" in messages[0] and reason in messages[0], messages
    assert "the data is used without it" in messages[0] and "\n" not in messages[0]
    arrays = cache_dir / "arrays"
    assert not arrays.is_dir() or list(arrays.iterdir()) == []  # no partial file, no temporary
    return bundle


def test_cache_folder_that_cannot_be_created_only_warns(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree")
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    bundle = only_warns(tree, tmp_path / "cache", "Not a directory")
    assert bundle.train_images.shape == (6, 3, 8, 8)


def test_read_only_cache_folder_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = write_tree(tmp_path / "tree")

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    only_warns(tree, tmp_path / "cache", "Permission denied")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_in_the_middle_of_torch_save_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file is a link to /dev/full, so the kernel itself answers ENOSPC to
    torch.save's writes (before: torch's RuntimeError took the command down)."""
    tree = write_tree(tmp_path / "tree")
    real_mkstemp = tempfile.mkstemp

    def onto_full_device(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", onto_full_device)
    only_warns(tree, tmp_path / "cache", "No space left on device")


def test_enospc_raised_by_a_write_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = write_tree(tmp_path / "tree")

    def half_then_full(payload: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a file")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", half_then_full)
    only_warns(tree, tmp_path / "cache", "No space left on device")


def test_stale_temporaries_of_killed_cache_writes_are_removed(
    built: tuple[Path, Path, DataBundle, Path]
) -> None:
    tree, cache_dir, _, file = built
    arrays = cache_dir / "arrays"
    old = arrays / f".{file.name}.abcd1234.tmp"
    young = arrays / f".{file.name}.wxyz5678.tmp"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    os.utime(old, (0, 0))
    file.write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="unreadable data cache"):
        load_cifar10(str(tree), cache_dir)
    assert sorted(p.name for p in arrays.iterdir()) == sorted([file.name, young.name])
