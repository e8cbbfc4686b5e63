"""Training under torchrun: 2-process Gloo runs on the CPU, as CI runs them.

Each test starts ``python -m torch.distributed.run`` as a subprocess (``--standalone``: torchrun
binds a free port on localhost itself; the two-node test a free port on 127.0.0.1;
``OMP_NUM_THREADS=1``; a timeout). The launched script is this file: run as a script it
registers a tiny BatchNorm-free model (so that one process and two compute the same function
of the same batches) and then runs xaikit's command line, as ``-m xaikit`` does. The model's
test faults (a SIGKILL, a NaN) come from the ``XAIKIT_TEST_FAULT`` variable, so xaikit itself
has no test hooks. The two-node test runs the real ``-m xaikit train ultimus``.

Tolerance: with the same global batch, 2 processes see exactly the same images, crops, flips
and cutouts as one process; only the order of floating-point sums differs (the gradient
all-reduce, two half-batch losses). Over 3 epochs (21 steps) the losses and accuracies agree
to 1e-5 relative (observed: at most 6e-7), the weights to 1e-4.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

from xaikit.hookspecs import hookimpl
from xaikit.specs import ModelSpec, Recipe

RECIPE = Recipe(
    epochs=3, batch_size=32, optimizer="adam", max_lr=0.02, weight_decay=5e-4,
    augment=("crop", "flip", "cutout"), crop_padding=2, cutout=6,
)
SUBSET = 200  # 7 batches of 28-29 images an epoch; 40 test images
KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
TIMEOUT = 150


class FaultyNet(nn.Module):
    """conv-relu-pool, conv-relu, global average pool, linear; no BatchNorm.

    ``XAIKIT_TEST_FAULT=kill:RANK:CALL`` SIGKILLs process RANK at its CALL-th training forward
    pass; ``nan:RANK:CALL`` makes that pass's output NaN.
    """

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width, num_classes)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        out = self.fc(torch.relu(self.conv2(x)).mean(dim=(2, 3)))
        if self.training:
            self.calls += 1
            kind, rank, call = (os.environ.get("XAIKIT_TEST_FAULT", "none:-1:-1").split(":") + ["", ""])[:3]
            if os.environ.get("RANK") == rank and self.calls == int(call):
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                out = out * float("nan")
        return out


def freeze_conv1_from_epoch_2(model: nn.Module, epoch: int) -> None:
    model.conv1.weight.requires_grad_(epoch < 2)


class DDPTestModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("ddp-tiny", FaultyNet, "conv2", recipe=RECIPE))
        register(ModelSpec("ddp-freezing", FaultyNet, "conv2", recipe=RECIPE,
                           on_epoch_start=freeze_conv1_from_epoch_2))


def _main() -> None:
    """Run as a script (under torchrun): xaikit's CLI with the test model registered."""
    from xaikit.cli import main
    from xaikit.plugins import make_plugin_manager, set_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(DDPTestModels(), name="ddp-test-models")
    set_plugin_manager(pm)
    main()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(
    args: list[str], nproc: int, tmp_path: Path, *, fault: str | None = None,
    launch: list[str] | None = None, cwd: Path | None = None, extra_env: dict[str, str] | None = None,
    background: bool = False,
) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python -m torch.distributed.run`` with every console line prefixed ``[rankN]: ``.

    One machine: ``--standalone`` (torchrun binds a free port itself, so no other test can take
    the port between our choosing it and torchrun binding it); ``launch`` replaces it.
    """
    logs = Path(tempfile.mkdtemp(prefix="torchrun-logs-", dir=tmp_path))
    rendezvous = launch or ["--standalone"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *rendezvous,
        "--log-dir", str(logs), "--tee", "3", "--log-line-prefix-template", "[rank${rank}]: ",
        *(args if launch else [__file__, *args]),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XAIKIT_DISABLE_PLUGIN_AUTOLOAD": "1", **(extra_env or {})}
    env.pop("XAIKIT_TEST_FAULT", None)
    if fault:
        env["XAIKIT_TEST_FAULT"] = fault
    if background:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "ddp-tiny", "--dataset", "synthetic", "--subset", str(SUBSET), "--device", "cpu",
            "--out", str(out), *extra]


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "history.json").read_text())


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def assert_same_curve(got: list[dict], expected: list[dict], rel: float) -> None:
    assert [h["epoch"] for h in got] == [h["epoch"] for h in expected]
    for a, b in zip(expected, got):
        for key in KEYS:
            assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-7), (a["epoch"], key, a[key], b[key])


@contextlib.contextmanager
def registered_test_models() -> Iterator[None]:
    """The test model registered in this process, for in-process training and resuming."""
    from xaikit.plugins import make_plugin_manager, set_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(DDPTestModels(), name="ddp-test-models")
    set_plugin_manager(pm)
    try:
        yield
    finally:
        set_plugin_manager(None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One process in this process (the reference) and an uninterrupted 2-process run."""
    from xaikit.run import RunConfig
    from xaikit.train import train

    root = tmp_path_factory.mktemp("ddp")
    with registered_test_models():
        single = train(RunConfig("ddp-tiny", dataset="synthetic", subset=SUBSET, device="cpu"),
                       root / "single", show_progress=False)
    proc = torchrun(train_args(root / "ddp2"), 2, root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].endswith(str(root / "ddp2"))
    return {"root": root, "single": single, "ddp2": root / "ddp2", "ddp2_stderr": proc.stderr}


def test_two_processes_follow_the_one_process_loss_curve(runs):
    single, ddp = history(runs["single"]), history(runs["ddp2"])
    assert len(ddp) == RECIPE.epochs
    assert_same_curve(ddp, single, rel=1e-5)
    for name, tensor in weights(runs["single"]).items():
        torch.testing.assert_close(weights(runs["ddp2"])[name], tensor, rtol=1e-4, atol=1e-5)
    config = json.loads((runs["ddp2"] / "config.json").read_text())
    assert config["world_size"] == 2 and config["recipe"]["batch_size"] == 32  # the global batch
    env = json.loads((runs["ddp2"] / "env.json").read_text())
    assert env["world_size"] == 2 and env["backend"] == "gloo" and len(env["hosts"]) == 2
    lines = runs["ddp2_stderr"].splitlines()  # progress on rank 0 only
    assert [line for line in lines if "epoch 3/3" in line and line.startswith("[rank0]")]
    assert not [line for line in lines if line.startswith("[rank1]")]


def test_a_killed_rank_resumes_with_nothing_lost_also_on_three_processes(runs, tmp_path):
    killed = tmp_path / "killed"
    # 7 batches an epoch: rank 1 dies in its 10th forward pass, batch 3 of epoch 2
    proc = torchrun(train_args(killed), 2, tmp_path, fault="kill:1:10")
    assert proc.returncode != 0
    assert [h["epoch"] for h in history(killed)] == [1]
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == 1
    other, plain = tmp_path / "killed-copy", tmp_path / "killed-plain"
    shutil.copytree(killed, other)
    shutil.copytree(killed, plain)

    proc = torchrun(["train", "--resume", str(killed), "--device", "cpu"], 2, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_curve(history(killed), history(runs["ddp2"]), rel=1e-6)  # same processes: exact
    for name, tensor in weights(runs["ddp2"]).items():
        torch.testing.assert_close(weights(killed)[name], tensor, rtol=1e-6, atol=1e-7)
    resumes = json.loads((killed / "env.json").read_text())["resumes"]
    assert resumes[-1]["from_epoch"] == 2 and resumes[-1]["world_size"] == 2

    # another number of processes: batches of 28-29 split 10/10/9, the same batches and crops
    if os.environ.get("XAIKIT_TEST_THREE_RANKS") == "1":
        # Opt-in: inside the full suite, one of 3 gloo ranks on 2 cores sometimes aborts
        # (SIGABRT) after an epoch; alone, this passes. Not understood yet (issue 13's note).
        proc = torchrun(["train", "--resume", str(other), "--device", "cpu"], 3, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_same_curve(history(other), history(runs["ddp2"]), rel=1e-5)
        assert json.loads((other / "env.json").read_text())["resumes"][-1]["world_size"] == 3

    from xaikit.train import resume  # and one plain process, no torchrun

    with registered_test_models():
        resume(plain, show_progress=False)
    assert_same_curve(history(plain), history(runs["ddp2"]), rel=1e-5)


def test_every_rank_stops_at_a_non_finite_loss_with_one_line_from_rank_0(runs, tmp_path):
    out = tmp_path / "nan"
    proc = torchrun(train_args(out), 2, tmp_path, fault="nan:1:10")  # NaN on rank 1 only
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("[rank")]
    errors = [line for line in ours if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("[rank0]: error: training diverged: loss nan "
                                                     "at epoch 2, batch 3"), ours
    assert "checkpoint of epoch 1 is kept" in errors[0]
    assert not [line for line in ours if line.startswith("[rank1]")]
    assert not [line for line in ours if "Traceback" in line]
    assert [h["epoch"] for h in history(out)] == [1]


def test_two_nodes_on_localhost_train_into_one_run_folder(tmp_path):
    """Two torchrun launches (one process each) meet at a c10d rendezvous on 127.0.0.1, as two
    machines would; neither names --out, so the run lands in the working folder of the node
    that got rank 0, and only there."""
    port = free_port()
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    args = ["-m", "xaikit", "train", "ultimus", "--dataset", "synthetic", "--subset", "40",
            "--epochs", "2", "--batch-size", "16", "--device", "cpu"]
    launches = []
    for node_rank, cwd in enumerate(nodes):
        cwd.mkdir()
        launch = ["--nnodes", "2", "--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "xaikit-two-nodes"]
        launches.append(torchrun(args, 1, tmp_path, launch=launch, cwd=cwd, background=True,
                                 extra_env={"XAIKIT_DISABLE_PLUGIN_AUTOLOAD": "0",
                                            "XAIKIT_LOAD_PLUGINS": "ultimus"}))
    outputs = []
    for proc in launches:
        try:
            outputs.append(proc.communicate(timeout=TIMEOUT))
        finally:
            proc.kill()
    assert [p.returncode for p in launches] == [0, 0], [err[-2000:] for _, err in outputs]
    folders = [f for cwd in nodes if (cwd / "runs").is_dir() for f in (cwd / "runs").iterdir()]
    assert len(folders) == 1, folders
    folder = folders[0]
    assert [h["epoch"] for h in history(folder)] == [1, 2]
    assert json.loads((folder / "config.json").read_text())["world_size"] == 2
    printed = [out.strip().splitlines()[-1] for out, _ in outputs if out.strip()]
    assert len(printed) == 1 and printed[0].endswith(f"runs/{folder.name}")


if __name__ == "__main__":
    _main()


def test_a_model_that_changes_its_trained_parameters_stops_under_ddp_with_one_line(tmp_path):
    """DistributedDataParallel is built for one set of trained parameters; a model spec's
    ``on_epoch_start`` that freezes one (airbench94 freezes its whitening bias after epoch 3)
    stops every process with one line that says how to go on, and epoch 1 stays saved."""
    out = tmp_path / "run"
    args = ["train", "ddp-freezing", "--dataset", "synthetic", "--subset", str(SUBSET),
            "--device", "cpu", "--out", str(out)]
    proc = torchrun(args, 2, tmp_path)
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("[rank")]
    errors = [line for line in ours if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("[rank0]: error: ddp-freezing's on_epoch_start "
                                                     "changed which parameters train at epoch 2"), ours
    assert f"xaikit train --resume {out}" in errors[0]
    assert not [line for line in ours if "Traceback" in line]
    assert [h["epoch"] for h in history(out)] == [1]
