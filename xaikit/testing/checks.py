"""Helpers of the contract tests: hook and mode inspection, no network, a fake CIFAR-10 copy."""

from __future__ import annotations

import contextlib
import pickle
import socket
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from torch import nn
from torch.nn.modules import module as torch_module


def hooks_left(model: nn.Module) -> list[str]:
    """Names of every hook still registered on a module or parameter of ``model``, or globally."""
    left = []
    for module_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if "hooks" in attr and isinstance(value, dict) and value:
                left.append(f"{module_name or 'model'}.{attr}")
    for param_name, param in model.named_parameters():
        if param._backward_hooks:
            left.append(f"{param_name}._backward_hooks")
    for attr in dir(torch_module):
        value = getattr(torch_module, attr)
        if attr.startswith("_global") and "hook" in attr and isinstance(value, dict) and value:
            left.append(f"torch.nn.modules.module.{attr}")
    return left


def module_flags(model: nn.Module) -> dict[str, bool]:
    """The train/eval flag of every submodule, by name."""
    return {name: m.training for name, m in model.named_modules()}


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """Make every connection and name lookup fail with ``OSError`` inside the block.

    A data set's default source that would download then fails fast, as it does offline.
    """

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access is disabled in the xaikit contract tests")

    saved = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = saved


def write_cifar10_batches(
    folder: Path,
    per_batch: int = 6,
    batches: int = 2,
    classes: Sequence[str] = ("bee", "ant", "cat"),
    seed: int = 0,
) -> Path:
    """Write a tiny ``cifar-10-batches-py`` folder in the real pickle format.

    Each of ``data_batch_1..batches`` and ``test_batch`` holds ``per_batch`` random 32x32
    images with labels in ``0..len(classes)-1``; ``batches.meta`` names the classes.

    Returns:
        ``folder``.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(classes), size=per_batch)]
        batch = {
            b"batch_label": name.encode(), b"labels": labels, b"data": data,
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in classes], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder
