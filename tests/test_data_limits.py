"""Hostile and unlucky data paths: sizes are checked before anything is decoded or read, and a
``--data`` that is not a file or folder is refused without being opened (issue 10)."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xaikit.data import decode
from xaikit.data.cifar10 import load_cifar10
from xaikit.errors import DataError

CLASSES = ("ant", "bee", "cat")
BIG = 16384  # a 16384x16384 RGB image decodes to 805 MB


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png(width: int = BIG, height: int = BIG) -> bytes:
    """A valid all-black RGB PNG of ``width x height`` pixels, built in milliseconds.

    Compressing 805 MB of zeros takes seconds, so one band of 64 rows is compressed once with a
    full flush (byte-aligned, no reference to earlier data) and the result repeated; the
    zlib checksum of ``n`` zero bytes is ``adler32 = (n mod 65521) << 16 | 1``. For 16384x16384
    the file is about 800 KB.
    """
    rows = 64
    assert height % rows == 0
    band = (b"\0" + b"\0" * 3 * width) * rows  # filter byte 0, then the row's RGB bytes
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = raw.compress(band) + raw.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    total = (1 + 3 * width) * height
    adler = struct.pack(">I", (total % 65521) << 16 | 1)
    stream = b"\x78\xda" + body * (height // rows) + end + adler
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def small_png(seed: int, size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_tree(root: Path, replace: dict[str, bytes] | None = None) -> Path:
    """An ImageFolder of 8x8 PNGs (2 train, 1 test per class); ``replace`` swaps some files."""
    seed = 0
    for split, count in (("train", 2), ("test", 1)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / split / cls / f"{i:04d}.png").write_bytes(small_png(seed))
                seed += 1
    for name, data in (replace or {}).items():
        (root / name).write_bytes(data)
    return root


def tar_of(tree: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz" if archive.name.endswith(".gz") else "w") as tar:
        tar.add(tree, arcname="cifar10")
    return archive


def tar_with_claimed_member(archive: Path, name: str, claimed_size: int) -> Path:
    """An archive whose first member's header claims ``claimed_size`` bytes (data cut short),
    as the start of a huge archive looks to a reader that checks the header first."""
    info = tarfile.TarInfo(name)
    info.size = claimed_size
    archive.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096)
    return archive


def data_error(path: Path | str, cache_dir: Path) -> str:
    with pytest.raises(DataError) as info:
        load_cifar10(str(path), cache_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAIKIT_DATA", raising=False)


# ---------------------------------------------------------------- image headers


def test_huge_png_is_a_real_png() -> None:
    data = huge_png(256, 128)
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (128, 256, 3) and not pixels.any()
    assert len(huge_png()) < 1_000_000


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": b"Exif\0\0"}),
     ("GIF", {}), ("BMP", {}), ("WEBP", {}), ("TIFF", {}), ("PPM", {})],
)
def test_image_header_matches_pil(fmt: str, options: dict) -> None:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(buffer, fmt, **options)
    kind, width, height = decode.image_header("x", buffer.getvalue())
    assert (width, height) == (40, 24)
    assert kind == fmt or fmt not in ("PNG", "JPEG")
    assert decode.decode_one_image("x", buffer.getvalue()).shape == (3, 24, 40)


def test_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    with pytest.raises(DataError, match=r"image big\.png is 16384x16384, over the limit"):
        decode.image_header("big.png", huge_png())
    with pytest.raises(DataError, match="over the limit of 16,777,216 pixels"):
        decode.decode_images([("a.png", small_png(0)), ("big.png", huge_png())])


def bmp_header(width: int, height: int) -> bytes:
    """The 54-byte header of a 24-bit BMP (no pixel data: PIL reads the size lazily)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + info


@pytest.mark.parametrize("side", [10_000, BIG])  # PIL warns above 89 M pixels, refuses at 179 M
def test_pil_decompression_bomb_is_one_line(side: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not escape
        pattern = r"^image b\.bmp is (larger than|\d+x\d+, over) the limit"
        with pytest.raises(DataError, match=pattern):
            decode.image_header("b.bmp", bmp_header(side, side))


def test_later_image_of_another_size_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = []
    real = decode.decode_one_image
    monkeypatch.setattr(
        decode, "decode_one_image", lambda name, *a: decoded.append(name) or real(name, *a)
    )
    with pytest.raises(DataError, match=r"c\.png is 9x8, a\.png is 8x8"):
        decode.decode_images([("a.png", small_png(0)), ("b.png", small_png(1)),
                              ("c.png", _resized_png(9, 8))])
    assert decoded == []


def _resized_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_header_that_lies_about_the_size() -> None:
    with pytest.raises(DataError, match="header gives 9x8 but it decodes to 8x8"):
        decode.decode_one_image("x.png", small_png(0), ("PNG", 9, 8))


# ---------------------------------------------------------------- sizes in data sources


@pytest.mark.parametrize("where", ["folder", "tar.gz"])
def test_16384_squared_png_is_refused_before_decoding(tmp_path: Path, where: str) -> None:
    tree = write_tree(tmp_path / "tree", {"train/bee/0001.png": huge_png()})
    path = tree if where == "folder" else tar_of(tree, tmp_path / "d.tar.gz")
    assert path.stat().st_size < 2_000_000 or where == "folder"
    message = data_error(path, tmp_path / "cache")
    assert "0001.png is 16384x16384, over the limit of 16,777,216 pixels" in message


def test_big_image_file_is_refused_before_reading(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree")
    with open(tree / "train" / "cat" / "0001.png", "r+b") as f:
        f.truncate(65 * 2**20)  # sparse: takes no disk
    message = data_error(tree, tmp_path / "cache")
    assert "image file" in message and "0001.png is 65 MiB, over the limit of 64 MiB" in message


def test_big_batch_file_is_refused_before_reading(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    meta = {b"label_names": [c.encode() for c in CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "wb") as f:
            f.truncate(600 * 2**20)  # sparse
    message = data_error(folder, tmp_path / "cache")
    assert "CIFAR-10 batch file" in message and "is 600 MiB, over the limit of 512 MiB" in message


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        ("cifar10/train/cat/0000.png", "image file cifar10/train/cat/0000.png in"),
        ("cifar-10-batches-py/data_batch_1",
         "CIFAR-10 batch file cifar-10-batches-py/data_batch_1 in"),
    ],
)
def test_big_archive_member_is_refused_from_its_header(
    tmp_path: Path, member: str, fragment: str
) -> None:
    archive = tar_with_claimed_member(tmp_path / "d.tar", member, 1536 * 2**20)
    message = data_error(archive, tmp_path / "cache")
    assert fragment in message and "is 1,536 MiB, over the limit" in message


MEMORY_SCRIPT = """
import json, resource, sys
from pathlib import Path
from xaikit.data.cifar10 import load_cifar10
from xaikit.errors import DataError
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
results = []
base = peak_mb()
for path in sys.argv[2:]:
    try:
        load_cifar10(path, Path(sys.argv[1]))
        message = None
    except DataError as exc:
        message = str(exc)
    results.append({"path": path, "message": message, "extra_mb": peak_mb() - base})
print(json.dumps(results))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_size_limits_keep_memory_small(tmp_path: Path) -> None:
    """The hostile inputs above, in a fresh process: none raises the peak memory by 200 MB
    (before the checks: 1.6 GB for the PNG, 600 MB for a batch file)."""
    tree = write_tree(tmp_path / "tree", {"train/ant/0000.png": huge_png()})
    archive = tar_of(tree, tmp_path / "d.tar.gz")
    batches = tmp_path / "b" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}, protocol=2))
    for name in ("data_batch_1", "test_batch"):
        with open(batches / name, "wb") as f:
            f.truncate(600 * 2**20)
    paths = [str(tree), str(archive), str(batches)]
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "cache"), *paths],
        capture_output=True, text=True, check=True, timeout=300,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for result in results:
        assert result["message"] and "over the limit" in result["message"], result
        assert result["extra_mb"] < 200, result


# ---------------------------------------------------------------- paths that are not data


def test_dev_null(tmp_path: Path) -> None:
    message = data_error("/dev/null", tmp_path / "cache")
    assert "/dev/null is a character device, not a file or folder" in message


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "data.tar.gz"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    message = data_error(fifo, tmp_path / "cache")
    assert "is a named pipe (FIFO), not a file or folder" in message


def test_fifo_inside_an_imagefolder_is_refused_without_opening_it(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree")
    os.mkfifo(tree / "train" / "cat" / "0002.png")
    message = data_error(tree, tmp_path / "cache")
    assert "0002.png is a named pipe (FIFO), not an image file" in message


def test_fifo_inside_a_batches_folder_is_never_opened(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}, protocol=2))
    os.mkfifo(folder / "data_batch_1")
    os.mkfifo(folder / "test_batch")
    message = data_error(folder, tmp_path / "cache")
    assert "not a recognised data layout" in message


@pytest.mark.parametrize("name", ["empty", "empty.tar", "empty.tar.gz"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    message = data_error(tmp_path / name, tmp_path / "cache")
    assert f"data file {tmp_path / name} is empty" in message and "ImageFolder" in message


@pytest.mark.parametrize("name", ["random.bin", "random.tar", "random.tar.gz", "notes.txt"])
def test_file_that_is_not_an_archive(tmp_path: Path, name: str) -> None:
    data = b"just some notes\n" if name.endswith(".txt") else np.random.default_rng(0).bytes(4096)
    (tmp_path / name).write_bytes(data)
    message = data_error(tmp_path / name, tmp_path / "cache")
    assert "not a recognised data layout" in message or "corrupt or truncated archive" in message
    assert not message.endswith(":")


@pytest.mark.parametrize("contents", ["nothing", "files", "one empty subfolder"])
def test_folder_without_cifar_data(tmp_path: Path, contents: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    if contents == "files":
        (folder / "readme.txt").write_text("hello")
        (folder / "image.png").write_bytes(small_png(0))
    elif contents == "one empty subfolder":
        (folder / "sub").mkdir()
    message = data_error(folder, tmp_path / "cache")
    assert "is not a recognised data layout; accepted:" in message


def test_dangling_link_in_an_imagefolder(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree")
    (tree / "train" / "cat" / "0002.png").symlink_to(tmp_path / "gone.png")
    message = data_error(tree, tmp_path / "cache")
    assert "cannot read" in message and "0002.png: No such file or directory" in message
