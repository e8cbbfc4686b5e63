"""Benchmark configuration: import path, hardware record, the training data fixture.

Run with ``make bench``, which passes ``-o python_files=bench_*.py`` so that pytest collects the
``bench_*.py`` suites (``make test`` never looks in this folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:  # --import-mode=importlib adds no folder to sys.path
    sys.path.insert(0, str(BENCH_DIR))

from table import local_hardware  # after the sys.path insert above

DEFAULT_CIFAR10 = "../shared/data/cifar10-jpeg.tar.gz"  # relative to the repo root
THREADS_ENV = "XAIKIT_BENCH_THREADS"


def pytest_configure(config: Any) -> None:
    """``$XAIKIT_BENCH_THREADS`` (if set) fixes torch's intra-op threads for the whole run.

    On a CPU shared with other jobs, OpenMP threads wait for descheduled siblings at every op
    (a 48-d ULTIMUS block went from 0.09 ms to 12 ms with 2 threads on 2 busy cores); one
    thread gives meaningful numbers there. Unset, torch's default is kept.
    """
    value = os.environ.get(THREADS_ENV)
    if value:
        import torch

        try:
            threads = int(value)
        except ValueError:
            raise pytest.UsageError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        if threads < 1:
            raise pytest.UsageError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        torch.set_num_threads(threads)


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    """Add ``machine_info["xaikit"]`` (CPU model, cores, torch, CUDA device) for table.py."""
    machine_info["xaikit"] = local_hardware()


def cifar10_path() -> str:
    """``$XAIKIT_DATA``, else the shared CIFAR-10 archive, resolved from the repo root."""
    return os.environ.get("XAIKIT_DATA") or str((REPO_ROOT / DEFAULT_CIFAR10).resolve())


@pytest.fixture(scope="session")
def training_data() -> tuple[str, Any]:
    """``(name, DataBundle)`` on the CPU: real CIFAR-10 if it loads, else the synthetic set.

    CIFAR-10 goes through ``load_data``, so after the first decode it comes from the array
    cache (``~/.cache/xaikit``) in about a second.
    """
    from xaikit.data import load_data
    from xaikit.errors import XaikitError

    try:
        return "cifar10", load_data("cifar10", cifar10_path())
    except XaikitError:
        return "synthetic", load_data("synthetic")
