"""Every bundle a data set plugin returns is checked by ``load_data``; a constant channel
normalises to finite values."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import xaikit
from xaikit.data import load_data, normalize, validate_bundle
from xaikit.data.bundle import channel_mean_std, make_bundle
from xaikit.errors import DataError
from xaikit.plugins import Distribution, PluginManager
from xaikit.specs import DataBundle, DatasetSpec

CONTEXT = "dataset 'my-data' (plugin myplugin, distribution xaikit-myplugin 0.1)"


def good_bundle() -> DataBundle:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(60) % 3
    return DataBundle(images[:40], labels[:40], images[40:], labels[40:], classes=["a", "b", "c"],
                      mean=(0.5,) * 3, std=(0.29,) * 3, source="noise")


def register_loader(pm: PluginManager, load: Callable[..., Any]) -> None:
    module = types.ModuleType("xaikit_myplugin")

    @xaikit.hookimpl
    def register_datasets(register):
        register(DatasetSpec("my-data", load))

    module.register_datasets = register_datasets
    pm.register(module, name="myplugin")
    pm.state.dists["myplugin"] = Distribution("xaikit-myplugin", "0.1")


def replaced(**changes: Any) -> DataBundle:
    return dataclasses.replace(good_bundle(), **changes)


BAD_BUNDLES = {
    "float images": (
        lambda: replaced(train_images=good_bundle().train_images.float()),
        "train_images must be uint8 [N, C, H, W] images, got float32 [40, 3, 8, 8]",
    ),
    "3-d images": (lambda: replaced(test_images=good_bundle().test_images[:, 0]), "test_images must be uint8"),
    "empty test": (lambda: replaced(test_images=good_bundle().test_images[:0],
                                    test_labels=good_bundle().test_labels[:0]), "the test split has no images"),
    "other size": (
        lambda: replaced(test_images=torch.zeros(20, 3, 9, 8, dtype=torch.uint8)),
        "train_images [3, 8, 8], test_images [3, 9, 8]",
    ),
    "other channels": (
        lambda: replaced(test_images=torch.zeros(20, 1, 8, 8, dtype=torch.uint8)),
        "not all the same size",
    ),
    "float labels": (
        lambda: replaced(train_labels=good_bundle().train_labels.float()),
        "train_labels must be integer class indices of shape [40] (one per image), got float32 [40]",
    ),
    "too few labels": (lambda: replaced(test_labels=torch.zeros(3, dtype=torch.int64)), "test_labels must be"),
    "label too big": (
        lambda: replaced(train_labels=good_bundle().train_labels + 1),
        "train_labels must be in 0..2 (3 classes), got values from 1 to 3",
    ),
    "negative label": (lambda: replaced(test_labels=good_bundle().test_labels - 1), "from -1 to 1"),
    "duplicate classes": (lambda: replaced(classes=["a", "b", "a"]), "classes must be unique, got 'a'"),
    "empty class name": (lambda: replaced(classes=["a", "", "c"]), "classes must be non-empty strings"),
    "no classes": (lambda: replaced(classes=[]), "classes must be a non-empty list"),
    "short mean": (lambda: replaced(mean=(0.5,)), "mean must have 3 values (one per channel), got 1"),
    "nan std": (lambda: replaced(std=(0.2, float("nan"), 0.2)), "std must be finite and >= 0"),
    "negative std": (lambda: replaced(std=(0.2, -0.1, 0.2)), "std must be finite and >= 0"),
    "not a bundle": (lambda: {"train_images": None}, "load must return a DataBundle, got dict"),
}


@pytest.mark.parametrize("case", BAD_BUNDLES)
def test_a_malformed_bundle_is_one_data_error_naming_plugin_distribution_and_field(
    case: str, plugin_manager: PluginManager, tmp_path: Path
) -> None:
    make, fragment = BAD_BUNDLES[case]
    register_loader(plugin_manager, lambda path, cache_dir: make())
    with pytest.raises(DataError) as info:
        load_data("my-data", None, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(CONTEXT + ": "), message
    assert fragment in message, message


def test_a_good_bundle_is_normalised_to_int64_labels(plugin_manager: PluginManager, tmp_path: Path) -> None:
    bundle = good_bundle()
    bundle = dataclasses.replace(bundle, train_labels=bundle.train_labels.to(torch.uint8),
                                 test_labels=bundle.test_labels.to(torch.int32), classes=("a", "b", "c"))
    register_loader(plugin_manager, lambda path, cache_dir: bundle)
    loaded = load_data("my-data", None, tmp_path)
    assert loaded.train_labels.dtype == loaded.test_labels.dtype == torch.int64
    assert loaded.classes == ["a", "b", "c"] and loaded.mean == (0.5,) * 3
    assert torch.equal(loaded.train_labels, bundle.train_labels.long())


def test_a_loader_crash_is_one_data_error_naming_the_plugin(plugin_manager: PluginManager, tmp_path: Path) -> None:
    def load(path: str | None, cache_dir: Path) -> DataBundle:
        raise RuntimeError("bad header in labels.csv\nsecond line")

    register_loader(plugin_manager, load)
    with pytest.raises(DataError) as info:
        load_data("my-data", None, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message == CONTEXT + ": load failed with RuntimeError: bad header in labels.csv"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_loaders_own_xaikit_error_is_passed_on(plugin_manager: PluginManager, tmp_path: Path) -> None:
    def load(path: str | None, cache_dir: Path) -> DataBundle:
        raise xaikit.XaikitError("dataset 'my-data' takes no --data path")

    register_loader(plugin_manager, load)
    with pytest.raises(xaikit.XaikitError, match="^dataset 'my-data' takes no --data path$"):
        load_data("my-data", "x", tmp_path)


def test_make_bundle_rejects_duplicate_class_names() -> None:
    bundle = good_bundle()
    with pytest.raises(DataError, match=r"^noise: classes must be unique, got 'b'"):
        make_bundle(bundle.train_images, bundle.train_labels, bundle.test_images, bundle.test_labels,
                    ["a", "b", "b"], "noise")


def test_validate_bundle_without_context_names_only_the_field() -> None:
    with pytest.raises(DataError, match="^mean must have 3 values"):
        validate_bundle(replaced(mean=(0.1, 0.2)))


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_constant_channel_normalises_to_finite_values(value: int) -> None:
    bundle = good_bundle()
    train = bundle.train_images.clone()
    train[:, 2] = value  # e.g. an unused colour channel
    test = bundle.test_images.clone()
    test[:, 2] = value
    built = make_bundle(train, bundle.train_labels, test, bundle.test_labels, bundle.classes, "const")
    assert built.std[2] == 0.0 and built.mean[2] == pytest.approx(value / 255)
    x = normalize(built.test_images, built.mean, built.std)
    assert bool(torch.isfinite(x).all())
    assert float(x[:, 2].abs().max()) < 1e-5  # the constant channel maps to 0
    mean, std = (torch.tensor(v[:2]).view(1, 2, 1, 1) for v in (built.mean, built.std))
    expected = (built.test_images[:, :2].float() / 255 - mean) / std
    torch.testing.assert_close(x[:, :2], expected, rtol=1e-5, atol=1e-4)
    as_tensors = normalize(built.test_images, torch.tensor(built.mean), torch.tensor(built.std))
    assert bool(torch.isfinite(as_tensors).all())


def test_channel_std_of_a_constant_channel_is_exactly_zero() -> None:
    images = torch.full((5, 1, 4, 4), 77, dtype=torch.uint8)
    assert channel_mean_std(images) == ((77 / 255,), (0.0,))
