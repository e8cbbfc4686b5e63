"""``explain``, ``evaluate`` and ``report`` under torchrun: 2-process Gloo on the CPU, as CI runs them.

A tiny ULTIMUS run is trained here; then each command runs once as a plain process and once as
``python -m torch.distributed.run --nproc-per-node 2 -m xaikit ...`` (``OMP_NUM_THREADS=1`` for
both, so that every process does its floating-point sums the same way). ``evaluate`` shares out
the test images in whole batches, ``explain`` the blocks of images of the scorecard (32 images:
two blocks, one per process); the files must be the same, bit for bit, except for timings and
timestamps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from xaikit.run import RunConfig
from xaikit.train import train

TIMEOUT = 240
METHODS = ("gradcam", "saliency", "integrated-gradients", "occlusion", "scorecam")
VOLATILE = {"seconds", "seconds_per_image", "cost_ratio", "evaluated"}


def _command(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    launcher = (["-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--standalone",
                 "-m", "xaikit"] if nproc > 1 else ["-m", "xaikit"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _stable(value: Any) -> Any:
    """``value`` without its timings and timestamps."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = RunConfig("ultimus", dataset="synthetic", subset=160, device="cpu",
                       overrides={"epochs": 1, "batch_size": 40})
    return train(config, tmp_path_factory.mktemp("ddp-explain") / "run", show_progress=False)


def test_explain_on_two_processes_writes_what_one_process_writes(run: Path, tmp_path: Path) -> None:
    methods = [arg for m in METHODS for arg in ("--method", m)]
    common = ["explain", str(run), *methods, "--images", "32", "--device", "cpu",
              "--sanity-images", "2"]
    one = _command([*common, "--out", str(tmp_path / "one")], 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _command([*common, "--out", str(tmp_path / "two")], 2)
    assert two.returncode == 0, two.stderr[-3000:]
    # one result table and one pair of paths, from rank 0
    assert two.stdout.count("explanations.json") == 1

    a = json.loads((tmp_path / "one" / "explanations.json").read_text())
    b = json.loads((tmp_path / "two" / "explanations.json").read_text())
    assert list(b["methods"]) == list(a["methods"]) == list(METHODS)
    blocks = {card["blocks"] for card in a["methods"].values()}
    assert len(a["ids"]) == 32 and blocks == {2}, (len(a["ids"]), blocks)  # one block per process
    assert _stable(b) == _stable(a)
    maps_a = torch.load(tmp_path / "one" / "explanations.pt", weights_only=True)
    maps_b = torch.load(tmp_path / "two" / "explanations.pt", weights_only=True)
    assert torch.equal(maps_a["images"], maps_b["images"])
    for name in METHODS:
        assert torch.equal(maps_a["maps"][name], maps_b["maps"][name]), name


def test_evaluate_on_two_processes_writes_the_same_metrics(run: Path, tmp_path: Path) -> None:
    one = _command(["evaluate", str(run), "--device", "cpu"], 1)
    assert one.returncode == 0, one.stderr[-3000:]
    first = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()
    two = _command(["evaluate", str(run), "--device", "cpu"], 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("accuracy:") == 1  # printed by rank 0 only
    second = json.loads((run / "metrics.json").read_text())
    assert _stable(second) == _stable(first)
    assert second["num_test"] == first["num_test"] > 0


def test_report_on_two_processes_writes_one_page(run: Path, tmp_path: Path) -> None:
    page = tmp_path / "page" / "report.html"
    two = _command(["report", str(run), "--method", "gradcam", "--method", "saliency",
                    "--images", "4", "--sanity-images", "0", "--device", "cpu", "--out", str(page)], 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.strip().splitlines() == [str(page)]  # printed by rank 0 only
    html = page.read_text()
    assert "gradcam" in html and "saliency" in html
    saved = json.loads((tmp_path / "page" / "report-figures" / "explanations.json").read_text())
    assert list(saved["methods"]) == ["gradcam", "saliency"]


def test_predict_sharded_is_predict_in_a_plain_process(run: Path) -> None:
    from xaikit.evaluate import predict, predict_sharded
    from xaikit.run import load_data, load_model, load_run

    loaded = load_run(run)
    model, data = load_model(loaded, torch.device("cpu")), load_data(loaded)
    expected = predict(model, data.test_images, data.mean, data.std, batch_size=7)
    assert torch.equal(predict_sharded(model, data.test_images, data.mean, data.std, batch_size=7),
                       expected)


SHARDED_SCRIPT = """
import sys, torch
from xaikit import distributed
from xaikit.evaluate import predict_sharded
from xaikit.run import load_data, load_model, load_run

run = load_run(sys.argv[1])
with distributed.process_group():
    model, data = load_model(run, torch.device("cpu")), load_data(run)
    probs = predict_sharded(model, data.test_images, data.mean, data.std, batch_size=7)
    if distributed.is_main():
        torch.save(probs, sys.argv[2])
"""


def test_predict_sharded_splits_whole_batches_and_gathers_them_in_order(run: Path, tmp_path: Path) -> None:
    from xaikit.evaluate import predict
    from xaikit.run import load_data, load_model, load_run

    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
         str(script), str(run), str(tmp_path / "probs.pt")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_run(run)
    model, data = load_model(loaded, torch.device("cpu")), load_data(loaded)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each process had
    try:
        expected = predict(model, data.test_images, data.mean, data.std, batch_size=7)
    finally:
        torch.set_num_threads(threads)
    assert len(expected) > 7 * 2  # both processes had batches to predict
    assert torch.equal(torch.load(tmp_path / "probs.pt", weights_only=True), expected)
