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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaikit.device import resolve_device
from xaikit.errors import RunError, UnknownNameError
from xaikit.run.checkpoint import load_checkpoint, save_checkpoint
from xaikit.run.config import (
    DataFacts, EpochRecord, LRSuggestion, Origin, RunConfig, read_history, write_config,
)
from xaikit.run.files import (
    CHECKPOINT_NAME, CONFIG_NAME, ENV_NAME, EXPLANATIONS_JSON, EXPLANATIONS_PNG, FIGURES_DIR,
    HISTORY_NAME, LOCK_NAME, LR_FIND_JSON, LR_FIND_PNG, METRICS_NAME, REPORT_NAME, check_output_file,
    check_output_folder, environment_record,
    now_iso, read_env, read_json, read_text, run_lock, validate_json,
)
from xaikit.specs import DataBundle, ModelSpec

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_NAME", "ENV_NAME", "EXPLANATIONS_JSON", "EXPLANATIONS_PNG",
    "FIGURES_DIR", "HISTORY_NAME", "LOCK_NAME", "check_output_file", "check_output_folder", "LR_FIND_JSON", "LR_FIND_PNG", "METRICS_NAME", "REPORT_NAME",
    "DataFacts", "EpochRecord", "LRSuggestion", "Origin", "Run", "RunConfig", "build_model",
    "environment_record", "is_run_folder", "load_checkpoint", "load_data", "load_model",
    "load_run", "now_iso", "read_env", "read_history", "read_json", "read_text", "run_lock",
    "save_checkpoint", "validate_json", "write_config",
]


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

    The model comes back in the default (NCHW) memory format even when it trained in
    channels_last: a channels_last ULTIMUS runs a plain forward pass 1.9x faster on 2 CPU cores,
    but ``explain --method all`` took longer with it (5 min 49-57 s against 5 min 35 s; ROAD's
    and LIME's batches got slower), so only the gradient CAMs feed it NHWC images
    (:meth:`~xaikit.attribution.base.Attribution.forward_with_layer`).

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
    if config.subset is not None:
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
