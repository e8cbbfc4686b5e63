"""The Captum wrappers (xaikit.metrics.fidelity / robustness) equal direct Captum calls."""

from __future__ import annotations

import captum.metrics
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import Attribution
from xaikit.metrics import completeness_gap, infidelity, sensitivity_max
from xaikit.metrics.fidelity import gaussian_pixel_perturbation


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))


class GradientMap(Attribution):
    name = "test-gradient"
    signed = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model(x).gather(1, target[:, None]).sum(), x)
        return grad * x


def setup() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(5, 3, 8, 8)
    return model, x, model(x).argmax(1)


def test_infidelity_equals_captum_with_the_documented_perturbation() -> None:
    model, x, target = setup()
    maps = torch.randn(5, 8, 8)
    ours = infidelity(model, x, maps, target, noise_std=0.1, n_perturb_samples=6, seed=4)
    perturb = gaussian_pixel_perturbation(0.1, torch.Generator().manual_seed(4))
    attributions = (maps / 3)[:, None].expand_as(x)
    direct = captum.metrics.infidelity(model, perturb, x, attributions, target=target,
                                       n_perturb_samples=6, normalize=True)
    assert ours.shape == (5,)
    assert torch.allclose(ours, direct.float(), rtol=1e-5, atol=1e-8)


def test_normalised_infidelity_does_not_depend_on_the_map_scale() -> None:
    model, x, target = setup()
    grad = GradientMap(model)(x, target)
    a = infidelity(model, x, grad, target, noise_std=1e-3, seed=0)
    b = infidelity(model, x, 7.0 * grad, target, noise_std=1e-3, seed=0)
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-12)


def test_sensitivity_max_equals_captum() -> None:
    model, x, target = setup()
    method = GradientMap(model)
    ours = sensitivity_max(method, x, target, perturb_radius=0.05, n_perturb_samples=4, seed=9)

    def explain(inputs, target=None):
        with torch.enable_grad():
            return (method(inputs[0], target),)

    state = torch.random.get_rng_state()
    torch.manual_seed(9)
    direct = captum.metrics.sensitivity_max(explain, x, perturb_radius=0.05,
                                            n_perturb_samples=4, target=target)
    torch.random.set_rng_state(state)
    assert ours.shape == (5,)
    assert torch.allclose(ours, direct.float(), rtol=1e-5)
    assert torch.all(ours > 0)


def test_sensitivity_max_leaves_the_rng_alone() -> None:
    model, x, target = setup()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    sensitivity_max(GradientMap(model), x, target, n_perturb_samples=2)
    assert torch.equal(torch.rand(3), expected)


def test_completeness_gap_of_an_exact_decomposition_is_zero() -> None:
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(3, 3, 4, 4)
    w = lin[1].weight[0].detach().view(3, 4, 4)
    maps = (w * x).sum(dim=1)
    gap = completeness_gap(lin, x, maps, 0)
    assert torch.all(gap < 1e-5)


def test_completeness_gap_with_a_distribution_of_baselines() -> None:
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(3, 3, 4, 4)
    refs = torch.randn(3, 5, 3, 4, 4)
    w = lin[1].weight[0].detach().view(3, 4, 4)
    maps = (w * (x - refs.mean(dim=1))).sum(dim=1)   # exact for a linear model: E_b[f(x) - f(b)]
    assert torch.all(completeness_gap(lin, x, maps, 0, refs) < 1e-5)
    assert torch.all(completeness_gap(lin, x, maps, 0, None) > 1e-4)
