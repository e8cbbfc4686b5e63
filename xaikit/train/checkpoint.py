"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (no code runs).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts::

    {"format": 1, "model_name": str, "model": state_dict, "optimizer": state_dict,
     "scheduler": state_dict, "epoch": int (epochs done), "history": [...],
     "rng": {"cpu": ByteTensor, "cuda": [ByteTensor...], "data": ByteTensor, "data_device": str}}
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from xaikit.errors import RunError
from xaikit.runs_io import atomic_write_bytes

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Serialise ``checkpoint`` with ``torch.save`` and write it atomically (tmp + ``os.replace``)."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        RunError: the file is missing, unreadable, or not an xaikit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise RunError(f"{path} is not an xaikit checkpoint")
    return checkpoint


def capture_rng_state(data_generator: torch.Generator) -> dict[str, Any]:
    """The CPU, CUDA and data-generator RNG states, as tensors."""
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_generator.get_state(),
        "data_device": str(data_generator.device),
    }


def restore_rng_state(state: dict[str, Any], data_generator: torch.Generator) -> None:
    """Put back what :func:`capture_rng_state` saved (CUDA states only where CUDA exists)."""
    torch.set_rng_state(state["cpu"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    if state.get("data_device") == str(data_generator.device):
        data_generator.set_state(state["data"].cpu())
