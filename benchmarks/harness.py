"""Shared pieces of the benchmark suites: device parameters, CUDA sync, throughput records.

Every suite runs on the CPU and adds CUDA cases when ``torch.cuda.is_available()``; the CUDA
cases are collected everywhere and skipped (with the reason) where there is no GPU, so the
report always shows what was left out.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

CUDA_MISSING = "no CUDA device (torch.cuda.is_available() is False)"

#: ``device`` parameter values: ``cpu``, and ``cuda`` skipped when there is no GPU.
DEVICE_PARAMS = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_MISSING),
    ),
]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op on the CPU).

    Timed functions call this last, so a round measures the work and not its launch.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def record_throughput(benchmark: Any, images_per_round: int, **extra: Any) -> None:
    """Store ``images_per_round``, ``images_per_s`` (from the mean round) and ``extra``.

    Call after the timed call; with ``--benchmark-disable`` there are no stats, and only
    ``images_per_round`` and ``extra`` are stored.
    """
    benchmark.extra_info["images_per_round"] = int(images_per_round)
    benchmark.extra_info.update(extra)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.mean > 0:
        benchmark.extra_info["images_per_s"] = round(images_per_round / stats.stats.mean, 1)
