"""The scorecard's cost control (xaikit.metrics.cost): counted model evaluations, and the images
each map-recomputing check can afford."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from xaikit.attribution.base import Attribution
from xaikit.metrics import ScorecardSettings, scorecard
from xaikit.metrics.cost import affordable_images, cascade_budget, count_evaluations
from xaikit.testing import ContractNet


class Gradient(Attribution):
    """One forward and backward pass per image."""

    name = "test-gradient"
    signed = True

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            score = self.model(x).gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad.sum(dim=1)


class Occluding(Attribution):
    """``passes`` model evaluations per image (a stand-in for LIME or occlusion)."""

    name = "test-occluding"
    passes = 50

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            repeated = x.repeat_interleave(self.passes, dim=0)
            p = self.model(repeated).softmax(1).view(len(x), self.passes, -1)
        return p.mean(1).gather(1, target[:, None])[:, :, None].expand(-1, *x.shape[-2:]).clone()


def images(n: int) -> Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_count_evaluations_counts_images_and_removes_its_hooks() -> None:
    model = ContractNet().eval()
    with count_evaluations(model) as counted, torch.no_grad():
        model(images(3))
        model(images(5))
    assert counted[0] == 8
    with torch.no_grad():
        model(images(2))
    assert counted[0] == 8  # hooks are gone
    assert not model._forward_pre_hooks
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_a_direct_forward_call_is_counted_through_the_first_layer() -> None:
    # Captum's DeepLIFT calls model.forward, which skips the model's own hooks
    model = ContractNet().eval()
    with count_evaluations(model) as counted, torch.no_grad():
        model.forward(images(4))
    assert counted[0] == 4


@pytest.mark.parametrize(
    ("configured", "evaluations", "maps_per_image", "budget", "minimum", "expected"),
    [
        (32, 1, 8, 20_000, 4, 32),       # a gradient method keeps every configured image
        (None, 1, 1, 20_000, 4, 100),    # None: all images
        (32, 256, 8, 20_000, 4, 9),      # LIME's 256 passes: 20000 // 2048
        (8, 1601, 23, 20_000, 4, 4),     # never below the minimum
        (2, 1601, 23, 20_000, 4, 2),     # nor above what was configured
        (32, 256, 8, None, 4, 32),       # no budget: no cut
        (0, 1, 1, 20_000, 4, 0),         # 0 skips the check
    ],
)
def test_affordable_images(configured, evaluations, maps_per_image, budget, minimum, expected) -> None:
    assert affordable_images(configured, 100, evaluations, maps_per_image, budget, minimum) == expected


def test_an_expensive_method_is_checked_on_fewer_images_and_a_cheap_one_on_all() -> None:
    model = ContractNet().eval()
    x = images(12)
    settings = ScorecardSettings(
        groups=("sensitivity_max", "random_logit", "emprt"), sensitivity_samples=2,
        robustness_images=12, evaluation_budget=620, min_images=3, n_boot=20)
    cheap = scorecard(model, Gradient, x, settings=settings)
    costly = scorecard(model, Occluding, x, settings=settings)
    assert cheap["evaluations_per_image"] == pytest.approx(1.0, abs=0.1)
    assert costly["evaluations_per_image"] == pytest.approx(50.0, abs=1.0)
    assert cheap["images"] == {"sensitivity_max": 12, "random_logit": 12, "emprt": 12}
    # 620 // (50 x 2) = 6 images for max-sensitivity, 620 // 50 = 12 for the others (the
    # count is 50 and a bit: the method learns the number of classes from one image)
    assert costly["images"]["sensitivity_max"] == 6
    assert len(costly["per_image"]["sensitivity_max"]) == 6
    assert costly["metrics"]["sensitivity_max"]["n"] <= 6
    tight = scorecard(model, Occluding, x, settings=ScorecardSettings(
        groups=("random_logit",), evaluation_budget=100, min_images=3, n_boot=20))
    assert tight["images"] == {"random_logit": 3}  # 100 // 50 = 2, raised to the minimum
    assert len(tight["per_image"]["random_logit_rho"]) == 3


def test_a_cascade_the_budget_cannot_pay_for_compares_fewer_steps_ending_at_the_random_model() -> None:
    model = ContractNet().eval()  # 4 parameterised layers
    x = images(6)
    settings = ScorecardSettings(groups=("randomization",), sanity_images=6,
                                 evaluation_budget=400, min_images=3, n_boot=20)
    cheap = scorecard(model, Gradient, x, settings=settings)
    assert [step["step"] for step in cheap["randomization"]["rho_by_layer"]] == [1, 2, 3, 4]
    costly = scorecard(model, Occluding, x, settings=settings)
    # 400 // (50 x 4 layers) = 2 images, raised to 3; 400 // (50 x 3 images) = 2 steps of 4
    assert costly["images"]["randomization"] == 3
    steps = costly["randomization"]["rho_by_layer"]
    assert [step["step"] for step in steps] == [2, 4]
    assert costly["randomization"]["cascade"] == cheap["randomization"]["cascade"]
    assert [step["layer"] for step in steps] == [cheap["randomization"]["cascade"][i] for i in (1, 3)]
    assert len(costly["per_image"]["randomization_rho_abs"]) == 3


@pytest.mark.parametrize("layers, images, evaluations, budget, expected", [
    (23, 4, 1.0, 10_000, None), (23, 4, 1601.0, 10_000, 1), (23, 4, 1000.0, 10_000, 2),
    (23, 4, 256.0, 10_000, 9), (23, 4, 1601.0, None, None), (23, 4, 100_000.0, 10_000, 1),
])
def test_cascade_budget(layers, images, evaluations, budget, expected) -> None:
    assert cascade_budget(layers, images, evaluations, budget) == expected


def test_given_maps_are_costed_on_one_image() -> None:
    model = ContractNet().eval()
    x = images(6)
    method = Occluding(model)
    maps = method(x)
    card = scorecard(model, method, x, maps=maps, settings=ScorecardSettings(
        groups=("random_logit",), evaluation_budget=210, min_images=2, n_boot=20))
    assert card["evaluations_per_image"] == pytest.approx(50.0, abs=1.0)
    assert card["images"] == {"random_logit": 4}  # 210 // 51 (50, and 1 to learn the classes)


def test_no_probe_when_no_check_recomputes_maps() -> None:
    model = ContractNet().eval()
    x = images(3)
    maps = Occluding(model)(x)
    with count_evaluations(model) as counted:
        card = scorecard(model, Occluding, x, maps=maps, settings=ScorecardSettings(
            groups=("complexity",), n_boot=20))
    assert card["evaluations_per_image"] is None and card["images"] == {}
    assert counted[0] <= 3  # the targets' forward pass only


def test_the_random_reference_is_computed_once_per_resolution_for_shared_images() -> None:
    model = ContractNet().eval()
    x = images(5)
    settings = ScorecardSettings(groups=("deletion_insertion",), steps=4, n_boot=20)
    shared: dict = {}
    scorecard(model, Gradient, x, settings=settings, shared=shared)
    with count_evaluations(model) as with_shared:
        reused = scorecard(model, Occluding, x, settings=settings, shared=shared)
    with count_evaluations(model) as alone:
        fresh = scorecard(model, Occluding, x, settings=settings)
    for key in ("deletion_random", "insertion_random", "deletion", "insertion"):
        assert reused["per_image"][key] == fresh["per_image"][key]
    assert reused["deletion_insertion"] == fresh["deletion_insertion"]
    # the reference's two curves (5 images x 5 steps each) are not recomputed
    assert alone[0] - with_shared[0] == 2 * 5 * 5
