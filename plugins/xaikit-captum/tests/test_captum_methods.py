"""Tests of the Captum-backed attribution methods on a tiny seeded CNN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from xaikit_captum import (
    ALL_METHODS,
    CaptumGradCam,
    DeepLift,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
)
from xaikit_captum._captum_call import hook_counts

from xaikit.errors import XaikitError
from xaikit.registry import attribution_entries

H = W = 16


class TinyNet(nn.Module):
    """Two convs with in-place ReLUs, GAP and a linear head; ``boom`` makes forward raise."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 5)
        self.boom = False
        self.xaikit_target_layer = "features.2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        if self.boom:
            raise RuntimeError("boom")
        return self.head(self.pool(a).flatten(1))


@pytest.fixture
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 3, H, W, generator=torch.Generator().manual_seed(1))


def test_plugin_registers_every_method(plugin_manager) -> None:
    entries = attribution_entries(plugin_manager)
    for method_cls in ALL_METHODS:
        assert entries[method_cls.name].obj is method_cls
        assert entries[method_cls.name].plugin == "captum"


@pytest.mark.parametrize("method_cls", ALL_METHODS, ids=lambda c: c.name)
def test_maps_shape_finite_sign_and_state(method_cls, model, images) -> None:
    model.train()
    before = hook_counts(model)
    maps = method_cls(model)(images, target=[0, 1, 2, 3])
    assert maps.shape == (4, H, W)
    assert maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    if not method_cls.signed:
        assert (maps >= 0).all()
    assert hook_counts(model) == before == 0
    assert model.training and all(m.training for m in model.modules())
    assert all(m.inplace for m in model.features if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("method_cls", ALL_METHODS, ids=lambda c: c.name)
def test_each_image_of_a_batch_is_independent(method_cls, model, images) -> None:
    method = method_cls(model)
    together = method(images, target=[0, 1, 2, 3])
    alone = torch.cat([method(images[i : i + 1], target=i) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method_cls", ALL_METHODS, ids=lambda c: c.name)
def test_no_hook_left_after_an_exception(method_cls, model, images) -> None:
    model.train()
    method = method_cls(model)
    model.boom = True
    with pytest.raises(RuntimeError, match="boom"):
        method(images, target=0)
    assert hook_counts(model) == 0
    assert model.training
    assert all(m.inplace for m in model.features if isinstance(m, nn.ReLU))
    model.boom = False
    assert method(images, target=0).shape == (4, H, W)


def test_integrated_gradients_completeness_and_delta(model, images) -> None:
    ig = IntegratedGradients(model, n_steps=128, internal_batch_size=64)
    target = torch.tensor([0, 1, 2, 3])
    maps = ig(images, target)
    with torch.no_grad():
        rows = torch.arange(4)
        gain = model(images)[rows, target] - model(torch.zeros_like(images))[rows, target]
    assert ig.last_delta is not None and ig.last_delta.shape == (4,)
    assert ig.last_delta.abs().max() < 1e-2 * gain.abs().max() + 1e-4
    tolerance = 1e-2 * gain.abs().max().item() + 1e-4
    torch.testing.assert_close(maps.sum(dim=(1, 2)), gain, atol=tolerance, rtol=0)
    coarse = IntegratedGradients(model, n_steps=1)
    coarse(images, target)
    assert coarse.last_delta.abs().mean() > ig.last_delta.abs().mean()


def test_integrated_gradients_per_channel_baseline(model, images) -> None:
    ig = IntegratedGradients(model, n_steps=64, baseline=[-1.0, 0.0, 1.0])
    base = ig.baselines(images)
    assert base.shape == images.shape
    assert torch.equal(base[:, 2], torch.ones_like(base[:, 2]))
    maps = ig(images, 0)
    with torch.no_grad():
        gain = model(images)[:, 0] - model(base)[:, 0]
    torch.testing.assert_close(maps.sum(dim=(1, 2)) - ig.last_delta, gain, atol=1e-4, rtol=1e-4)
    with pytest.raises(XaikitError):
        IntegratedGradients(model, baseline=[0.0, 1.0]).baselines(images)


def test_saliency_is_abs_autograd_gradient_max_over_channels(model, images) -> None:
    target = torch.tensor([4, 3, 2, 1])
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[torch.arange(4), target].sum(), x)
    expected = grad.abs().amax(dim=1)
    torch.testing.assert_close(Saliency(model)(images, target), expected)


def test_captum_gradcam_matches_a_hand_computation(model, images) -> None:
    target = torch.tensor([1, 1, 0, 4])
    layer = model.features[2]
    store = {}

    def keep_pre_relu(_module, _inputs, out):  # the in-place ReLU after it must not touch A
        store["act"] = out
        return out.clone()

    handle = layer.register_forward_hook(keep_pre_relu)
    try:
        logits = model(images)
    finally:
        handle.remove()
    act = store["act"]
    (grad,) = torch.autograd.grad(logits[torch.arange(4), target].sum(), act)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1)).detach()
    expected = F.interpolate(cam[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    method = CaptumGradCam(model)
    assert method.layer_name == "features.2"
    torch.testing.assert_close(method(images, target), expected)


def test_gradcam_bad_layer_lists_valid_ones(model) -> None:
    with pytest.raises(XaikitError, match="features.2"):
        CaptumGradCam(model, layer="nope")
    with pytest.raises(XaikitError):
        Saliency(model, layer="features.2")


def test_smoothgrad_is_seeded_and_differs_from_saliency(model, images) -> None:
    first = SmoothGrad(model, nt_samples=8, seed=3)(images, 0)
    again = SmoothGrad(model, nt_samples=8, seed=3)(images, 0)
    torch.testing.assert_close(first, again)
    plain = Saliency(model)(images, 0)
    assert not torch.allclose(first, plain)
    no_noise = SmoothGrad(model, nt_samples=4, stdevs=0.0)(images, 0)
    torch.testing.assert_close(no_noise, plain)
    uneven = SmoothGrad(model, nt_samples=10, nt_samples_batch_size=4)  # 4 + 4 + 2 samples
    one_pass = SmoothGrad(model, nt_samples=10, nt_samples_batch_size=None)
    torch.testing.assert_close(uneven(images, 0), one_pass(images, 0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(uneven(images[2:3], 0), uneven(images, 0)[2:3], atol=1e-6, rtol=1e-5)


def test_scorecard_with_integrated_gradients(model, images) -> None:
    from xaikit.metrics import ScorecardSettings, scorecard

    settings = ScorecardSettings(steps=4, n_boot=100, sanity_images=2, robustness_images=2)
    result = scorecard(model, IntegratedGradients(model, n_steps=128), images, settings=settings)
    assert result["method"] == "integrated-gradients"
    with torch.no_grad():
        scale = model(images).abs().max().item()
    assert result["metrics"]["completeness_gap"]["high"] < 1e-2 * scale + 1e-4
    assert len(result["randomization"]["rho_by_layer"]) == 3  # features.0, features.2, head


def test_captum_gradcam_changes_when_the_model_is_randomised(model, images) -> None:
    from xaikit.metrics import randomization

    check = randomization(model, CaptumGradCam, images, target=None)
    assert check["layers"] == ["head", "features.2", "features.0"]
    assert float(check["rho_abs_final"].mean()) < 0.5


class SharedReluNet(nn.Module):
    """One ``nn.ReLU`` module used twice: DeepLift's multipliers would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.head(a.mean(dim=(2, 3)))


def test_deeplift_refuses_a_reused_relu_and_sums_to_delta(model, images) -> None:
    shared = SharedReluNet().eval()
    with pytest.raises(XaikitError, match="relu"):
        DeepLift(shared)(images, 0)
    assert hook_counts(shared) == 0
    maps = DeepLift(model)(images, target=2)
    with torch.no_grad():
        gain = model(images)[:, 2] - model(torch.zeros_like(images))[:, 2]
    torch.testing.assert_close(maps.sum(dim=(1, 2)), gain, atol=1e-4, rtol=1e-4)


def test_scorecard_reports_deeplift_completeness_gap(model, images) -> None:
    """DeepLIFT's summation-to-delta, measured by the scorecard: ~0 on TinyNet's ReLU modules."""
    from xaikit.metrics import ScorecardSettings, scorecard
    from xaikit_captum import DeepLift

    settings = ScorecardSettings(groups=("completeness_gap",), n_boot=50)
    result = scorecard(model, DeepLift, images, settings=settings)
    with torch.no_grad():
        scale = model(images).abs().max().item()
    gap = result["metrics"]["completeness_gap"]
    assert gap["n"] == len(images)
    assert gap["high"] < 1e-4 * scale + 1e-5


@pytest.mark.parametrize("name", ["guided-backprop", "deconvolution", "guided-gradcam"])
def test_modified_relu_methods_refuse_a_model_without_relu_modules(name, model, images) -> None:
    """On a GELU model Captum would change nothing: the map would be the plain gradient."""
    from xaikit import NotApplicableError, get_attribution

    gelu = TinyNet().eval()
    gelu.features[1], gelu.features[3] = nn.GELU(), nn.GELU()
    with pytest.raises(NotApplicableError, match=r"nn\.ReLU modules, and TinyNet has none \(its activation "
                                                 r"modules: GELU\): its map would be the plain gradient"):
        get_attribution(name)(gelu)
    # with ReLUs the backward pass really is modified: the map is not the gradient's channel sum
    x = images.clone().requires_grad_(True)
    model(x)[torch.arange(len(x)), 2].sum().backward()
    maps = get_attribution(name)(model)(images, 2)
    assert not torch.allclose(maps, x.grad.sum(dim=1), atol=1e-6)
