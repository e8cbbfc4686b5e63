"""Images per second of ``xaikit explain`` with the full scorecard on 1 process and on N.

    python benchmarks/explain_scaling.py RUN --data PATH [--images 100] [--nproc 2]
        [--method gradcam --method ...] [--device cpu]

Runs the same ``xaikit explain RUN --method ... --images N`` twice, as one plain process (all
of the machine's threads) and under ``torchrun --nproc-per-node NPROC --standalone`` (torch's
default of one thread per process on a CPU, so the machine's cores are shared out the same way),
each into its own folder, and prints the wall time and (images x methods) per second of both,
and whether the two ``explanations.pt`` hold the same maps. Not a pytest benchmark: the point is
the whole command, process start-up and data loading included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam", "saliency", "input-x-gradient",
                   "integrated-gradients", "smoothgrad", "deeplift", "occlusion")


def _run(args: list[str], nproc: int, device: str) -> float:
    launcher = ["-m", "xaikit"] if nproc == 1 else [
        "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--standalone", "-m", "xaikit"]
    env = dict(os.environ)
    if nproc > 1 and device == "cpu":
        env["OMP_NUM_THREADS"] = "1"  # what torchrun sets by default; explicit, so it is written down
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(launcher[-2:])} {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data", default=None)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--method", action="append", default=None)
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args()
    methods = opts.method or list(DEFAULT_METHODS)
    out = Path(tempfile.mkdtemp(prefix="explain-scaling-"))
    common = ["explain", opts.run, "--images", str(opts.images), "--device", opts.device,
              *[arg for m in methods for arg in ("--method", m)],
              *(["--data", opts.data] if opts.data else [])]
    work = opts.images * len(methods)
    seconds = {}
    for nproc in (1, opts.nproc):
        seconds[nproc] = _run([*common, "--out", str(out / f"p{nproc}")], nproc, opts.device)
        print(f"{nproc} process{'es' if nproc > 1 else ''}: {seconds[nproc]:.1f} s, "
              f"{work / seconds[nproc]:.1f} image-methods/s", flush=True)
    a = torch.load(out / "p1" / "explanations.pt", weights_only=True)["maps"]
    b = torch.load(out / f"p{opts.nproc}" / "explanations.pt", weights_only=True)["maps"]
    same = all(torch.equal(a[k], b[k]) for k in a) and set(a) == set(b)
    print(f"speedup {seconds[1] / seconds[opts.nproc]:.2f}x on {opts.nproc} processes; "
          f"maps identical: {same} ({len(methods)} methods x {opts.images} images, {opts.device})")


if __name__ == "__main__":
    main()
