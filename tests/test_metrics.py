"""Tests of the faithfulness and sanity metrics in xaikit.attribution.metrics."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import Attribution
from xaikit.attribution.metrics import (
    auc_trapezoid,
    bootstrap_ci,
    completeness_gap,
    deletion_insertion,
    randomization_sanity,
    score_method,
    spearman,
)
from xaikit.errors import XaikitError

SIDE = 16


class PatchModel(nn.Module):
    """Two classes whose logits depend only on the top-left 4x4 patch: ``+-scale * mean``."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([self.scale * s, -self.scale * s], dim=1)


class ConstantModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0, -1.0]))

    def forward(self, x: Tensor) -> Tensor:
        return self.bias.expand(x.shape[0], 3)


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)
        self.xaikit_target_layer = "conv2"

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(a.mean(dim=(2, 3)))


class EdgeMap(Attribution):
    """Sobel gradient magnitude of the input: looks plausible, ignores the model entirely."""

    name = "test-edges"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        gray = x.mean(dim=1, keepdim=True)
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device)[None, None]
        gx = F.conv2d(gray, kx, padding=1)
        gy = F.conv2d(gray, kx.transpose(-1, -2), padding=1)
        return (gx**2 + gy**2).sqrt()[:, 0]


class HandGradCam(Attribution):
    """Grad-CAM from the base class's forward_with_layer: ReLU(sum_k mean(dA_k) A_k)."""

    name = "test-gradcam"
    uses_layer = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, grad, _ = self.forward_with_layer(x, target)
        return F.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1))


class HandSaliency(Attribution):
    name = "test-saliency"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model(x).gather(1, target[:, None]).sum(), x)
        return grad.abs().amax(dim=1)


def hand_integrated_gradients(model: nn.Module, x: Tensor, target: Tensor, steps: int) -> Tensor:
    """Midpoint-rule IG with a zero baseline, ``[B, C, H, W]`` (all steps in one batch)."""
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).view(-1, 1, 1, 1, 1)
    path = (alphas * x).flatten(0, 1).requires_grad_(True)  # [steps * B, C, H, W]
    score = model(path).gather(1, target.repeat(steps)[:, None]).sum()
    (grad,) = torch.autograd.grad(score, path)
    return x * grad.view(steps, *x.shape).mean(dim=0)


@pytest.fixture
def images() -> Tensor:
    return torch.randn(6, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))


def test_perfect_map_beats_a_random_map() -> None:
    x = torch.rand(5, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) + 0.5
    perfect = torch.zeros(5, SIDE, SIDE)
    perfect[:, :4, :4] = 1.0
    result = deletion_insertion(PatchModel(), x, perfect, target=0, steps=16)
    for key in ("deletion", "insertion", "deletion_random", "insertion_random"):
        assert result[key].shape == (5,)
        assert result[f"{key}_curve"].shape == (5, 17)
    assert (result["deletion"] < result["deletion_random"] - 0.1).all()
    assert (result["insertion"] > result["insertion_random"] + 0.1).all()
    # deletion starts at p(x) and ends at p(baseline) = 0.5; insertion the other way round
    torch.testing.assert_close(result["deletion_curve"][:, -1], torch.full((5,), 0.5))
    torch.testing.assert_close(result["insertion_curve"][:, 0], torch.full((5,), 0.5))
    torch.testing.assert_close(result["deletion_curve"][:, 0], result["insertion_curve"][:, -1])
    # the perfect map removes the whole patch in the first step
    torch.testing.assert_close(result["deletion_curve"][:, 1:], torch.full((5, 16), 0.5))


def test_blur_baseline_and_mean_fill() -> None:
    x = torch.rand(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1)) + 0.5
    perfect = torch.zeros(3, SIDE, SIDE)
    perfect[:, :4, :4] = 1.0
    blurred = deletion_insertion(PatchModel(), x, perfect, 0, steps=8, baseline="blur")
    assert torch.isfinite(blurred["deletion"]).all()
    filled = deletion_insertion(PatchModel(), x, perfect, 0, steps=8, mean=[1.0, 1.0, 1.0])
    expected_end = torch.sigmoid(torch.tensor(2.0)).expand(3)  # 2 * scale * 1
    torch.testing.assert_close(filled["deletion_curve"][:, -1], expected_end)
    with pytest.raises(XaikitError):
        deletion_insertion(PatchModel(), x, perfect, 0, baseline="noise")
    with pytest.raises(XaikitError):
        deletion_insertion(PatchModel(), x, perfect[:, :8], 0)


def test_auc_of_a_constant_curve_is_the_constant(images) -> None:
    assert float(auc_trapezoid(torch.full((9,), 0.3))) == pytest.approx(0.3)
    assert float(auc_trapezoid(torch.tensor([0.0, 1.0]))) == pytest.approx(0.5)
    result = deletion_insertion(ConstantModel(), images, torch.rand(6, SIDE, SIDE), target=1)
    p = float(torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0)[1])
    for key in ("deletion", "insertion", "deletion_random", "insertion_random"):
        torch.testing.assert_close(result[key], torch.full((6,), p))


def test_bootstrap_interval_contains_mean_and_narrows() -> None:
    rng = torch.Generator().manual_seed(0)
    small = torch.randn(20, generator=rng) + 3.0
    large = torch.randn(2000, generator=rng) + 3.0
    mean, low, high = bootstrap_ci(small)
    assert low < mean < high
    assert mean == pytest.approx(float(small.double().mean()))
    big_mean, big_low, big_high = bootstrap_ci(large)
    assert big_low < big_mean < big_high
    assert big_high - big_low < (high - low) / 4
    assert big_low < 3.0 < big_high
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_ci(small, seed=1) != bootstrap_ci(small, seed=2)
    with pytest.raises(XaikitError):
        bootstrap_ci([])


def test_spearman_ranks_and_ties() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 400.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(spearman(a, b), torch.tensor([1.0, -1.0, 0.0]))
    ties = spearman(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    assert 0.9 < float(ties) < 1.0  # average ranks (0.5, 0.5, 2, 3) vs (0, 1, 2, 3)


def test_model_independent_map_fails_randomization(images) -> None:
    model = TinyCNN().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check = randomization_sanity(model, EdgeMap, images, target=None)
    assert check["layers"] == ["fc", "conv2", "conv1"]
    assert check["rho_by_layer"].shape == (3, 6)
    torch.testing.assert_close(check["rho_final"], torch.ones(6))
    assert check["passes"] is False
    for k, v in model.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, state[k])


@pytest.mark.parametrize("method_cls", [HandGradCam, HandSaliency])
def test_gradient_methods_pass_randomization(method_cls, images) -> None:
    model = TinyCNN().train()
    check = randomization_sanity(model, method_cls, images, target=None, seed=1)
    assert check["passes"] is True
    assert check["mean_abs_rho_final"] < 0.5
    assert model.training


def test_completeness_gap_of_integrated_gradients(images) -> None:
    model = TinyCNN().eval()
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    fine = hand_integrated_gradients(model, images, target, steps=256)
    coarse = hand_integrated_gradients(model, images, target, steps=1)
    with torch.no_grad():
        scale = model(images).abs().max()
    gap_fine = completeness_gap(model, images, fine, target)
    gap_summed = completeness_gap(model, images, fine.sum(dim=1), target, baseline=0.0)
    assert gap_fine.shape == (6,)
    assert gap_fine.max() < 1e-2 * scale
    torch.testing.assert_close(gap_fine, gap_summed, atol=1e-5, rtol=1e-4)
    assert completeness_gap(model, images, coarse, target).mean() > gap_fine.mean()


def test_score_method_keys_are_json_ready(images) -> None:
    model = TinyCNN().eval()
    result = score_method(model, HandGradCam, images, steps=4, n_boot=100, sanity_images=3)
    json.dumps(result)
    for key in ("deletion", "insertion", "deletion_random", "insertion_random"):
        assert set(result[key]) == {"mean", "low", "high"}
        assert result[key]["low"] <= result[key]["mean"] <= result[key]["high"]
        assert len(result["per_image"][key]) == 6
    rand = result["randomization"]
    assert set(rand["rho_final"]) == {"mean", "low", "high"}
    assert [r["layer"] for r in rand["rho_by_layer"]] == ["fc", "conv2", "conv1"]
    assert isinstance(rand["passes"], bool) and rand["n_images"] == 3
    assert "completeness_gap" not in result
    assert result["seconds"] >= 0 and result["method"] == "test-gradcam"
    assert "randomization" not in score_method(model, EdgeMap(model), images, steps=2, sanity=False)
