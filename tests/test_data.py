"""Tests of xaikit.data: sources, cache, errors, subsets, normalisation, augmentation, synthetic."""

from __future__ import annotations

import dataclasses
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from xaikit.data import (
    BatchAugment,
    balanced_subset,
    default_cache_dir,
    load_data,
    normalize,
)
from xaikit.data import sources
from xaikit.data.cifar10 import load_cifar10
from xaikit.data.synthetic import load_synthetic
from xaikit.errors import DataError, UnknownNameError
from xaikit.specs import DataBundle, Recipe

CLASSES = ["bee", "ant", "cat"]  # on disk in this order; loaders must sort them
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------- fixtures: fake sources


def write_batches(folder: Path, per_batch: int = 6, batches: int = 2, seed: int = 0) -> dict:
    """A fake ``cifar-10-batches-py`` folder in the real pickle format; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]
    arrays = {}
    for name in names:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 3, size=per_batch)]
        arrays[name] = (data, labels)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return arrays


def write_imagefolder(root: Path, suffix: str = ".png", size: int = 8, seed: int = 0) -> dict:
    """A tiny ImageFolder (3 classes; 2 train and 1 test image each); returns the pixels."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for split, count in (("train", 2), ("test", 1)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                array = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                file = root / split / cls / f"{i:04d}{suffix}"
                Image.fromarray(array).save(file)
                pixels[(split, cls, i)] = array
    (root / "train" / "ant" / ".DS_Store").write_bytes(b"junk")  # ignored: hidden
    (root / "train" / "ant" / "notes.txt").write_text("ignored: not an image")
    return pixels


def write_tar(tree: Path, archive: Path, top: str | None) -> Path:
    """Pack the children of ``tree`` into ``archive``, under folder ``top`` or at top level."""
    mode = "w:gz" if archive.name.endswith(".gz") else "w"
    with tarfile.open(archive, mode) as tar:
        if top is None:
            for child in sorted(tree.iterdir()):
                tar.add(child, arcname=child.name)
        else:
            tar.add(tree, arcname=top)
    return archive


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_synthetic(None, Path("unused"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAIKIT_DATA", raising=False)


def expected_batches(arrays: dict) -> tuple[torch.Tensor, torch.Tensor]:
    train = [arrays[n] for n in sorted(arrays) if n.startswith("data_batch")]
    images = torch.from_numpy(np.concatenate([d for d, _ in train])).view(-1, 3, 32, 32)
    labels = torch.tensor([label for _, ls in train for label in ls])
    return images, labels


# ---------------------------------------------------------------- sources


def test_batches_folder_gives_exact_arrays_and_stats(tmp_path: Path, cache_dir: Path) -> None:
    arrays = write_batches(tmp_path / "cifar-10-batches-py")
    bundle = load_cifar10(str(tmp_path / "cifar-10-batches-py"), cache_dir)
    images, labels = expected_batches(arrays)
    assert torch.equal(bundle.train_images, images)
    assert torch.equal(bundle.train_labels, labels) and bundle.train_labels.dtype == torch.int64
    test_data, test_labels = arrays["test_batch"]
    assert torch.equal(bundle.test_images, torch.from_numpy(test_data).view(-1, 3, 32, 32))
    assert bundle.test_labels.tolist() == test_labels
    assert bundle.classes == CLASSES  # batches.meta order, not sorted
    as_float = images.double() / 255
    assert bundle.mean == pytest.approx(as_float.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    std = as_float.std(dim=(0, 2, 3), unbiased=False)
    assert bundle.std == pytest.approx(std.tolist(), abs=1e-9)
    assert "CIFAR-10 python batches" in bundle.source and "12 train / 6 test" in bundle.source


def test_folder_holding_a_batches_folder(tmp_path: Path, cache_dir: Path) -> None:
    write_batches(tmp_path / "data" / "cifar-10-batches-py")
    assert load_cifar10(str(tmp_path / "data"), cache_dir).train_images.shape == (12, 3, 32, 32)


@pytest.mark.parametrize("top", [None, "cifar-10-batches-py"])
def test_batches_archive(tmp_path: Path, cache_dir: Path, top: str | None) -> None:
    arrays = write_batches(tmp_path / "tree")
    archive = write_tar(tmp_path / "tree", tmp_path / "cifar-10-python.tar.gz", top)
    bundle = load_cifar10(str(archive), cache_dir)
    assert torch.equal(bundle.train_images, expected_batches(arrays)[0])
    assert "archive" in bundle.source


def test_imagefolder_png_is_exact_and_classes_sorted(tmp_path: Path, cache_dir: Path) -> None:
    pixels = write_imagefolder(tmp_path / "tree", ".png")
    bundle = load_cifar10(str(tmp_path / "tree"), cache_dir)
    assert bundle.classes == sorted(CLASSES)
    assert bundle.train_images.shape == (6, 3, 8, 8) and bundle.train_images.dtype == torch.uint8
    assert bundle.train_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert bundle.test_labels.tolist() == [0, 1, 2]
    expected = torch.from_numpy(pixels[("train", "bee", 1)]).permute(2, 0, 1)
    assert torch.equal(bundle.train_images[3], expected)
    assert "ImageFolder tree" in bundle.source


@pytest.mark.parametrize("name", ["tree.tar", "tree.tar.gz"])
@pytest.mark.parametrize("top", [None, "cifar10"])
def test_imagefolder_archive(tmp_path: Path, cache_dir: Path, name: str, top: str | None) -> None:
    pixels = write_imagefolder(tmp_path / "tree", ".jpg", size=16)
    bundle = load_cifar10(str(write_tar(tmp_path / "tree", tmp_path / name, top)), cache_dir)
    assert bundle.classes == sorted(CLASSES)
    assert bundle.train_images.shape == (6, 3, 16, 16)
    assert bundle.test_images.shape == (3, 3, 16, 16)
    direct = np.array(Image.open(tmp_path / "tree" / "test" / "cat" / "0000.jpg").convert("RGB"))
    assert torch.equal(bundle.test_images[2], torch.from_numpy(direct).permute(2, 0, 1))
    assert np.abs(direct.astype(int) - pixels[("test", "cat", 0)]).mean() > 0  # lossy, decoded


def test_xaikit_data_env_is_the_default_path(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_imagefolder(tmp_path / "tree")
    monkeypatch.setenv("XAIKIT_DATA", str(tmp_path / "tree"))
    assert load_cifar10(None, cache_dir).classes == sorted(CLASSES)


def test_default_source_offline_is_one_line_data_error(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.utils

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        load_cifar10(None, cache_dir)
    message = str(info.value)
    assert "--data PATH" in message and "XAIKIT_DATA" in message and "\n" not in message


def test_default_source_uses_an_existing_torchvision_copy(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.utils

    write_batches(cache_dir / "torchvision" / "cifar-10-batches-py")
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", None)
    bundle = load_cifar10(None, cache_dir)
    assert bundle.train_images.shape == (12, 3, 32, 32) and "torchvision" in bundle.source


# ---------------------------------------------------------------- cache


def test_second_load_comes_from_the_cache(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_imagefolder(tmp_path / "tree")
    archive = write_tar(tmp_path / "tree", tmp_path / "d.tar.gz", "top")
    first = load_cifar10(str(archive), cache_dir)
    files = list((cache_dir / "arrays").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    torch.load(files[0], weights_only=True)  # loadable without executing code

    def no_decoding(source: sources.Source) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(sources, "read_source", no_decoding)
    second = load_cifar10(str(archive), cache_dir)
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)
    assert (first.classes, first.mean, first.std, first.source) == (
        second.classes, second.mean, second.std, second.source)


def test_cache_is_rebuilt_when_the_source_changes(tmp_path: Path, cache_dir: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    archive = write_tar(tmp_path / "tree", tmp_path / "d.tar", None)
    first = load_cifar10(str(archive), cache_dir)
    write_imagefolder(tmp_path / "tree", seed=1)
    write_tar(tmp_path / "tree", archive, None)
    os.utime(archive, ns=(0, 123_456_789))
    second = load_cifar10(str(archive), cache_dir)
    assert not torch.equal(first.train_images, second.train_images)


def test_damaged_cache_file_is_rebuilt(tmp_path: Path, cache_dir: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    first = load_cifar10(str(tmp_path / "tree"), cache_dir)
    (cache_file,) = (cache_dir / "arrays").iterdir()
    cache_file.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable data cache"):
        second = load_cifar10(str(tmp_path / "tree"), cache_dir)
    assert torch.equal(first.train_images, second.train_images)


# ---------------------------------------------------------------- errors


def assert_one_line_data_error(path: Path | str, cache_dir: Path, *fragments: str) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(str(path), cache_dir)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_path(tmp_path: Path, cache_dir: Path) -> None:
    assert_one_line_data_error(tmp_path / "nope", cache_dir, "does not exist")


def test_unrecognised_folder_lists_the_layouts(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert_one_line_data_error(
        tmp_path, cache_dir, "not a recognised", "ImageFolder", "cifar-10-batches-py"
    )


def test_file_that_is_not_an_archive(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_data_error(tmp_path / "notes.txt", cache_dir, "not a recognised", ".tar")


def test_archive_without_a_known_layout(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x.png").write_bytes(b"")
    archive = write_tar(tmp_path / "tree", tmp_path / "x.tar", None)
    assert_one_line_data_error(archive, cache_dir, "no recognised data layout")


def test_truncated_archive_names_the_member(tmp_path: Path, cache_dir: Path) -> None:
    write_imagefolder(tmp_path / "tree", size=32)
    archive = write_tar(tmp_path / "tree", tmp_path / "d.tar.gz", "top")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    assert_one_line_data_error(archive, cache_dir, "corrupt or truncated archive", "at member top/")


def test_undecodable_image_is_named(tmp_path: Path, cache_dir: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    (tmp_path / "tree" / "train" / "cat" / "0001.png").write_bytes(b"\x89PNG not really")
    assert_one_line_data_error(tmp_path / "tree", cache_dir, "cannot decode image", "cat/0001.png")


def test_corrupt_batch_is_named(tmp_path: Path, cache_dir: Path) -> None:
    write_batches(tmp_path / "b")
    (tmp_path / "b" / "data_batch_2").write_bytes(b"\x80\x02garbage")
    assert_one_line_data_error(tmp_path / "b", cache_dir, "data_batch_2")


def test_batch_pickle_cannot_run_code(tmp_path: Path, cache_dir: Path) -> None:
    write_batches(tmp_path / "b")
    (tmp_path / "b" / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd}, protocol=2))
    assert_one_line_data_error(tmp_path / "b", cache_dir, "test_batch", "not allowed")


def test_images_of_different_sizes(tmp_path: Path, cache_dir: Path) -> None:
    write_imagefolder(tmp_path / "tree", size=8)
    Image.new("RGB", (9, 8)).save(tmp_path / "tree" / "train" / "cat" / "0001.png")
    assert_one_line_data_error(tmp_path / "tree", cache_dir, "not all the same size", "0001.png")


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_split(tmp_path: Path, cache_dir: Path, split: str) -> None:
    write_imagefolder(tmp_path / "tree")
    for image in (tmp_path / "tree" / split).rglob("*.png"):
        image.unlink()
    assert_one_line_data_error(tmp_path / "tree", cache_dir, f"{split} split", "no images")


def test_synthetic_takes_no_path(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        load_synthetic(str(tmp_path), tmp_path)


# ---------------------------------------------------------------- registry, helpers


def test_load_data_goes_through_the_registry(plugin_manager: object, tmp_path: Path) -> None:
    bundle = load_data("synthetic", None, tmp_path)
    assert bundle.train_images.shape == (2000, 3, 32, 32) and len(bundle.classes) == 10
    with pytest.raises(UnknownNameError):
        load_data("no-such-dataset", None, tmp_path)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XAIKIT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("XAIKIT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "xaikit"


def test_synthetic_is_deterministic_and_balanced(synthetic: DataBundle, tmp_path: Path) -> None:
    a, b = synthetic, load_synthetic(None, tmp_path)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert a.train_images.dtype == torch.uint8 and a.train_images.shape == (2000, 3, 32, 32)
    assert torch.bincount(a.train_labels).tolist() == [200] * 10
    assert torch.bincount(a.test_labels).tolist() == [50] * 10
    assert len(set(a.classes)) == 10 and all(" " in name for name in a.classes)
    assert not torch.equal(a.train_images[:500], a.test_images)


@pytest.mark.parametrize("n", [10, 25, 137])
def test_balanced_subset_counts(synthetic: DataBundle, n: int) -> None:
    full = synthetic
    subset = balanced_subset(full, n, seed=3)
    train_counts = torch.bincount(subset.train_labels, minlength=10)
    assert int(train_counts.sum()) == n and int(train_counts.max() - train_counts.min()) <= 1
    test_counts = torch.bincount(subset.test_labels, minlength=10)
    assert int(test_counts.sum()) == max(n // 5, 10)
    assert int(test_counts.max() - test_counts.min()) <= 1
    assert subset.source == f"{full.source} (subset {n})"
    assert subset.mean == full.mean
    picked = subset.train_images.flatten(1)
    assert all((full.train_images.flatten(1) == row).all(1).any() for row in picked[:5])
    assert torch.equal(balanced_subset(full, n, seed=3).train_images, subset.train_images)


def test_balanced_subset_spreads_a_small_class(synthetic: DataBundle) -> None:
    keep = (synthetic.train_labels != 0) | (torch.arange(2000) < 40)  # class 0 keeps only a few
    full = dataclasses.replace(
        synthetic,
        train_images=synthetic.train_images[keep],
        train_labels=synthetic.train_labels[keep],
    )
    small = int((full.train_labels == 0).sum())
    counts = torch.bincount(balanced_subset(full, 10 * small + 50).train_labels, minlength=10)
    assert counts[0] == small and int(counts.sum()) == 10 * small + 50
    assert int(counts[1:].max() - counts[1:].min()) <= 1


@pytest.mark.parametrize("n", [9, 2001])
def test_balanced_subset_bad_size(synthetic: DataBundle, n: int) -> None:
    with pytest.raises(DataError):
        balanced_subset(synthetic, n)


@pytest.mark.parametrize("device", DEVICES)
def test_normalize(device: str) -> None:
    images = torch.tensor([0, 51, 255], dtype=torch.uint8, device=device).view(1, 3, 1, 1)
    out = normalize(images, (0.0, 0.2, 0.5), (1.0, 0.5, 0.25))
    assert out.dtype == torch.float32 and out.device.type == device
    assert out.flatten().tolist() == pytest.approx([0.0, 0.0, 2.0])
    as_tensors = normalize(images, torch.tensor([0.0, 0.2, 0.5]), torch.tensor([1.0, 0.5, 0.25]))
    assert torch.equal(as_tensors, out)
    with pytest.raises(ValueError):
        normalize(images.float(), (0.0,) * 3, (1.0,) * 3)


# ---------------------------------------------------------------- augmentation


def seeded(device: str, seed: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch(device: str, b: int = 16, size: int = 32) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device) + 0.5


@pytest.mark.parametrize("device", DEVICES)
def test_augment_keeps_shape_dtype_device(device: str) -> None:
    x = batch(device).half() if device == "cuda" else batch(device)
    out = BatchAugment()(x, torch.Generator(device=device).manual_seed(0))
    assert (out.shape, out.dtype, out.device) == (x.shape, x.dtype, x.device)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("device", DEVICES)
def test_flip_only_flips_or_keeps_each_image(device: str) -> None:
    x = batch(device, b=64)
    out = BatchAugment(crop_padding=0, flip=True, cutout=0)(x, seeded(device))
    kept = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert bool((kept | flipped).all()) and kept.any() and flipped.any()


@pytest.mark.parametrize("device", DEVICES)
def test_crop_takes_a_window_of_the_reflect_padded_image(device: str) -> None:
    x = batch(device, b=8, size=12)
    out = BatchAugment(crop_padding=2, flip=False, cutout=0)(x, seeded(device))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets_seen = set()
    for i in range(len(x)):
        matches = [(oy, ox) for oy in range(5) for ox in range(5)
                   if torch.equal(out[i], padded[i, :, oy:oy + 12, ox:ox + 12])]
        assert len(matches) == 1
        offsets_seen.add(matches[0])
    assert any(oy != ox for oy, ox in offsets_seen)  # rows and columns drawn independently


@pytest.mark.parametrize("device", DEVICES)
def test_cutout_zeroes_one_square_per_image(device: str) -> None:
    x = batch(device, b=64)
    out = BatchAugment(crop_padding=0, flip=False, cutout=8)(x, seeded(device))
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same square in every channel
    assert torch.equal(out[~zero], x[~zero])
    full_squares = 0
    for mask in zero[:, 0].cpu():
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert rows.tolist() == list(range(rows[0], rows[-1] + 1))  # contiguous
        assert int(mask.sum()) == len(rows) * len(cols)  # a rectangle
        touches_border = rows[0] == 0 or cols[0] == 0 or rows[-1] == 31 or cols[-1] == 31
        assert touches_border or (len(rows), len(cols)) == (8, 8)
        full_squares += (len(rows), len(cols)) == (8, 8)
    assert full_squares > 0


@pytest.mark.parametrize("device", DEVICES)
def test_augment_is_reproducible_with_a_seeded_generator(device: str) -> None:
    x = batch(device)
    augment = BatchAugment()
    a = augment(x, torch.Generator(device=device).manual_seed(7))
    b = augment(x, torch.Generator(device=device).manual_seed(7))
    c = augment(x, torch.Generator(device=device).manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_from_recipe() -> None:
    augment = BatchAugment.from_recipe(Recipe(augment=("flip",), crop_padding=3, cutout=5))
    assert (augment.crop_padding, augment.flip, augment.cutout) == (0, True, 0)
    augment = BatchAugment.from_recipe(Recipe())
    assert (augment.crop_padding, augment.flip, augment.cutout) == (4, True, 8)
    with pytest.raises(ValueError):
        BatchAugment.from_recipe(Recipe(augment=("rotate",)))
    x = batch("cpu")
    assert BatchAugment.from_recipe(Recipe(augment=()))(x) is x
