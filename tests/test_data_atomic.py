"""Atomic writes on a full disk or a read-only folder: one ``XaikitError`` line, the old file
intact, no temporary file left; temporaries of a killed writer are removed (issue 10)."""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xaikit import atomic
from xaikit.atomic import (
    WriteError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    remove_stale_temporaries,
)
from xaikit.errors import XaikitError

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
EACCES = PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def raises(exc: OSError) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise exc

    return fail


def half_then(exc: OSError) -> Callable[..., Any]:
    """A ``Path.write_bytes`` that writes half its data, then fails like a full disk."""
    def write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise exc

    return write_bytes


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "history.json"
    path.parent.mkdir()
    path.write_text("old content")
    return path


def assert_refused(target: Path, reason: str, write: Callable[[], object] | None = None) -> None:
    with pytest.raises(XaikitError) as info:
        (write or (lambda: atomic_write_bytes(target, b"new content")))()
    assert str(info.value) == f"cannot write {target}: {reason}"
    assert isinstance(info.value, WriteError) and isinstance(info.value, OSError)
    assert target.read_text() == "old content"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary


@pytest.mark.parametrize(
    ("where", "patch"),
    [
        ("write", lambda m: m.setattr(pathlib.Path, "write_bytes", half_then(ENOSPC))),
        ("fsync", lambda m: m.setattr(os, "fsync", raises(ENOSPC))),
        ("replace", lambda m: m.setattr(os, "replace", raises(ENOSPC))),
        ("mkstemp", lambda m: m.setattr(tempfile, "mkstemp", raises(ENOSPC))),
    ],
)
def test_full_disk(target: Path, monkeypatch: pytest.MonkeyPatch, where: str, patch: Any) -> None:
    patch(monkeypatch)
    assert_refused(target, "No space left on device")


@pytest.mark.parametrize(
    ("where", "patch"),
    [
        ("mkstemp", lambda m: m.setattr(tempfile, "mkstemp", raises(EACCES))),
        ("replace", lambda m: m.setattr(os, "replace", raises(EACCES))),
        ("chmod", lambda m: m.setattr(os, "chmod", raises(EACCES))),
    ],
)
def test_read_only_folder(
    target: Path, monkeypatch: pytest.MonkeyPatch, where: str, patch: Any
) -> None:
    patch(monkeypatch)
    assert_refused(target, "Permission denied")


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "a.json"
    with pytest.raises(WriteError, match=r"^cannot write .*a\.json: Not a directory$"):
        atomic_write_json(path, {"a": 1})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o555 folder anyway")
def test_chmod_read_only_folder(target: Path) -> None:
    target.parent.chmod(0o555)
    try:
        assert_refused(target, "Permission denied")
    finally:
        target.parent.chmod(0o755)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_enospc_from_the_kernel(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary file is a link to /dev/full: the kernel answers ENOSPC to the write."""
    real_mkstemp = tempfile.mkstemp

    def onto_full_device(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", onto_full_device)
    assert_refused(target, "No space left on device")


def test_error_in_the_block_is_not_rewritten(target: Path) -> None:
    with pytest.raises(ValueError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError("boom")
    assert target.read_text() == "old content"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_oserror_in_the_block_is_one_line(target: Path) -> None:
    with pytest.raises(WriteError) as info, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert str(info.value) == f"cannot write {target}: Disk quota exceeded"
    assert info.value.errno == errno.EDQUOT and "\n" not in str(info.value)
    assert target.read_text() == "old content"


def test_success_still_replaces(target: Path) -> None:
    atomic_write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in target.parent.iterdir()] == [target.name]


# ---------------------------------------------------------------- stale temporaries

KILLED_WRITER = """
import os, signal, sys
from xaikit.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_remove_stale_temporaries_after_sigkill(target: Path) -> None:
    folder = target.parent
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(b"last good checkpoint")
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(checkpoint)], check=False)
    assert done.returncode == -signal.SIGKILL
    (stale,) = [p for p in folder.iterdir() if p.name.startswith(".checkpoint.pt.")]
    assert atomic.TEMPORARY_NAME.match(stale.name) and stale.name.endswith(".tmp")

    keep = [".hidden", "notes.tmp", ".a.tmp", ".checkpoint.pt.tmp", "checkpoint.pt.abcd1234.tmp"]
    for name in keep:
        (folder / name).write_text("keep")
    (folder / ".dir.abcd1234.tmp").mkdir()
    (folder / ".link.abcd1234.tmp").symlink_to(checkpoint)

    assert remove_stale_temporaries(folder) == [stale]
    assert not stale.exists() and checkpoint.read_bytes() == b"last good checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*keep, ".dir.abcd1234.tmp", ".link.abcd1234.tmp", "checkpoint.pt", target.name]
    )
    assert remove_stale_temporaries(folder) == []


def test_remove_stale_temporaries_keeps_young_files_when_asked(tmp_path: Path) -> None:
    old, young = tmp_path / ".a.json.abcd1234.tmp", tmp_path / ".b.json.efgh5678.tmp"
    old.write_text("x")
    young.write_text("x")
    os.utime(old, (0, 0))
    assert remove_stale_temporaries(tmp_path, min_age_s=3600) == [old]
    assert young.exists()


def test_remove_stale_temporaries_of_a_missing_folder(tmp_path: Path) -> None:
    assert remove_stale_temporaries(tmp_path / "nope") == []
