"""The files of a run folder: their names, reading them as one-line errors, env.json, the lock."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pydantic
import torch

from xaikit.device import device_name
from xaikit.errors import RunError

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


LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold the lock of the run folder ``folder`` (which must exist) while the block runs.

    The lock is an exclusive ``flock`` on ``FOLDER/.lock``, so two ``xaikit train --out`` of one
    folder, or two ``--resume`` of one run, cannot both write it. The operating system releases
    the lock when the process dies, however it dies; the empty ``.lock`` file stays.

    Raises:
        RunError: another process holds it.
    """
    import fcntl

    lock_path = Path(folder) / LOCK_NAME
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the life of the block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{folder} is in use by another xaikit process; wait for it to finish or pick "
                "another --out"
            ) from None
        yield
    finally:
        handle.close()


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder to write into: refused (one ``RunError`` line) when it, or a folder
    above it, exists and is not a folder."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is" if part == path else f"lies under {part}, which is"
                raise RunError(f"{flag} {path} {what} a file, not a folder")
            break
    return path


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a file to (re)write: refused (one ``RunError`` line) when it is a folder or
    lies under a file."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{flag} {path} is a folder; name the HTML file to write, e.g. {path / 'report.html'}")
    for part in path.parents:
        if part.exists():
            if not part.is_dir():
                raise RunError(f"{flag} {path} lies under {part}, which is a file, not a folder")
            break
    return path
