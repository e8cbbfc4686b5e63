"""The run folder: the seam between training and everything after it.

``xaikit train`` writes a run; ``evaluate``, ``explain``, ``report`` and ``--resume`` read it,
and only through this module (none of them imports ``xaikit.train``). A run folder holds::

    config.json        RunConfig: what was asked for and what training used (typed, validated)
    history.json       one EpochRecord per finished epoch
    checkpoint.pt      weights, optimizer, scheduler, RNG states (torch.load weights_only=True)
    env.json           versions, device, seed, git revision, host, start time (and resumes)
    metrics.json       written by ``xaikit evaluate``
    explanations.json  written by ``xaikit explain`` (with explanations.png)
    report.html        written by ``xaikit report`` (figures in figures/)

A folder becomes a run when its first epoch has finished: the checkpoint, the history and then
the config are written (each atomically) at the end of epoch 1, so a training that fails
earlier leaves nothing behind. Every file read here is validated (``pydantic``, strict JSON
mode); a file that does not fit is one ``RunError`` line naming the file and the field.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import pickle
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import pydantic
import torch
from torch import nn
from typing_extensions import NotRequired, TypedDict

from xaikit.atomic import atomic_write_bytes, atomic_write_json
from xaikit.device import device_name, resolve_device
from xaikit.errors import RunError, UnknownNameError
from xaikit.specs import DataBundle, ModelSpec, Recipe

CONFIG_NAME = "config.json"
HISTORY_NAME = "history.json"
CHECKPOINT_NAME = "checkpoint.pt"
ENV_NAME = "env.json"
METRICS_NAME = "metrics.json"
EXPLANATIONS_JSON = "explanations.json"
EXPLANATIONS_PNG = "explanations.png"
REPORT_NAME = "report.html"
FIGURES_DIR = "figures"
LR_FIND_JSON = "lr_find.json"
LR_FIND_PNG = "lr_find.png"

CONFIG_FORMAT = 2
CHECKPOINT_FORMAT = 1

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
        return f"install the plugin {self.plugin!r}"


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
        tta: Also record test accuracy with flip test-time augmentation each epoch.
        bf16: bfloat16 autocast (``None``: on for CUDA, off on the CPU).
        sync_every: Batches between host reads of the loss on CUDA (every batch on the CPU).
        channels_last: Whether the model trains in NHWC (probed once; ``None`` until then).
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


def validate_json(adapter: pydantic.TypeAdapter, text: bytes | str, where: str) -> Any:
    """``adapter.validate_json(text, strict=True)``; a failure is one ``RunError`` line.

    The message names ``where`` (a file), the path of the first offending field and what was
    expected, e.g. ``config.json: recipe.epochs: Input should be a valid integer``.
    """
    try:
        return adapter.validate_json(text, strict=True)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RunError(f"{where}: {loc}: {first['msg']}{more}") from None


def read_text(path: Path) -> str:
    """The text of a run file; ``RunError`` (one line) if it is missing or unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run; ``RunError`` (one line) if it is missing or corrupt."""
    try:
        return json.loads(read_text(path))
    except ValueError as exc:
        raise RunError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def read_history(path: Path) -> list[EpochRecord]:
    """``history.json`` validated: a list of epoch records with finite numbers."""
    return validate_json(_HISTORY_ADAPTER, read_text(path), str(path))


# --- the environment record (env.json) ------------------------------------------------------


def now_iso() -> str:
    """The current local time, ISO 8601 with the UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def git_revision() -> str | None:
    """The git commit of the xaikit source tree, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_record(device: torch.device, seed: int) -> dict[str, Any]:
    """What ``env.json`` holds: versions, device, seed, git revision, host and start time."""
    import torchvision

    import xaikit

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "xaikit": xaikit.__version__,
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "seed": seed,
        "git_revision": git_revision(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "start_time": now_iso(),
    }


def read_env(folder: Path) -> dict[str, Any]:
    """``env.json`` of a run as a dict (``{}`` when absent); ``RunError`` if it is not an object."""
    path = Path(folder) / ENV_NAME
    if not path.is_file():
        return {}
    env = read_json(path)
    if not isinstance(env, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(env).__name__}")
    return env


# --- checkpoints ----------------------------------------------------------------------------


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Serialise ``checkpoint`` with ``torch.save`` and write it atomically.

    A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts::

        {"format": 1, "model_name": str, "model": state_dict, "optimizer": state_dict,
         "scheduler": state_dict, "epoch": int (epochs done), "history": [...],
         "rng": {"cpu": ByteTensor, "cuda": [ByteTensor...], "data": ByteTensor, "data_device": str}}
    """
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no code runs) and check it.

    Raises:
        RunError: the file is missing, unreadable, or not an xaikit checkpoint (no state dict
            of tensors under ``"model"``, or a non-integer ``"epoch"``).
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise RunError(f"{path} is not an xaikit checkpoint (no model state dict)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint["model"].items()):
        raise RunError(f"{path}: 'model' is not a state dict of tensors")
    epoch = checkpoint.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise RunError(f"{path}: 'epoch' must be a non-negative integer, got {epoch!r}")
    return checkpoint


# --- reading a run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A run folder, read and validated.

    Attributes:
        path: The folder.
        config: ``config.json``.
        history: ``history.json``: one record per finished epoch.
        spec: The model spec from the registry.
    """

    path: Path
    config: RunConfig
    history: list[EpochRecord]
    spec: ModelSpec

    @property
    def classes(self) -> list[str]:
        """Class names, in label order."""
        return self.config.classes

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    def file(self, name: str) -> Path:
        """The path of one of the run's files, e.g. ``run.file(METRICS_NAME)``."""
        return self.path / name


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a run (its ``config.json``)."""
    return (Path(folder) / CONFIG_NAME).is_file()


def load_run(path: str | Path) -> Run:
    """Read and validate a run folder.

    Raises:
        RunError: not a folder, no or an invalid ``config.json``/``history.json``.
        UnknownNameError: the run's model is not registered; the message says which plugin
            distribution to install.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder} is not a run folder (no such directory)")
    if not is_run_folder(folder):
        raise RunError(f"{folder} is not a run folder (no {CONFIG_NAME}); run `xaikit train` first")
    config = RunConfig.from_json(read_text(folder / CONFIG_NAME), str(folder / CONFIG_NAME))
    if config.recipe is None or config.data is None:
        raise RunError(f"{folder / CONFIG_NAME}: not written by `xaikit train` (no recipe or data)")
    history = read_history(folder / HISTORY_NAME) if (folder / HISTORY_NAME).is_file() else []
    from xaikit.registry import get_model_spec

    try:
        spec = get_model_spec(config.model)
    except UnknownNameError as exc:
        hint = f"; {config.model_origin.install_hint()}" if config.model_origin else ""
        raise UnknownNameError(f"run {folder} needs {exc}{hint}") from None
    return Run(path=folder, config=config, history=history, spec=spec)


def load_model(run: Run, device: str | torch.device = "cpu") -> nn.Module:
    """Build the run's model, load ``checkpoint.pt`` (``weights_only=True``), set eval mode.

    Raises:
        RunError: no checkpoint, a checkpoint of another model, a shape mismatch, or
            non-finite weights.
    """
    device = resolve_device(device)
    checkpoint = load_checkpoint(run.checkpoint_path, map_location="cpu")
    saved_name = checkpoint.get("model_name")
    if saved_name is not None and saved_name != run.spec.name:
        raise RunError(
            f"{run.checkpoint_path} holds a {saved_name!r} model, but the run is {run.spec.name!r}"
        )
    model = build_model(run.spec, run.config)
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise RunError(
            f"{run.checkpoint_path} does not fit model {run.spec.name!r}: {detail[:300]}"
        ) from None
    bad = [k for k, v in checkpoint["model"].items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise RunError(f"{run.checkpoint_path} holds non-finite weights (in {bad[0]})")
    return model.to(device).eval()


def build_model(spec: ModelSpec, config: RunConfig) -> nn.Module:
    """The run's model, freshly initialised, from ``config.model_kwargs`` (checked against the
    factory's options) with ``num_classes`` from the data."""
    kwargs = dict(config.model_kwargs)
    if config.data is not None:
        kwargs["num_classes"] = len(config.data.classes)
    return spec.create(**spec.check_model_kwargs(kwargs))


def load_data(config: RunConfig | Run, data_path: str | None = None) -> DataBundle:
    """The data set of a run (or of a config), with the same subset.

    ``data_path`` overrides the stored data path (the data moved). When the config already
    records the data (a trained run), the classes must match.

    Raises:
        DataError: the data cannot be loaded.
        RunError: the data's classes differ from the run's.
    """
    from xaikit.data import balanced_subset
    from xaikit.data import load_data as load_dataset

    if isinstance(config, Run):
        config = config.config
    bundle = load_dataset(config.dataset, data_path or config.data_path)
    if config.subset:
        bundle = balanced_subset(bundle, int(config.subset), seed=config.seed)
    if config.data is not None and tuple(bundle.classes) != tuple(config.data.classes):
        raise RunError(
            f"the data at {data_path or config.data_path or 'the default source'} has classes "
            f"{_short(bundle.classes)}, but the run was trained on {_short(config.data.classes)}"
        )
    return bundle


def _short(names: Any, n: int = 4) -> str:
    names = list(names)
    text = ", ".join(repr(x) for x in names[:n])
    return f"[{text}{', ...' if len(names) > n else ''}] ({len(names)})"


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold the lock of the run folder ``folder`` while the block runs.

    The lock is an exclusive ``flock`` on ``.<name>.lock`` beside the folder (the folder itself
    appears only after the first epoch), so two ``xaikit train --out`` of one folder, or two
    ``--resume`` of one run, cannot both write it. The operating system releases the lock when
    the process dies, however it dies.

    Raises:
        RunError: another process holds it.
    """
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the life of the block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{folder} is in use by another xaikit process (lock {lock_path}); wait for it to "
                "finish or pick another --out"
            ) from None
        yield
    finally:
        handle.close()


def write_config(folder: Path, config: RunConfig) -> Path:
    """Write ``config.json`` atomically."""
    return atomic_write_json(Path(folder) / CONFIG_NAME, config.to_json())
