"""Trainer, checkpoints, resume, divergence, LR range test and run loading, on synthetic data."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from xaikit.errors import DivergedError, RunError, XaikitError
from xaikit.hookspecs import hookimpl
from xaikit.specs import ModelSpec, Recipe
from xaikit.device import resolve_device
from xaikit.run import RunConfig, load_data, load_model, load_run
from xaikit.train import (
    lr_range_test, resume,
    suggest_lr, train,
)
from xaikit.atomic import atomic_write_json
from xaikit.train.loop import build_optimizer

TINY_RECIPE = Recipe(
    epochs=2, batch_size=16, optimizer="sgd", max_lr=0.05, weight_decay=5e-4,
    augment=("crop", "flip"), crop_padding=2,
)


class TinyNet(nn.Module):
    """Conv-BN-ReLU, global average pool, linear: a few hundred parameters."""

    def __init__(self, num_classes: int = 10, width: int = 6, nan_after: int | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.fc = nn.Linear(width, num_classes)
        self.nan_after = nan_after  # training forward passes before the output turns NaN
        self.train_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.features(x).flatten(1))
        if self.training and self.nan_after is not None:
            self.train_calls += 1
            if self.train_calls > self.nan_after:
                out = out * float("nan")
        return out


class ViewNet(nn.Module):
    """Flattens a conv output with ``view``, as many tutorials do: it cannot run channels_last."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, stride=4)
        self.fc = nn.Linear(2 * 8 * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fc(x.view(x.shape[0], -1))


class TinyModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny", TinyNet, "features.0", recipe=TINY_RECIPE))
        register(ModelSpec("tiny-wide", lambda **kw: TinyNet(width=9, **kw), "features.0", recipe=TINY_RECIPE))
        register(ModelSpec("view-net", ViewNet, "conv", recipe=TINY_RECIPE))


@pytest.fixture
def tiny(plugin_manager):
    plugin_manager.register(TinyModels(), name="tiny-test-models")
    return plugin_manager


RECIPE_FIELDS = {"epochs", "batch_size", "max_lr", "optimizer", "weight_decay", "label_smoothing"}


def settings(**changes) -> RunConfig:
    """A run config of the tiny model; recipe fields among ``changes`` become overrides."""
    base = dict(model="tiny", dataset="synthetic", subset=40, device="cpu", seed=3)
    overrides = {k: changes.pop(k) for k in list(changes) if k in RECIPE_FIELDS}
    base.update(changes)
    return RunConfig(**base, overrides=overrides)


def test_run_folder_files(tiny, tmp_path):
    folder = train(settings(tta=True), tmp_path / "run", show_progress=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "tiny" and config["dataset"] == "synthetic"
    assert config["subset"] == 40 and config["seed"] == 3 and config["device"] == "cpu"
    assert config["recipe"] == TINY_RECIPE.to_dict()
    assert config["tta"] is True and config["bf16"] is False
    assert len(config["data"]["classes"]) == 10
    assert config["model_origin"]["plugin"] == "tiny-test-models"
    assert config["dataset_origin"]["plugin"] == "builtin"
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    for record in history:
        assert set(record) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                               "seconds", "test_acc_tta"}
        assert 0 <= record["test_acc"] <= 1 and math.isfinite(record["train_loss"])
    # one-cycle: the last LR is max_lr / (div_factor * final_div_factor)
    assert history[-1]["lr"] == pytest.approx(0.05 / 25 / 1e4, rel=1e-6)
    env = json.loads((folder / "env.json").read_text())
    for key in ("python", "torch", "torchvision", "xaikit", "device_name", "seed", "git_revision",
                "hostname", "start_time"):
        assert key in env
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["model_name"] == "tiny"
    assert {"model", "optimizer", "scheduler", "history", "rng"} <= set(checkpoint)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


class Killed(Exception):
    pass


def test_resume_matches_uninterrupted_run(tiny, tmp_path):
    full = train(settings(), tmp_path / "full", show_progress=False)

    def kill_after_first_epoch(record):
        if record["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train(settings(), tmp_path / "killed", show_progress=False, on_epoch_end=kill_after_first_epoch)
    assert len(json.loads((tmp_path / "killed" / "history.json").read_text())) == 1
    resumed = resume(tmp_path / "killed", show_progress=False)

    expected = json.loads((full / "history.json").read_text())
    got = json.loads((resumed / "history.json").read_text())
    assert len(got) == len(expected) == 2
    for a, b in zip(expected, got):
        for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
    state_full = torch.load(full / "checkpoint.pt", weights_only=True)["model"]
    state_resumed = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    for name, tensor in state_full.items():
        torch.testing.assert_close(state_resumed[name], tensor)
    assert "resumes" in json.loads((resumed / "env.json").read_text())


def test_divergence_stops_and_keeps_last_good_checkpoint(tiny, tmp_path):
    # 40 images in batches of 16 -> 3 batches per epoch; the 4th forward pass (epoch 2, batch 1) is NaN.
    s = settings(model_kwargs={"nan_after": 3})
    with pytest.raises(DivergedError) as info:
        train(s, tmp_path / "run", show_progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "epoch 2, batch 1" in message and "lr " in message and "--max-lr" in message
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["epoch"] == 1
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_training_that_fails_in_epoch_1_leaves_no_run_behind(tiny, tmp_path):
    """Before: config.json and history.json stayed, so the corrected command was refused
    ("already holds a run") and --resume repeated the error."""
    with pytest.raises(DivergedError, match="no run folder was written"):
        train(settings(model_kwargs={"nan_after": 0}), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(XaikitError, match="at least 2 steps"):  # one batch of everything
        train(settings(epochs=1, batch_size=1000), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)  # the fix just runs
    assert load_run(folder).history[-1]["epoch"] == 1


def test_a_failed_overwrite_keeps_the_old_run(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(DivergedError):
        train(settings(model_kwargs={"nan_after": 0}), folder, overwrite=True, show_progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_resume_without_a_checkpoint_is_refused_and_changes_nothing(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    (folder / "checkpoint.pt").unlink()
    history = (folder / "history.json").read_bytes()
    with pytest.raises(RunError, match="checkpoint.pt is missing.*cannot be resumed"):
        resume(folder, show_progress=False)
    assert (folder / "history.json").read_bytes() == history


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["recipe"].update(epochs="3"), r"config.json: recipe.epochs: Input should be a valid integer"),
        (lambda c: c["data"].update(classes="abc"), r"config.json: data.classes: Input should be a valid"),
        (lambda c: c.update(surprise=1), r"config.json: surprise: Unexpected"),
        (lambda c: c.pop("model"), r"config.json: model: Field required"),
    ],
)
def test_a_malformed_config_is_one_line_naming_the_field(tiny, tmp_path, change, message):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match=message) as info:
        load_run(folder)
    assert "\n" not in str(info.value)


def test_a_malformed_history_or_checkpoint_is_one_line(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    (folder / "history.json").write_text(json.dumps([{"epoch": "one"}]))
    with pytest.raises(RunError, match=r"history.json: 0.epoch: Input should be a valid integer"):
        load_run(folder)
    (folder / "history.json").write_text("[]")
    torch.save({"model": "hello"}, folder / "checkpoint.pt")
    with pytest.raises(RunError, match="no model state dict"):
        load_model(load_run(folder))
    torch.save({"model": {}, "epoch": "7"}, folder / "checkpoint.pt")
    with pytest.raises(RunError, match="'epoch' must be a non-negative integer"):
        load_model(load_run(folder))


def test_nan_weights_are_refused_instead_of_evaluated(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    checkpoint["model"]["fc.weight"].fill_(float("nan"))
    torch.save(checkpoint, folder / "checkpoint.pt")
    with pytest.raises(RunError, match="non-finite weights"):
        load_model(load_run(folder))


def test_config_round_trips_through_json(tiny, tmp_path):
    folder = train(settings(epochs=1, tta=True), tmp_path / "run", show_progress=False)
    config = load_run(folder).config
    assert RunConfig.from_json(json.dumps(config.to_json())) == config
    assert config.recipe.epochs == 1 and config.overrides == {"epochs": 1}


def test_a_run_folder_in_use_by_another_process_is_refused(tiny, tmp_path):
    """Before: two `xaikit train --out X` started together both passed the "empty folder" check
    and the second silently overwrote the first; two --resume duplicated the work."""
    from xaikit.run import run_lock

    folder = tmp_path / "run"
    folder.mkdir()
    with run_lock(folder):
        with pytest.raises(RunError, match="in use by another xaikit process"):
            train(settings(epochs=1), folder, show_progress=False)
    assert [p.name for p in folder.iterdir()] == [".lock"]
    train(settings(epochs=1), folder, show_progress=False)  # the lock went with its holder
    with run_lock(folder):
        with pytest.raises(RunError, match="in use by another xaikit process"):
            resume(folder, show_progress=False)
    # a second process, as two shells would start it
    script = (
        "import sys, time; from xaikit.run import run_lock\n"
        "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match="in use"):
            resume(folder, show_progress=False)
    finally:
        holder.kill()
        holder.wait()
    resume(folder, show_progress=False)  # released by the OS when the holder died


def test_out_folder_with_a_run_is_not_overwritten(tiny, tmp_path):
    train(settings(epochs=1), tmp_path / "run", show_progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        train(settings(epochs=1), tmp_path / "run", show_progress=False)
    train(settings(epochs=1), tmp_path / "run", overwrite=True, show_progress=False)


def test_max_lr_auto_uses_the_range_test_suggestion(tiny, tmp_path):
    folder = train(settings(epochs=1, max_lr_auto=True, lr_find_steps=30), tmp_path / "run", show_progress=False)
    config = json.loads((folder / "config.json").read_text())
    curve = json.loads((folder / "lr_find.json").read_text())
    assert config["recipe"]["max_lr"] == curve["suggested_lr"] == config["max_lr_suggestion"]["lr"]
    assert (folder / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_range_test_restores_model_and_optimizer(tiny):
    from xaikit.data import load_data

    data = load_data("synthetic")
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = nn.functional.cross_entropy(model(data.train_images[:8].float() / 255), data.train_labels[:8])
    loss.backward()
    optimizer.step()  # the optimizer now has moment estimates to restore
    model.eval()
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = optimizer.state_dict()
    before_opt_state = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()}
                        for k, s in before_opt["state"].items()}
    result = lr_range_test(
        model, optimizer, nn.CrossEntropyLoss(), data.train_images, data.train_labels,
        data.mean, data.std, batch_size=8, start_lr=1e-5, end_lr=1e4, steps=40,
    )
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, before_model[key]), key
    after = optimizer.state_dict()
    assert after["param_groups"] == before_opt["param_groups"]
    for k, state in after["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(before_opt_state[k][name]))
    assert not model.training
    assert result.lrs[0] == pytest.approx(1e-5)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # exponential sweep
    assert result.stopped_early and len(result.lrs) < 40  # 1e4 blows any model up
    assert result.lrs[0] <= result.suggested_lr <= result.lrs[-1]


def test_suggest_lr_is_a_tenth_of_the_lr_at_the_lowest_smoothed_loss():
    lrs = [10 ** (-6 + i * 0.1) for i in range(61)]  # 1e-6 .. 1
    # flat, then falling from 1e-4 to 1e-2, then rising
    losses = [2.3 if lr < 1e-4 else 2.3 - 0.5 * math.log10(lr / 1e-4) if lr < 1e-2 else 1.3 + 2 * math.log10(lr / 1e-2)
              for lr in lrs]
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3)
    assert suggest_lr(lrs, losses[:-5] + [float("nan")] * 5) == pytest.approx(1e-3)


def test_load_run_errors(tiny, tmp_path):
    with pytest.raises(RunError, match="not a run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunError, match="no config.json"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json: .*Invalid JSON"):
        load_run(tmp_path)


def test_load_model_and_data_of_a_run(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    run = load_run(folder)
    assert run.spec.name == "tiny" and len(run.classes) == 10 and len(run.history) == 1
    model = load_model(run)
    assert not model.training
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(model.state_dict()["fc.weight"], checkpoint["model"]["fc.weight"])
    data = load_data(run)
    assert data.train_labels.shape[0] == 40


def test_checkpoint_of_another_model_is_refused(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    config = json.loads((folder / "config.json").read_text())
    config["model"] = "tiny-wide"
    atomic_write_json(folder / "config.json", config)
    with pytest.raises(RunError, match="holds a 'tiny' model"):
        load_model(load_run(folder))
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    checkpoint.pop("model_name")
    torch.save(checkpoint, folder / "checkpoint.pt")
    with pytest.raises(RunError, match="does not fit model 'tiny-wide'"):
        load_model(load_run(folder))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(XaikitError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(XaikitError, match="CUDA is not available"):
            resolve_device("cuda")


def test_build_optimizer_adam_is_decoupled_and_sgd_nesterov():
    model = TinyNet()
    adam = build_optimizer(model, Recipe(optimizer="adam"))
    sgd = build_optimizer(model, Recipe(optimizer="sgd", momentum=0.9))
    assert isinstance(adam, torch.optim.AdamW)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    with pytest.raises(XaikitError, match="adam or sgd"):
        build_optimizer(model, Recipe(optimizer="lion"))


def test_prediction_and_the_lr_range_test_restore_every_modules_flag():
    """A BatchNorm frozen in eval mode inside a training model stays frozen."""
    from xaikit.evaluate import predict

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model.train()
    model[1].eval()
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(8) % 3
    stats = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    predict(model, images, *stats)
    predict(model, images, *stats, tta=True)
    assert model.training and not model[1].training
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lr_range_test(model, optimizer, nn.CrossEntropyLoss(), images, labels, *stats,
                  batch_size=4, steps=3)
    assert model.training and not model[1].training


def test_loss_is_read_every_sync_every_batches_and_a_nan_between_reads_is_named():
    """The CUDA fast path reads the loss only every ``sync_every`` batches; run it on the CPU."""
    from xaikit.data import load_data
    from xaikit.schedule import build_scheduler
    from xaikit.train.loop import train_one_epoch

    data = load_data("synthetic")
    images, labels = data.train_images[:80], data.train_labels[:80]  # 10 batches of 8

    def run(model, **kwargs):
        optimizer = build_optimizer(model, TINY_RECIPE)
        scheduler = build_scheduler(optimizer, TINY_RECIPE, steps_per_epoch=10)
        reads = []
        result = train_one_epoch(
            model, optimizer, scheduler, nn.CrossEntropyLoss(), images, labels, data.mean,
            data.std, None, 8, torch.Generator().manual_seed(0), epoch=1, sync_every=4,
            on_progress=lambda step, loss, acc, lr: reads.append(step), **kwargs,
        )
        return result, reads

    torch.manual_seed(0)
    result, reads = run(TinyNet().to(memory_format=torch.channels_last), bf16=True, channels_last=True)
    assert reads == [4, 8, 10] and math.isfinite(result.loss) and 0 <= result.acc <= 1
    with pytest.raises(DivergedError, match=r"epoch 1, batch 6 \(lr"):
        run(TinyNet(nan_after=5))  # batch 6 is NaN; it is found at the read after batch 8


def test_bf16_and_channels_last_training_on_the_cpu_gives_a_loadable_run(tiny, tmp_path):
    folder = train(settings(bf16=True, epochs=1), tmp_path / "run", show_progress=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["bf16"] is True and config["channels_last"] is True
    assert math.isfinite(json.loads((folder / "history.json").read_text())[0]["train_loss"])
    model = load_model(load_run(folder))
    assert model.features[0].weight.is_contiguous()  # explain and evaluate get an NCHW model


def test_optimizers_use_the_fused_kernels():
    model = TinyNet()
    for name in ("adam", "sgd"):
        assert build_optimizer(model, Recipe(optimizer=name)).defaults["fused"] is True


def test_a_model_that_cannot_run_channels_last_trains_and_resumes_in_nchw(tiny, tmp_path):
    with pytest.raises(RuntimeError, match="view"):
        ViewNet()(torch.zeros(1, 3, 32, 32).contiguous(memory_format=torch.channels_last))

    def kill_after_first_epoch(record):
        raise Killed

    with pytest.raises(Killed):
        train(settings(model="view-net"), tmp_path / "run", show_progress=False,
              on_epoch_end=kill_after_first_epoch)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["channels_last"] is False
    resume(tmp_path / "run", show_progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and math.isfinite(history[-1]["train_loss"])


def test_cudnn_autotuning_is_on_only_inside_the_block_and_restored():
    from xaikit.train.loop import cudnn_autotune

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with cudnn_autotune(True):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(Killed), cudnn_autotune(True):
            raise Killed
        assert torch.backends.cudnn.benchmark is False
        torch.backends.cudnn.benchmark = True  # a user's own setting is kept
        with cudnn_autotune(False):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before


class NoFlipData:
    @hookimpl
    def register_datasets(self, register):
        from xaikit.specs import DatasetSpec

        def load(path, cache_dir):
            import dataclasses

            from xaikit.data.synthetic import load_synthetic

            return dataclasses.replace(load_synthetic(path, cache_dir), forbidden_augment=("flip",))

        register(DatasetSpec("arrows", load, "synthetic, where a flip would change the class"))


def test_a_data_set_can_forbid_an_augmentation(tiny, tmp_path, capsys):
    tiny.register(NoFlipData(), name="no-flip-data")
    folder = train(settings(epochs=1, dataset="arrows"), tmp_path / "run", show_progress=False)
    assert load_run(folder).config.recipe.augment == ("crop",)  # TINY_RECIPE has crop and flip
    assert "forbids flip" in capsys.readouterr().err


def test_an_unknown_forbidden_augmentation_is_refused(tmp_path):
    import dataclasses

    from xaikit.data import validate_bundle
    from xaikit.data.synthetic import load_synthetic
    from xaikit.errors import DataError

    bundle = dataclasses.replace(load_synthetic(None, tmp_path), forbidden_augment=("rotate",))
    with pytest.raises(DataError, match="forbidden_augment must name augmentations among crop, flip, altflip, cutout"):
        validate_bundle(bundle, "dataset 'x'")


def test_a_stale_temporary_checkpoint_from_a_kill_is_removed_on_resume(tiny, tmp_path):
    folder = train(settings(epochs=1), tmp_path / "run", show_progress=False)
    stale = folder / ".checkpoint.pt.k3x9_q2a.tmp"  # as tempfile.mkstemp names them
    stale.write_bytes(b"half a checkpoint")
    resume(folder, show_progress=False)
    assert not stale.exists()


def test_a_full_disk_in_epoch_2_is_one_line_and_keeps_epoch_1(tiny, tmp_path, monkeypatch):
    import errno

    import xaikit.run.checkpoint as checkpoint_module
    from xaikit.atomic import atomic_write_bytes

    folder = tmp_path / "run"
    calls = []

    def full_after_first(path, data):
        calls.append(path)
        if len(calls) > 1:
            from xaikit.atomic import WriteError

            raise WriteError(path, OSError(errno.ENOSPC, "No space left on device"))
        return atomic_write_bytes(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", full_after_first)
    with pytest.raises(XaikitError, match="No space left on device") as info:
        train(settings(epochs=2), folder, show_progress=False)
    assert "\n" not in str(info.value)
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert load_run(folder).history[-1]["epoch"] == 1


def test_module_mode_sets_and_restores_each_modules_own_flag():
    from xaikit.modules import module_mode

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.Dropout()))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    before = [m.training for m in model.modules()]
    with module_mode(model, training=False):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    model.eval()
    with module_mode(model, training=False):  # already in eval: untouched
        assert not any(m.training for m in model.modules())
    with module_mode(model, training=True):
        assert all(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())
