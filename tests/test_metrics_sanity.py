"""Cascading randomisation, random logit and efficient MPRT (xaikit.metrics.sanity)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import Attribution
from xaikit.metrics import emprt, random_logit, randomization, randomized_copy, spearman
from xaikit.metrics.sanity import cascade_steps


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
    """Sobel magnitude of the input: ignores the model and the class."""

    name = "test-edges"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        gray = x.mean(dim=1, keepdim=True)
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
        gx = F.conv2d(gray, kx, padding=1)
        gy = F.conv2d(gray, kx.transpose(-1, -2), padding=1)
        return (gx**2 + gy**2).sqrt()[:, 0]


class Gradient(Attribution):
    name = "test-gradient"
    signed = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.model(x).gather(1, target[:, None]).sum(), x)
        return g.sum(dim=1)


class NoisyGradient(Gradient):
    """A gradient plus noise from the global RNG, like SmoothGrad draws."""

    name = "test-noisy-gradient"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        return super().attribute(x, target) + 0.01 * torch.randn(x.shape[0], *x.shape[-2:])


def setup() -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    return TinyCNN().eval(), torch.randn(6, 3, 12, 12)


def test_spearman() -> None:
    a = torch.randn(3, 50)
    assert torch.allclose(spearman(a, a), torch.ones(3))
    assert torch.allclose(spearman(a, -a), -torch.ones(3))
    assert torch.allclose(spearman(a, a**3), torch.ones(3))
    assert spearman(torch.ones(1, 5), torch.randn(1, 5)).item() == 0.0


def test_randomization_reports_raw_and_abs_per_layer_and_leaves_the_model() -> None:
    model, x = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = randomization(model, Gradient, x, seed=1)
    assert out["layers"] == ["fc", "conv2", "conv1"]
    assert out["rho"].shape == out["rho_abs"].shape == (3, 6)
    assert torch.equal(out["rho_final"], out["rho"][-1])
    assert torch.equal(out["rho_abs_final"], out["rho_abs"][-1])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    edges = randomization(model, EdgeMap, x)
    assert torch.allclose(edges["rho"], torch.ones(3, 6)) and torch.allclose(edges["rho_abs"], torch.ones(3, 6))


@pytest.mark.parametrize("length, steps, expected", [
    (3, None, [1, 2, 3]), (3, 3, [1, 2, 3]), (3, 9, [1, 2, 3]), (23, 1, [23]), (23, 0, [23]),
    (23, 2, [12, 23]), (23, 5, [5, 10, 14, 19, 23]),
])
def test_cascade_steps_are_evenly_spaced_and_end_at_the_random_model(length, steps, expected) -> None:
    assert cascade_steps(length, steps) == expected


def test_a_thinned_cascade_compares_the_same_models_as_the_full_one() -> None:
    model, x = setup()
    full = randomization(model, NoisyGradient, x, seed=3)
    thin = randomization(model, NoisyGradient, x, seed=3, steps=1)
    assert thin["layers"] == ["conv1"] and thin["steps"] == [3]
    assert thin["cascade"] == full["cascade"] == ["fc", "conv2", "conv1"]
    assert torch.equal(thin["rho_final"], full["rho_final"])
    assert torch.equal(thin["rho_abs_final"], full["rho_abs_final"])
    two = randomization(model, NoisyGradient, x, seed=3, steps=2)
    assert two["steps"] == [2, 3] and torch.equal(two["rho"], full["rho"][1:])


def recorder(draws: int) -> tuple[type[Attribution], list[Tensor]]:
    """A method that records its model's weights at each call and draws ``draws`` numbers."""
    seen: list[Tensor] = []

    class Recorder(EdgeMap):
        def attribute(self, x: Tensor, target: Tensor) -> Tensor:
            seen.append(torch.cat([p.detach().flatten() for p in self.model.parameters()]))
            torch.randn(draws)
            return super().attribute(x, target)

    return Recorder, seen


def test_random_models_do_not_depend_on_the_methods_rng_use() -> None:
    model, x = setup()
    quiet, seen_quiet = recorder(0)
    noisy, seen_noisy = recorder(1000)
    randomization(model, quiet, x, seed=2)
    randomization(model, noisy, x, seed=2)
    assert len(seen_quiet) == len(seen_noisy) == 4          # original + 3 layers
    assert all(torch.equal(a, b) for a, b in zip(seen_quiet, seen_noisy))
    assert not torch.equal(seen_quiet[0], seen_quiet[-1])
    full = randomized_copy(model, seed=2)
    assert torch.equal(torch.cat([p.detach().flatten() for p in full.parameters()]), seen_quiet[-1])


def test_rng_is_untouched() -> None:
    model, x = setup()
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    randomization(model, NoisyGradient, x)
    random_logit(model, NoisyGradient, x)
    emprt(model, NoisyGradient, x)
    assert torch.equal(torch.rand(2), expected)


def test_random_logit() -> None:
    model, x = setup()
    out = random_logit(model, EdgeMap, x, 0, seed=3)
    assert torch.allclose(out["rho"], torch.ones(6))                  # class-blind: fails
    assert torch.all(out["other_class"] != 0) and torch.all(out["other_class"] < 4)
    grad = random_logit(model, Gradient, x, 0, seed=3)
    assert torch.all(grad["rho"] < 0.99)


def test_emprt() -> None:
    model, x = setup()
    edges = emprt(model, EdgeMap, x)
    assert torch.allclose(edges["score"], torch.zeros(6))            # unchanged map: no rise
    grad = emprt(model, Gradient, x, n_bins=10)
    h0, h1 = grad["entropy_original"], grad["entropy_randomized"]
    assert torch.allclose(grad["score"], (h1 - h0) / h0)
