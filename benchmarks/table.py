"""Turn a pytest-benchmark JSON file into a short Markdown table and a hardware line.

Usage: ``python benchmarks/table.py benchmarks/results.json``

One row per benchmark: name (the test function), params (``key=value`` in the order they were
parametrised), mean and standard deviation of a round, number of rounds, and images per second
where the benchmark recorded it (``extra_info["images_per_s"]``, else
``extra_info["images_per_round"] / mean``). The hardware line comes from the JSON's
``machine_info["xaikit"]`` (written by ``benchmarks/conftest.py`` on the machine that ran the
benchmarks); files without it fall back to the machine running this script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HEADER = "| benchmark | params | mean | stddev | rounds | images/s |"
RULE = "|---|---|---:|---:|---:|---:|"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The ``model name`` of the first CPU in ``cpuinfo``, or ``"unknown CPU"``."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return "unknown CPU"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_hardware() -> dict[str, Any]:
    """CPU model, usable cores, torch version and CUDA device name (``None`` without one)."""
    info: dict[str, Any] = {"cpu_model": cpu_model(), "cpu_cores": usable_cores()}
    try:
        import torch
    except ImportError:
        info.update(torch=None, cuda_device=None)
        return info
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def hardware_line(hardware: dict[str, Any]) -> str:
    """One line: ``Hardware: <CPU> (<n> cores), torch <version> (<t> threads), CUDA <device>``.

    The thread count is left out when the record has none; CUDA reads ``none`` without a GPU.
    """
    threads = hardware.get("torch_threads")
    threads_note = f" ({threads} thread{'s' if threads != 1 else ''})" if threads else ""
    return (
        f"Hardware: {hardware.get('cpu_model', 'unknown CPU')} "
        f"({hardware.get('cpu_cores', '?')} cores), torch {hardware.get('torch') or 'unknown'}"
        f"{threads_note}, CUDA {hardware.get('cuda_device') or 'none'}"
    )


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps 3-4 significant digits: µs, ms or s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def format_rate(images_per_s: float | None) -> str:
    """Images per second with thousands separators; empty when unknown."""
    if images_per_s is None:
        return ""
    return f"{images_per_s:,.0f}" if images_per_s >= 100 else f"{images_per_s:.1f}"


def images_per_second(bench: dict[str, Any]) -> float | None:
    """``extra_info["images_per_s"]``, else ``images_per_round / mean``, else ``None``."""
    extra = bench.get("extra_info") or {}
    if extra.get("images_per_s") is not None:
        return float(extra["images_per_s"])
    mean = bench["stats"]["mean"]
    if extra.get("images_per_round") and mean > 0:
        return float(extra["images_per_round"]) / mean
    return None


def row(bench: dict[str, Any]) -> str:
    """The Markdown row of one benchmark entry of the JSON file."""
    name = bench["name"].split("[", 1)[0]
    params = ", ".join(f"{k}={v}" for k, v in (bench.get("params") or {}).items())
    stats = bench["stats"]
    cells = [
        name,
        params,
        format_seconds(stats["mean"]),
        format_seconds(stats["stddev"]),
        str(stats["rounds"]),
        format_rate(images_per_second(bench)),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(results: dict[str, Any]) -> str:
    """The table (header, rule, one row per benchmark in file order) and the hardware line."""
    hardware = (results.get("machine_info") or {}).get("xaikit") or local_hardware()
    lines = [HEADER, RULE, *(row(b) for b in results.get("benchmarks", []))]
    return "\n".join(lines) + "\n\n" + hardware_line(hardware) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python benchmarks/table.py RESULTS.json", file=sys.stderr)
        return 2
    try:
        results = json.loads(Path(argv[0]).read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
