"""Training on a busy CPU: an epoch alone and beside competing busy processes, per thread setting.

    python benchmarks/busy_cpu.py [--model ultimus] [--images 10240] [--busy 2] [--repeats 2]

Each case runs in a fresh process (OpenMP reads its settings when torch loads): a
``train_one_epoch`` of ``--model``'s recipe over ``--images`` synthetic images, once with the
machine to itself and once while ``--busy`` other processes each spin one core (pure Python
loops, started before and stopped after). It prints the seconds of each and the ratio
busy / quiet. A fair share of the cores would make the ratio about ``(threads + busy) /
threads`` once ``threads + busy`` exceeds the cores (2 with 2 threads and 2 busy processes on 2
cores). The cases:

* ``spin``: torch's default, OpenMP threads that busy-wait at the end of every parallel region
  (GNU OpenMP spins 300,000 times before it sleeps);
* ``xaikit``: ``import xaikit`` before torch, as every ``xaikit`` command does: it sets
  ``GOMP_SPINCOUNT=1000`` (a short spin, then sleep);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, threads that sleep at once;
* ``one-thread``: ``torch.set_num_threads(1)``.

The children start from this environment without any OpenMP variable, plus the case's own.

Do not run it beside other work: the point is a controlled competing load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

CASES = {
    "spin": {},
    "xaikit": {"XAIKIT_BENCH_IMPORT_XAIKIT_FIRST": "1"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one-thread": {"XAIKIT_BENCH_THREADS": "1"},
}
OPENMP_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")

CHILD = r"""
import os
if os.environ.get("XAIKIT_BENCH_IMPORT_XAIKIT_FIRST"):
    import xaikit  # as every xaikit command does: before torch
import json, sys, time, torch
threads = os.environ.get("XAIKIT_BENCH_THREADS")
if threads:
    torch.set_num_threads(int(threads))
from xaikit.registry import get_model_spec
from xaikit.schedule import build_scheduler, steps_per_epoch
from xaikit.train.loop import build_optimizer, train_one_epoch
from xaikit.data import BatchAugment
model_name, n = sys.argv[1], int(sys.argv[2])
spec = get_model_spec(model_name)
recipe = spec.recipe
torch.manual_seed(0)
model = spec.create().to(memory_format=torch.channels_last)
images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (n,))
optimizer = build_optimizer(model, recipe)
steps = steps_per_epoch(n, recipe.batch_size)
scheduler = build_scheduler(optimizer, recipe.replace(epochs=2), steps)
augment = BatchAugment(crop_padding=2, flip=True, cutout=0)
criterion = torch.nn.CrossEntropyLoss()
def epoch(e):
    started = time.perf_counter()
    train_one_epoch(model, optimizer, scheduler, criterion, images, labels, (0.5,) * 3, (0.25,) * 3,
                    augment, recipe.batch_size, torch.Generator().manual_seed(e), epoch=e,
                    channels_last=True)
    return time.perf_counter() - started
epoch(1)  # warm-up
print(json.dumps({"seconds": epoch(2), "threads": torch.get_num_threads()}))
"""


def _spin() -> None:
    while True:
        pass


def run_case(env: dict[str, str], model: str, images: int, busy: int) -> dict[str, float]:
    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    time.sleep(0.5 if busy else 0)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, model, str(images)],
            env={**{k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}, **env},
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ultimus")
    parser.add_argument("--images", type=int, default=10240)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, model {args.model}, {args.images} images, "
          f"{args.busy} busy processes, best of {args.repeats}")
    print(f"{'case':<11} {'threads':>7} {'quiet s':>8} {'busy s':>8} {'ratio':>6}")
    for name in args.case or list(CASES):
        quiet = [run_case(CASES[name], args.model, args.images, 0) for _ in range(args.repeats)]
        loaded = [run_case(CASES[name], args.model, args.images, args.busy) for _ in range(args.repeats)]
        q = min(r["seconds"] for r in quiet)
        b = min(r["seconds"] for r in loaded)
        print(f"{name:<11} {quiet[0]['threads']:>7} {q:>8.2f} {b:>8.2f} {b / q:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
