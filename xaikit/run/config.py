"""The typed, validated configuration of a run (``config.json``) and its history records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import pydantic
from typing_extensions import NotRequired, TypedDict

from xaikit.atomic import atomic_write_json
from xaikit.run.files import CONFIG_NAME, read_text, validate_json
from xaikit.specs import Recipe

CONFIG_FORMAT = 2
_STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Origin:
    """Which plugin, and which installed distribution, gave a model or a data set."""

    __pydantic_config__ = _STRICT

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def install_hint(self) -> str:
        """``"pip install xaikit-ultimus==0.1.0"``-style advice (or the plugin name alone)."""
        if self.distribution and self.distribution != "xaikit":
            pin = f"=={self.version}" if self.version else ""
            return f"install the distribution {self.distribution}{pin} (pip install {self.distribution}{pin})"
        return f"install the plugin {self.plugin!r} that provides it"


@dataclass(frozen=True)
class DataFacts:
    """What the trainer found in the data: filled in by ``train``, checked by ``resume``."""

    __pydantic_config__ = _STRICT

    source: str
    classes: tuple[str, ...]
    num_train: int
    num_test: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class LRSuggestion:
    """The LR range test's suggestion when ``--max-lr auto`` chose the recipe's ``max_lr``."""

    __pydantic_config__ = _STRICT

    lr: float
    rule: str


@dataclass(frozen=True)
class RunConfig:
    """One run's configuration: what the user asked for, then what training resolved.

    Built by the CLI (or a user) with the request fields; :func:`xaikit.train.train` fills in
    ``recipe`` (the model's recipe with ``overrides`` applied), ``bf16``, ``channels_last``,
    ``data``, the plugin origins and ``created``, and stores the result as ``config.json``.

    Attributes:
        model: Registered model name.
        model_kwargs: Options of the model factory (``num_classes`` included once trained).
        dataset: Registered data set name.
        data_path: The ``--data`` value (``None``: the data set's default source).
        subset: Train on a class-balanced subset of this many images.
        seed: Seed of initialisation, shuffling, augmentation and the subset.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (the resolved device once trained).
        overrides: Recipe fields set by flags, applied on top of the model's recipe.
        recipe: The recipe as trained (``None`` until resolved).
        max_lr_auto: Run the LR range test first and train with its suggestion.
        lr_find_steps: Steps of that LR range test.
        compile: ``torch.compile`` the model.
        tta: Also record test accuracy with test-time augmentation each epoch (flip, and the
            recipe's ``tta_shift`` crops).
        bf16: bfloat16 autocast (``None``: on for CUDA, off on the CPU).
        sync_every: Batches between host reads of the loss on CUDA (every batch on the CPU).
        channels_last: Whether the model trains in NHWC (probed once; ``None`` until then).
        world_size: Number of processes that trained it (torchrun; 1 for a plain process).
            A resume may use another number; ``env.json`` lists each resume's.
        sync_bn: Convert BatchNorm to SyncBatchNorm under torchrun (CUDA only).
        max_lr_suggestion: The LR range test's result with ``max_lr_auto``.
        data: Facts about the training data (``None`` until loaded).
        model_origin, dataset_origin: Plugin and distribution that gave model and data set.
        created: ISO time the run was created.
        format: Version of this file format.
    """

    __pydantic_config__ = _STRICT

    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    data_path: str | None = None
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    overrides: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe | None = None
    max_lr_auto: bool = False
    lr_find_steps: int = 100
    compile: bool = False
    tta: bool = False
    bf16: bool | None = None
    sync_every: int = 20
    channels_last: bool | None = None
    world_size: int = 1
    sync_bn: bool = False
    max_lr_suggestion: LRSuggestion | None = None
    data: DataFacts | None = None
    model_origin: Origin | None = None
    dataset_origin: Origin | None = None
    created: str | None = None
    format: int = CONFIG_FORMAT

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    @property
    def classes(self) -> list[str]:
        """Class names in label order (empty before the data was loaded)."""
        return list(self.data.classes) if self.data else []

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``config.json`` holds)."""
        return _CONFIG_ADAPTER.dump_python(self, mode="json")

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], where: str = CONFIG_NAME) -> "RunConfig":
        """Validate and build a config from JSON text or a parsed dict.

        Raises:
            RunError: one line naming ``where`` and the first field that does not fit.
        """
        text = data if isinstance(data, (bytes, str)) else json.dumps(data)
        return validate_json(_CONFIG_ADAPTER, text, where)


@pydantic.with_config(_STRICT)
class EpochRecord(TypedDict):
    """One line of ``history.json``: the numbers of one finished epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float
    test_acc_tta: NotRequired[float]


_CONFIG_ADAPTER = pydantic.TypeAdapter(RunConfig)
_HISTORY_ADAPTER = pydantic.TypeAdapter(list[EpochRecord])


def read_history(path: Path) -> list[EpochRecord]:
    """``history.json`` validated: a list of epoch records with finite numbers."""
    return validate_json(_HISTORY_ADAPTER, read_text(path), str(path))


def write_config(folder: Path, config: RunConfig) -> Path:
    """Write ``config.json`` atomically."""
    return atomic_write_json(Path(folder) / CONFIG_NAME, config.to_json())
