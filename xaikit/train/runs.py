"""Run folders, as read by ``evaluate``, ``explain`` and ``report``.

A run folder holds ``config.json``, ``history.json``, ``checkpoint.pt`` and ``env.json``
(written by the trainer), and later ``metrics.json`` and figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaikit.errors import RunError
from xaikit.registry import get_model_spec
from xaikit.specs import DataBundle, ModelSpec
from xaikit.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from xaikit.train.env import resolve_device

CONFIG_NAME = "config.json"
HISTORY_NAME = "history.json"
ENV_NAME = "env.json"
METRICS_NAME = "metrics.json"

__all__ = ["Run", "load_run", "load_model", "load_run_data", "resolve_device", "read_json"]


@dataclass
class Run:
    """A training run folder, read.

    Attributes:
        path: The folder.
        config: ``config.json``: model, model kwargs, dataset, data path, subset, seed,
            device, the recipe as used, flags and class names.
        history: ``history.json``: one dict per finished epoch (empty before the first).
        spec: The model spec from the registry.
        classes: Class names, in label order.
    """

    path: Path
    config: dict[str, Any]
    history: list[dict[str, Any]]
    spec: ModelSpec
    classes: list[str]

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run; ``RunError`` (one line) if it is missing or corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def load_run(path: str | Path) -> Run:
    """Read a run folder.

    Raises:
        RunError: the path is not a folder, or has no readable ``config.json``.
        UnknownNameError: the run's model is not registered (its plugin is not installed).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder} is not a run folder (no such directory)")
    if not (folder / CONFIG_NAME).is_file():
        raise RunError(f"{folder} is not a run folder (no {CONFIG_NAME}); run `xaikit train` first")
    config = read_json(folder / CONFIG_NAME)
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise RunError(f"{folder / CONFIG_NAME} is not an xaikit run config (no model name)")
    history: list[dict[str, Any]] = []
    if (folder / HISTORY_NAME).is_file():
        history = read_json(folder / HISTORY_NAME)
        if not isinstance(history, list):
            raise RunError(f"{folder / HISTORY_NAME} is not a list of epochs")
    spec = get_model_spec(config["model"])
    classes = list(config.get("classes") or [str(i) for i in range(spec.num_classes)])
    return Run(path=folder, config=config, history=history, spec=spec, classes=classes)


def model_kwargs(run: Run) -> dict[str, Any]:
    """Keyword arguments of the model factory as used in training (``num_classes`` included)."""
    kwargs = dict(run.config.get("model_kwargs") or {})
    kwargs.setdefault("num_classes", len(run.classes))
    return kwargs


def load_model(run: Run, device: str | torch.device = "cpu") -> nn.Module:
    """Build the run's model, load ``checkpoint.pt`` (``weights_only=True``) and set eval mode.

    Raises:
        RunError: no checkpoint, a checkpoint of another model, or a shape mismatch.
    """
    device = resolve_device(device)
    checkpoint = load_checkpoint(run.checkpoint_path, map_location="cpu")
    saved_name = checkpoint.get("model_name")
    if saved_name is not None and saved_name != run.spec.name:
        raise RunError(
            f"{run.checkpoint_path} holds a {saved_name!r} model, but the run is {run.spec.name!r}"
        )
    model = run.spec.create(**model_kwargs(run))
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise RunError(
            f"{run.checkpoint_path} does not fit model {run.spec.name!r}: {detail[:300]}"
        ) from None
    return model.to(device).eval()


def load_run_data(run: Run, path: str | None = None) -> DataBundle:
    """Load the data set the run was trained on, with the same subset (``path`` overrides
    the data path stored in the config, e.g. after the data moved)."""
    from xaikit.data import balanced_subset, load_data

    config = run.config
    bundle = load_data(config.get("dataset", "cifar10"), path or config.get("data_path"))
    subset = config.get("subset")
    if subset:
        bundle = balanced_subset(bundle, int(subset), seed=int(config.get("subset_seed", config.get("seed", 0))))
    return bundle
