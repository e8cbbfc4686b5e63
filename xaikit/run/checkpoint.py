"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (no code runs)."""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from xaikit.atomic import atomic_write_bytes
from xaikit.errors import RunError

CHECKPOINT_FORMAT = 1


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


def refused_pickle_message(path: Path, exc: Exception) -> str:
    """One line for a file that ``torch.load(weights_only=True)`` refused.

    torch's own message advises ``weights_only=False``: the one thing a user must not do with a
    file of unknown origin. This names the blocked global instead.
    """
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global[: ]+([\w.]+)", text, re.I)
    what = f" (blocked: {found.group(1)})" if found else ""
    return (
        f"{path} holds code or objects that xaikit will not load{what}: xaikit reads only "
        "tensors, numbers and strings; do not load this file with pickle"
    )


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
    except pickle.UnpicklingError as exc:
        raise RunError(refused_pickle_message(path, exc)) from None
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
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
