"""The pieces of distributed training, in one process (plus one 2-process Gloo job for the
collectives of ``xaikit.distributed``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from xaikit import distributed
from xaikit.data import BatchAugment
from xaikit.errors import XaikitError
from xaikit.hookspecs import hookimpl
from xaikit.run import RunConfig, load_run
from xaikit.specs import ModelSpec, Recipe
from xaikit.train.shard import Shard, shard_batch


@pytest.mark.parametrize("augment", [
    BatchAugment(crop_padding=4, flip=True, cutout=8),
    BatchAugment(crop_padding=0, flip=True, cutout=0),
    BatchAugment(crop_padding=2, flip=False, cutout=5),
    None,
])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_shards_of_a_batch_are_the_single_process_batch_bit_for_bit(augment, world):
    from xaikit.data import normalize
    from xaikit.train.loop import training_batch

    images = torch.randint(0, 256, (40, 3, 12, 10), dtype=torch.uint8)
    index = torch.randperm(40)[:29]
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    whole = training_batch(images, index, mean, std, augment, torch.Generator().manual_seed(7))
    parts, indices = [], []
    for rank in range(world):
        mine, x = shard_batch(images, index, Shard(rank, world), mean, std, augment,
                              torch.Generator().manual_seed(7))
        indices.append(mine)
        parts.append(x)
    assert torch.equal(torch.cat(indices), index)
    assert torch.equal(torch.cat(parts), whole)
    if augment is None:
        assert torch.equal(whole, normalize(images[index], mean, std))


def test_shard_bounds_cut_as_tensor_split_and_weights_give_the_global_mean():
    losses = torch.rand(100, dtype=torch.float64)
    for n in (1, 7, 28, 29, 100):
        for world in (1, 2, 3, 4):
            bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
            assert [len(p) for p in torch.arange(n).tensor_split(world)] == [b - a for a, b in bounds]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
            if n >= world:  # DDP averages the processes' weighted means: the mean over all n
                ddp = sum(Shard(r, world).loss_weight(n) * losses[a:b].mean() for r, (a, b) in enumerate(bounds))
                assert float(ddp / world) == pytest.approx(float(losses[:n].mean()), rel=1e-12)


def test_helpers_in_a_plain_process_are_the_identity():
    assert not distributed.launched() or "RANK" in os.environ
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t and torch.equal(t, torch.arange(3.0))
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_gather_object("x") == ["x"]
    with pytest.raises(XaikitError, match="only mine"):
        with distributed.agree_on_errors():
            raise XaikitError("only mine")
    with distributed.process_group() as joined:
        assert joined is False
    assert distributed.rank_device("cpu") == torch.device("cpu")
    assert distributed.derived_seed(0, "epoch", 1, "rank", 0) == distributed.derived_seed(0, "epoch", 1, "rank", 0)
    assert distributed.derived_seed(0, "epoch", 1, "rank", 0) != distributed.derived_seed(0, "epoch", 1, "rank", 1)


def test_a_config_written_before_world_size_and_sync_bn_still_loads():
    config = RunConfig("ultimus", device="cpu").to_json()
    assert config.pop("world_size") == 1 and config.pop("sync_bn") is False
    loaded = RunConfig.from_json(json.dumps(config))
    assert loaded.world_size == 1 and loaded.sync_bn is False


def test_batches_too_small_to_split_and_sync_bn_on_the_cpu_are_one_line(monkeypatch):
    from xaikit.train.parallel import check_batch_split, check_parallel

    check_batch_split(200, 32, 3)
    with pytest.raises(XaikitError, match="batches of 1 images cannot be split over 2 processes"):
        check_batch_split(40, 1, 2)
    check_parallel(RunConfig("m", sync_bn=True), torch.device("cpu"))  # one process: nothing to sync
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(XaikitError, match="--sync-bn needs CUDA"):
        check_parallel(RunConfig("m", sync_bn=True), torch.device("cpu"))


class LinearNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class Models:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("unit-ddp", LinearNet, "conv", recipe=Recipe(
            epochs=2, batch_size=16, max_lr=0.02, augment=("crop", "flip", "cutout"), crop_padding=2)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_with_one_process_trains_as_a_plain_process(plugin_manager, tmp_path, monkeypatch):
    """The DDP path with a world of one (a Gloo group in this process) gives the plain run's
    numbers: the sharded batches, the loss weighting and the all-reduces change nothing."""
    from xaikit.train import train

    plugin_manager.register(Models(), name="unit-ddp-models")
    config = RunConfig("unit-ddp", dataset="synthetic", subset=60, device="cpu", seed=1)
    plain = train(config, tmp_path / "plain", show_progress=False)
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    folder = train(config, tmp_path / "ddp", show_progress=False)
    assert not torch.distributed.is_initialized()  # the group is gone again
    assert load_run(folder).config.world_size == 1
    got, expected = load_run(folder).history, load_run(plain).history
    for a, b in zip(expected, got):
        for key in ("train_loss", "train_acc", "lr"):
            assert b[key] == a[key], key
        for key in ("test_loss", "test_acc"):  # float64 sums / n against float32 means
            assert b[key] == pytest.approx(a[key], rel=1e-6), key
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["world_size"] == 1


COLLECTIVES = textwrap.dedent("""
    import json, sys, torch
    from xaikit import distributed
    from xaikit.errors import DataError, XaikitError
    out = {}
    with distributed.process_group() as joined:
        out["joined"] = joined
        out["world"], out["rank"], out["local"] = distributed.world_size(), distributed.rank(), distributed.local_rank()
        out["main"] = distributed.is_main()
        out["device"] = str(distributed.rank_device("auto" if not torch.cuda.is_available() else "cpu"))
        t = torch.tensor([1.0 + distributed.rank()])
        out["sum"] = distributed.all_reduce_sum(t).item()
        out["max"] = distributed.all_reduce_max(torch.tensor([float(distributed.rank())])).item()
        out["object"] = distributed.broadcast_object({"from": distributed.rank()})
        out["gathered"] = distributed.all_gather_object(distributed.rank() * 10)
        out["bounds"] = distributed.shard_bounds(5)
        bn = torch.nn.BatchNorm1d(2)
        bn.running_mean.fill_(distributed.rank() + 3.0)
        distributed.broadcast_buffers(bn)
        out["buffer"] = bn.running_mean.tolist()
        distributed.barrier()
        try:
            with distributed.agree_on_errors():
                if distributed.rank() == 1:
                    raise DataError("the data is missing here")
        except XaikitError as exc:
            out["error"] = [type(exc).__name__, str(exc)]
    json.dump(out, open(sys.argv[1] + f"/rank{out['rank']}.json", "w"))
""")


def test_the_collectives_of_two_gloo_processes(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
         str(script), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, out in enumerate(ranks):
        assert out["joined"] is True and out["world"] == 2 and out["rank"] == r and out["local"] == r
        assert out["main"] is (r == 0) and out["device"] == "cpu"
        assert out["sum"] == 3.0 and out["max"] == 1.0
        assert out["object"] == {"from": 0} and out["gathered"] == [0, 10]
        assert out["bounds"] == [[0, 3], [3, 5]][r]
        assert out["buffer"] == [3.0, 3.0]  # rank 0's
        assert out["error"][0] == "DataError"  # every process raises
    assert ranks[0]["error"][1].startswith("process 1 of 2 (") and ranks[0]["error"][1].endswith(
        "): the data is missing here")
    assert ranks[1]["error"][1] == "the data is missing here"


def test_resume_refuses_sync_bn_like_every_other_setting(tmp_path):
    from typer.testing import CliRunner

    from xaikit.cli import app

    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path), "--sync-bn"])
    assert result.exit_code == 2 and "drop --sync-bn" in result.stderr
