"""Which device to compute on: ``auto``/``cpu``/``cuda[:N]`` resolved and described."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from xaikit.errors import XaikitError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a ``torch.device``.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise.

    Raises:
        XaikitError: an unknown device name, or CUDA asked for but not available.
    """
    if isinstance(name, torch.device):
        return name
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise XaikitError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise XaikitError(f"unsupported device {name!r}; use auto, cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise XaikitError("--device cuda asked for, but CUDA is not available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise XaikitError(f"no CUDA device {device.index}; {torch.cuda.device_count()} available")
    return device


def device_name(device: torch.device) -> str:
    """A human-readable name of the device, e.g. ``"NVIDIA H100 80GB HBM3"`` or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bfloat16 autocast on ``device`` when ``bf16`` is set, a no-op otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)
