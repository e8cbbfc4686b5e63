"""Load test of ``xaikit serve``: a real server on 127.0.0.1, concurrent clients, latencies.

    python benchmarks/load_serve.py RUN [RUN ...] [--data PATH] [--clients 8] [--requests 400]
    python benchmarks/load_serve.py                  # a 1-epoch ULTIMUS run on synthetic data

Starts ``xaikit serve RUN ... --port 0`` as its own process (the real CLI, uvicorn and its
event loop), reads the page's address from its stdout, then runs ``--clients`` threads, each
with its own HTTP connection, for ``--requests`` requests in all, drawn with a fixed seed:

* ``uncached`` -- a map (and its scores) no one asked for yet: ``GET /api/map?...&wait=120``,
  which answers when the worker thread has computed it;
* ``cached`` -- a map that was computed before (``GET /api/map``, answered from the cache);
* ``png`` -- the heat-map PNG of a computed map (``GET /api/map.png``);
* ``listing`` -- a page of the image grid (``GET /api/images``), which never waits on a model:
  its latency under load shows whether the event loop stays free.

Prints p50 / p95 / max latency per kind, the error count (any answer but 200, or a map that is
not done) and the machine. Exit status 1 when there was an error. Not a pytest benchmark: the
server runs in its own process, as a user's does.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEFAULT_METHODS = ("gradcam", "gradcam++", "saliency", "integrated-gradients", "smoothgrad",
                   "scorecam", "input-x-gradient", "guided-backprop")
KINDS = ("uncached", "cached", "png", "listing")


@dataclass
class Tally:
    """Latencies (seconds) per kind and the errors, shared by the client threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error:
                self.errors.append(f"{kind}: {error}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(runs: list[str], data: str | None, device: str) -> tuple[subprocess.Popen, str]:
    """``xaikit serve RUNS --port 0`` in its own process; the process and the page's URL."""
    command = [sys.executable, "-m", "xaikit", "serve", *runs, "--port", "0", "--device", device]
    if data:
        command += ["--data", data]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline().strip()
    if not line.startswith("http://"):
        server.kill()
        raise SystemExit(f"the server did not start: {line} {server.stderr.read()[-2000:]}")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe drained
    return server, line


def synthetic_run(folder: Path) -> str:
    """A 1-epoch ULTIMUS run on 400 synthetic images (for a self-contained load test)."""
    out = folder / "ultimus-synthetic"
    subprocess.run([sys.executable, "-m", "xaikit", "train", "ultimus", "--dataset", "synthetic",
                    "--subset", "400", "--epochs", "1", "--device", "cpu", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(out)


def run_load(base: str, args: argparse.Namespace, methods: list[str], n_images: int,
             n_runs: int) -> tuple[Tally, float, list[dict]]:
    """Send ``args.requests`` requests from ``args.clients`` threads; the tally and wall time."""
    rng = random.Random(args.seed)
    images = list(range(n_images))
    rng.shuffle(images)
    fresh = itertools.product(images, methods, range(n_runs))  # keys no one asked for yet
    fresh_lock = threading.Lock()
    done: list[dict] = []  # maps computed so far (their query strings)
    tally = Tally()
    counter = itertools.count()

    def next_key() -> tuple[int, str, int] | None:
        with fresh_lock:
            return next(fresh, None)

    def client(seed: int) -> None:
        local = random.Random(seed)
        with httpx.Client(base_url=base, timeout=300) as http:
            while next(counter) < args.requests:
                draw = local.random()
                if draw < 0.1:
                    kind = "listing"
                elif draw < 0.1 + args.uncached or not done:
                    kind = "uncached"
                else:
                    kind = "png" if local.random() < 0.3 else "cached"
                key = next_key() if kind == "uncached" else None
                if kind == "uncached" and key is None:
                    kind = "cached"  # every key was asked for
                started = time.perf_counter()
                try:
                    error = request(http, kind, key, local)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                tally.add(kind, time.perf_counter() - started, error)

    def request(http: httpx.Client, kind: str, key: tuple[int, str, int] | None,
                local: random.Random) -> str | None:
        if kind == "listing":
            r = http.get("/api/images", params={"outcome": local.choice(["all", "misclassified"]),
                                                "sort": "confidence", "limit": 48})
            return None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
        if kind == "uncached" and key is not None:
            image, method, run = key
            params = {"run": run, "image": f"0:{image}", "method": method, "wait": 120}
            r = http.get("/api/map", params=params)
            if r.status_code != 200 or r.json().get("status") != "done":
                return f"{r.status_code} {r.text[:200]}"
            done.append(r.json())
            return None
        body = local.choice(done)
        if kind == "png":
            r = http.get(f"/api/map.png?{body['query']}&kind=heat")
            return None if r.status_code == 200 and r.content[:4] == b"\x89PNG" else f"{r.status_code}"
        r = http.get(f"/api/map?{body['query']}")
        if r.status_code != 200 or not r.json().get("cached"):
            return f"{r.status_code} {r.text[:200]}"
        return None

    threads = [threading.Thread(target=client, args=(args.seed + i,)) for i in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - started, done


def report(tally: Tally, wall: float, args: argparse.Namespace, done: list[dict]) -> None:
    from xaikit.device import device_name, resolve_device

    total = sum(len(v) for v in tally.latencies.values())
    print(f"{total} requests from {args.clients} concurrent clients in {wall:.1f} s "
          f"({total / wall:.1f} requests/s); errors: {len(tally.errors)}")
    print(f"machine: {device_name(resolve_device('cpu'))}, {os.cpu_count()} cores; "
          f"server device: {args.device}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print(f"{'kind':10} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for kind in KINDS:
        values = tally.latencies[kind]
        if values:
            print(f"{kind:10} {len(values):5d} {1000 * percentile(values, 50):9.1f} "
                  f"{1000 * percentile(values, 95):9.1f} {1000 * max(values):9.1f}")
    everything = [v for values in tally.latencies.values() for v in values]
    print(f"{'all':10} {len(everything):5d} {1000 * percentile(everything, 50):9.1f} "
          f"{1000 * percentile(everything, 95):9.1f} {1000 * max(everything):9.1f}")
    compute = [d["seconds"]["map"] + d["seconds"]["scores"] for d in done]
    if compute:
        print(f"server time per uncached map (map + scores, without queueing): "
              f"p50 {1000 * percentile(compute, 50):.1f} ms, p95 {1000 * percentile(compute, 95):.1f} ms; "
              "an uncached request waits for the maps queued before it on the device's one worker")
    for line in tally.errors[:10]:
        print("error:", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run folders (default: a synthetic ULTIMUS run)")
    parser.add_argument("--data", help="data path, as for xaikit serve")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--uncached", type=float, default=0.3,
                        help="share of requests for maps not computed yet")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--images", type=int, default=200, help="test images to draw from")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = args.runs or [synthetic_run(Path(folder))]
        server, base = start_server(runs, args.data, args.device)
        try:
            state = httpx.get(base + "api/state", timeout=60).json()
            registered = {m["name"] for m in state["methods"]}
            methods = [m for m in args.methods.split(",") if m in registered]
            n_images = min(args.images, min(r["num_test"] for r in state["runs"]))
            print(f"serving {', '.join(r['name'] for r in state['runs'])} at {base}; methods: "
                  f"{', '.join(methods)}; {n_images} images")
            tally, wall, done = run_load(base, args, methods, n_images, len(state["runs"]))
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    report(tally, wall, args, done)
    sys.exit(1 if tally.errors else 0)


if __name__ == "__main__":
    main()
