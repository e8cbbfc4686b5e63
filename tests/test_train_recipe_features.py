"""What a model's recipe can ask of the trainer: an initialisation from the data, an epoch hook,
normalisation-layer LR groups, the triangular schedule, lookahead, alternating flip and
multi-crop TTA; each checked against its formula, and a run with all of them resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xaikit.data import AlternatingFlip
from xaikit.evaluate import predict
from xaikit.hookspecs import hookimpl
from xaikit.run import RunConfig
from xaikit.schedule import build_scheduler, triangular
from xaikit.specs import DataBundle, ModelSpec, Recipe
from xaikit.train import resume, train
from xaikit.train.lookahead import Lookahead
from xaikit.train.loop import build_optimizer, parameter_groups

ALL_FEATURES = Recipe(
    epochs=3, batch_size=16, optimizer="sgd", max_lr=0.05, momentum=0.85, weight_decay=5e-4,
    label_smoothing=0.2, schedule="triangular", pct_start=0.25, div_factor=5.0,
    final_div_factor=0.2 / 0.07, norm_lr_scale=8.0, lookahead_every=2, augment=("crop", "altflip"),
    crop_padding=2, cutout=0, tta_shift=1,
)


class HookedNet(nn.Module):
    """Conv (frozen, set from the data) - BN - ReLU - pool - linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stem.weight.requires_grad_(False)
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.norm(self.stem(x))).mean(dim=(2, 3)))


CALLS: list[tuple[str, object]] = []


def init_from_data(model: nn.Module, data: DataBundle) -> None:
    CALLS.append(("init", int(data.train_images.shape[0])))
    with torch.no_grad():  # something that depends on the data: the mean image's colour
        colour = data.train_images.float().mean(dim=(0, 2, 3)) / 255
        model.stem.weight.copy_(colour.view(1, 3, 1, 1).expand_as(model.stem.weight))


def on_epoch_start(model: nn.Module, epoch: int) -> None:
    CALLS.append(("epoch", epoch))
    model.stem.bias.requires_grad_(epoch <= 1)


class HookedModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("hooked", HookedNet, "stem", recipe=ALL_FEATURES,
                           init_from_data=init_from_data, on_epoch_start=on_epoch_start))


@pytest.fixture
def hooked(plugin_manager):
    plugin_manager.register(HookedModels(), name="hooked-test-models")
    CALLS.clear()
    return plugin_manager


def config() -> RunConfig:
    return RunConfig(model="hooked", dataset="synthetic", subset=48, device="cpu", seed=5, tta=True)


class Killed(Exception):
    pass


def test_a_run_with_every_recipe_feature_calls_the_hooks_and_resumes_exactly(hooked, tmp_path):
    full = train(config(), tmp_path / "full", show_progress=False)
    assert CALLS == [("init", 48), ("epoch", 1), ("epoch", 2), ("epoch", 3)]
    checkpoint = torch.load(full / "checkpoint.pt", weights_only=True)
    assert set(checkpoint["lookahead"]["slow"]) >= {"stem.weight", "norm.running_mean"}
    # the frozen stem kept its data initialisation; the bias trained in epoch 1 only
    colour = checkpoint["model"]["stem.weight"][0, :, 0, 0]
    assert torch.all(colour > 0.2) and torch.all(colour < 0.8)
    # after the last step the model holds the slow weights
    for name, slow in checkpoint["lookahead"]["slow"].items():
        torch.testing.assert_close(checkpoint["model"][name], slow, rtol=0, atol=0)

    CALLS.clear()

    def kill_after_first_epoch(record):
        if record["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train(config(), tmp_path / "killed", show_progress=False, on_epoch_end=kill_after_first_epoch)
    resumed = resume(tmp_path / "killed", show_progress=False)
    assert CALLS == [("init", 48), ("epoch", 1), ("epoch", 2), ("epoch", 3)]  # no init on resume
    expected = json.loads((full / "history.json").read_text())
    got = json.loads((resumed / "history.json").read_text())
    for a, b in zip(expected, got, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "test_acc_tta", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-8), key
    state = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    for name, tensor in checkpoint["model"].items():
        torch.testing.assert_close(state[name], tensor)


def test_triangular_schedule_matches_its_formula_per_group() -> None:
    model = HookedNet()
    recipe = ALL_FEATURES
    optimizer = build_optimizer(model, recipe)
    other_group, norm_group = optimizer.param_groups
    assert {id(p) for p in norm_group["params"]} == {id(model.norm.weight), id(model.norm.bias)}
    assert norm_group["peak_lr"] == pytest.approx(8 * other_group["peak_lr"])
    # the decay per step (lr x weight_decay) is the same in both groups
    assert norm_group["weight_decay"] * 8 == pytest.approx(other_group["weight_decay"])
    steps = 20
    scheduler = build_scheduler(optimizer, recipe.replace(epochs=1), steps)
    warmup = int(steps * recipe.pct_start)
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups][::-1])
        optimizer.step()
        scheduler.step()
    for step, (norm_lr, other_lr) in enumerate(lrs):
        if step <= warmup:
            expected = 0.2 + 0.8 * step / warmup
        else:
            expected = 1.0 - 0.93 * (step - warmup) / (steps - warmup)
        assert other_lr == pytest.approx(recipe.max_lr * expected, rel=1e-9)
        assert norm_lr == pytest.approx(8 * other_lr, rel=1e-9)
    assert triangular(steps, recipe.pct_start, 5.0, 0.2 / 0.07)(steps) == pytest.approx(0.07)
    assert optimizer.param_groups[0]["momentum"] == 0.85  # constant


def test_parameter_groups_keep_every_parameter_once() -> None:
    model = HookedNet()
    assert [len(g) for g, _ in parameter_groups(model)] == [len(list(model.parameters()))]
    groups = parameter_groups(model, 4.0)
    ids = [id(p) for g, _ in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert [scale for _, scale in groups] == [1.0, 4.0]


def test_alternating_flip_shows_each_image_both_ways_in_two_epochs() -> None:
    flip = AlternatingFlip(200, seed=1)
    x = torch.arange(200 * 4, dtype=torch.float32).view(200, 1, 1, 4)
    index = torch.arange(200)
    flipped = [(flip(x, index, epoch) != x).any(dim=3).flatten() for epoch in (1, 2, 3, 4)]
    assert torch.equal(flipped[0], ~flipped[1]) and torch.equal(flipped[0], flipped[2])
    assert torch.equal(flipped[1], flipped[3])
    assert 70 < int(flipped[0].sum()) < 130  # a fair coin per image
    assert torch.equal(AlternatingFlip(200, seed=1).start, flip.start)
    assert not torch.equal(AlternatingFlip(200, seed=2).start, flip.start)
    part = torch.tensor([5, 17, 3])  # a batch is flipped as its images are in the whole set
    assert torch.equal(flip(x[part], part, 3), flip(x, index, 3)[part])


def test_lookahead_matches_airbench_reference() -> None:
    """Against a transcription of airbench94's ``LookaheadState`` loop (Jordan 2024)."""
    torch.manual_seed(0)
    ours, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    total, every, alpha = 13, 5, 0.95**5
    lookahead = Lookahead(ours, every, alpha, total)
    ema = {k: v.clone() for k, v in theirs.state_dict().items()}
    schedule = alpha * (torch.arange(total + 1) / total) ** 3
    for step in range(1, total + 1):
        delta = torch.randn(2, 3)
        with torch.no_grad():  # an optimizer step
            ours.weight.add_(delta)
            theirs.weight.add_(delta)
        lookahead.after_step(ours, step)
        with torch.no_grad():
            if step % every == 0:
                decay = schedule[step].item()
                for e, p in zip(ema.values(), theirs.state_dict().values()):
                    e.lerp_(p, 1 - decay)
                    p.copy_(e)
            if step >= total:
                for e, p in zip(ema.values(), theirs.state_dict().values()):
                    p.copy_(e)
    for name, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value)


def test_multi_crop_tta_averages_six_views_with_airbench_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    got = predict(model, images, mean, std, tta=True, tta_shift=1)
    x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")

    def pair(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (model(v).softmax(1) + model(v.flip(-1)).softmax(1)) / 2

    expected = 0.5 * pair(x) + 0.25 * pair(padded[..., :8, :8]) + 0.25 * pair(padded[..., 2:, 2:])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    flip_only = predict(model, images, mean, std, tta=True)
    torch.testing.assert_close(flip_only, pair(x), rtol=1e-5, atol=1e-6)
