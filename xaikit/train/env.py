"""Device resolution and the environment record of a run (``env.json``)."""

from __future__ import annotations

import datetime as _dt
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def git_revision() -> str | None:
    """The git commit of the xaikit source tree, or ``None`` outside a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def now_iso() -> str:
    """The current local time, ISO 8601 with the UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def environment_record(device: torch.device, seed: int) -> dict[str, Any]:
    """What ``env.json`` holds: versions, device, seed, git revision, host and start time."""
    import torchvision

    import xaikit

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "xaikit": getattr(xaikit, "__version__", None) or _version("xaikit"),
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "seed": seed,
        "git_revision": git_revision(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "start_time": now_iso(),
    }
