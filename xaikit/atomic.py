"""Atomic file writes: a crash never leaves a half-written JSON, PNG or checkpoint behind.

A write goes to a temporary file ``.<name>.<random>.tmp`` beside the target, is flushed to
disk and then moved over the target with ``os.replace``, so a reader finds the old content or
the new one, never a mix. A full disk or a folder that cannot be written is one
:class:`WriteError` line (``cannot write PATH: No space left on device``); the old file is kept
and the temporary file removed. A process killed with SIGKILL cannot clean up: its temporary
file stays until :func:`remove_stale_temporaries` removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xaikit.errors import XaikitError

#: Names of the temporary files :func:`atomic_path` makes: ``.`` + target name + ``.`` + the
#: 8 random characters of ``tempfile.mkstemp`` + ``.tmp``.
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class WriteError(XaikitError, OSError):
    """A file could not be written (full disk, read-only folder, missing permission...).

    Both a ``XaikitError`` (the CLI prints it as one ``error:`` line) and an ``OSError`` (code
    that already catches ``OSError`` around a write keeps working). ``errno`` is the original
    error's number, ``None`` if it had none.
    """

    def __init__(self, path: Path, cause: OSError) -> None:
        text = str(cause).strip().splitlines()
        reason = cause.strerror or (text[0] if text else type(cause).__name__)
        super().__init__(f"cannot write {path}: {reason}")
        self.errno = cause.errno
        self.path = path

    def __str__(self) -> str:  # OSError's would format errno and strerror
        return str(self.args[0])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    A reader never sees a half-written file: it finds the old content or the new one. On an
    exception the temporary file is removed and ``path`` is left as it was.

    Raises:
        WriteError: An ``OSError`` while creating the folder or the temporary file, in the
            block (writing the temporary file), or while syncing or moving it into place:
            one line ``cannot write PATH: <strerror>``, e.g. ``No space left on device``.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc
    finally:
        if tmp is not None and os.path.lexists(tmp):
            with contextlib.suppress(OSError):  # never hide the error that brought us here
                os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Raises:
        WriteError: The file could not be written; ``path`` keeps its old content.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | Path, min_age_s: float = 0.0) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left in ``folder``.

    A process killed in the middle of a write (SIGKILL, power loss) cannot remove its
    ``.<name>.<random>.tmp`` file. Call this when no other process writes to ``folder`` (a run
    folder under its lock), or with ``min_age_s`` longer than any write takes (a shared cache).
    Only regular files whose names match :data:`TEMPORARY_NAME` are removed, not recursively;
    symbolic links and anything that cannot be removed are left alone.

    Args:
        folder: The folder to clean; a missing folder has nothing to remove.
        min_age_s: Keep temporary files modified less than this many seconds ago.

    Returns:
        The paths removed, sorted.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not TEMPORARY_NAME.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if min_age_s > 0 and now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return sorted(removed)
