"""The methods added for issue 12, each checked against Captum called directly on the same
model, inputs, targets and references, plus seeding and LRP's applicability check."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge
from captum.attr import LRP as CaptumLRP
from captum.attr import (
    Deconvolution as CaptumDeconvolution,
)
from captum.attr import (
    DeepLiftShap as CaptumDeepLiftShap,
)
from captum.attr import (
    FeatureAblation as CaptumFeatureAblation,
)
from captum.attr import (
    GradientShap as CaptumGradientShap,
)
from captum.attr import (
    GuidedGradCam as CaptumGuidedGradCam,
)
from captum.attr import (
    KernelShap as CaptumKernelShap,
)
from captum.attr import (
    Lime as CaptumLime,
)
from captum.attr import (
    NoiseTunnel,
)
from captum.attr import (
    Saliency as CaptumSaliency,
)
from captum.attr import (
    ShapleyValueSampling as CaptumShapleyValueSampling,
)
from scipy.ndimage import gaussian_filter
from torch import nn
from xaikit_captum import (
    LRP,
    Deconvolution,
    DeepLiftShap,
    FeatureAblation,
    GradientShap,
    GuidedGradCam,
    KernelShap,
    Lime,
    ShapleyValueSampling,
    SmoothGradSquared,
    VarGrad,
)
from xaikit_captum._baselines import gaussian_blur
from xaikit_captum._captum_call import hook_counts
from xaikit_captum._patches import n_patches, patch_mask

from xaikit import NotApplicableError, XaikitError

# Captum's own chatter from the direct calls (the wrappers quiet it in captum_call).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(did not already require gradients|hooks|non-linear).*:UserWarning"
)

H, W = 16, 20
TARGETS = torch.tensor([0, 3, 1])


class TinyNet(nn.Module):
    """conv-ReLU(in place)-conv-ReLU(in place), GAP, linear: five classes, any input size."""

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
        self.xaikit_target_layer = "features.2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class MaxPoolHeadNet(TinyNet):
    """TinyNet with an adaptive max-pool head and an ``nn.Flatten``: layers LRP has no rule for."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.pool(self.features(x))))


@pytest.fixture
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(1))


def plain(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ReLUs are not in place, for Captum's hook-based methods."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return twin


def close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference, asserted below 1e-5 of the maps' scale."""
    diff = float((actual - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    assert actual.shape == expected.shape
    assert diff <= 1e-5 * scale, f"max abs diff {diff:.3g}"
    return diff


def grid_mask(patch: int) -> torch.Tensor:
    """The patch grid built independently of ``_patches``: ``[1, 3, H, W]`` feature ids."""
    rows = torch.arange(H).div(patch, rounding_mode="floor")
    cols = torch.arange(W).div(patch, rounding_mode="floor")
    ids = rows[:, None] * ((W + patch - 1) // patch) + cols[None, :]
    return ids.repeat(1, 3, 1, 1)


def references(x: torch.Tensor, sigmas: tuple[float, ...], n_noise: int, std: float, seed: int):
    """The SHAP references built independently: zeros, scipy-blurred copies, seeded noise."""
    out = []
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((n_noise, *x.shape[1:]), generator=generator) * std

    def blur(channel: torch.Tensor, sigma: float) -> np.ndarray:
        return gaussian_filter(channel.double().numpy(), sigma, mode="nearest", truncate=3.0)

    for image in x:
        blurred = [
            torch.from_numpy(np.stack([blur(c, s) for c in image])).float() for s in sigmas
        ]
        out.append(torch.stack([torch.zeros_like(image), *blurred, *noise]))
    return out


# ---------------------------------------------------------------- helpers


def test_patch_mask_is_a_row_major_grid_with_narrow_last_patches() -> None:
    mask = patch_mask((3, H, W), 4, torch.device("cpu"))
    assert mask.shape == (1, 3, H, W) and mask.is_contiguous() and mask.dtype == torch.long
    assert torch.equal(mask, grid_mask(4))
    assert n_patches((3, 32, 32), 4) == 64 and int(patch_mask((3, 32, 32), 4, "cpu").max()) == 63
    uneven = patch_mask((3, 10, 10), 4, torch.device("cpu"))[0, 0]
    assert int(uneven.max()) + 1 == n_patches((3, 10, 10), 4) == 9
    assert (uneven == 8).sum() == 4  # the bottom-right patch is 2x2


def test_gaussian_blur_matches_scipy_with_edge_padding(images) -> None:
    for sigma in (1.0, 2.0, 4.0):
        ours = gaussian_blur(images, sigma)
        for b in range(len(images)):
            for c in range(3):
                channel = images[b, c].double().numpy()
                ref = gaussian_filter(channel, sigma, mode="nearest", truncate=3.0)
                np.testing.assert_allclose(ours[b, c].numpy(), ref, atol=1e-5)


# ---------------------------------------------------------------- against Captum


def test_gradient_shap_equals_captum_per_image(model, images) -> None:
    ours = GradientShap(model, n_samples=12, stdevs=0.1, seed=7)
    refs = references(images, (1.0, 2.0, 4.0), 4, 1.0, 7)
    for i, ref in enumerate(ours.baselines(images)):
        close(ref, refs[i])
    maps = ours(images, TARGETS)
    for i in range(len(images)):
        torch.manual_seed(7)
        np.random.seed(7)
        expected = CaptumGradientShap(model).attribute(
            images[i : i + 1], baselines=ours.baselines(images)[i], n_samples=12, stdevs=0.1,
            target=TARGETS[i : i + 1],
        ).sum(dim=1)
        close(maps[i : i + 1], expected.detach())


def test_deeplift_shap_equals_captum_per_image(model, images) -> None:
    ours = DeepLiftShap(model, blur_sigmas=(2.0,), n_noise=3, noise_std=0.5, seed=3)
    refs = references(images, (2.0,), 3, 0.5, 3)
    maps = ours(images, TARGETS)
    twin = plain(model)
    for i in range(len(images)):
        expected = CaptumDeepLiftShap(twin).attribute(
            images[i : i + 1], baselines=refs[i], target=TARGETS[i : i + 1]
        ).sum(dim=1)
        close(maps[i : i + 1], expected.detach())
    # summation to delta against the mean reference output (ReLU/avg-pool model: exact)
    with torch.no_grad():
        gain = torch.stack([
            model(images[i : i + 1])[0, TARGETS[i]] - model(refs[i])[:, TARGETS[i]].mean()
            for i in range(len(images))
        ])
    torch.testing.assert_close(maps.sum(dim=(1, 2)), gain, atol=1e-4, rtol=1e-4)
    with pytest.raises(XaikitError, match="two references"):
        DeepLiftShap(model, blur_sigmas=(), n_noise=0)


def test_deconvolution_equals_captum(model, images) -> None:
    expected = CaptumDeconvolution(plain(model)).attribute(images, target=TARGETS).sum(dim=1)
    close(Deconvolution(model)(images, TARGETS), expected.detach())


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_guided_gradcam_equals_captum(model, images, mode) -> None:
    twin = plain(model)
    expected = CaptumGuidedGradCam(twin, twin.features[2]).attribute(
        images, target=TARGETS, interpolate_mode=mode
    ).sum(dim=1)
    method = GuidedGradCam(model, interpolate_mode=mode)
    assert method.layer_name == "features.2"
    close(method(images, TARGETS), expected.detach())
    other = GuidedGradCam(model, layer="features.0", interpolate_mode=mode)(images, TARGETS)
    assert not torch.allclose(other, expected)


def test_feature_ablation_equals_captum_and_the_definition(model, images) -> None:
    expected = CaptumFeatureAblation(model).attribute(
        images, baselines=0.0, target=TARGETS, feature_mask=grid_mask(4), perturbations_per_eval=3
    )[:, 0]
    maps = FeatureAblation(model)(images, TARGETS)
    close(maps, expected)
    ablated = images.clone()
    ablated[:, :, 4:8, 8:12] = 0  # patch (row 1, column 2)
    with torch.no_grad():
        drop = model(images)[torch.arange(3), TARGETS] - model(ablated)[torch.arange(3), TARGETS]
    torch.testing.assert_close(maps[:, 5, 9], drop, atol=1e-5, rtol=1e-5)
    assert torch.equal(maps[:, 4:8, 8:12], maps[:, 5:6, 9:10].expand(-1, 4, 4))


def test_shapley_sampling_equals_captum_and_is_efficient(model, images) -> None:
    maps = ShapleyValueSampling(model, n_samples=3, seed=11)(images, TARGETS)
    torch.manual_seed(11)
    expected = CaptumShapleyValueSampling(model).attribute(
        images, baselines=0.0, target=TARGETS, feature_mask=grid_mask(4), n_samples=3
    )[:, 0]
    close(maps, expected)
    with torch.no_grad():
        rows = torch.arange(3)
        gain = model(images)[rows, TARGETS] - model(torch.zeros_like(images))[rows, TARGETS]
    per_patch = maps[:, ::4, ::4]  # one pixel of each 4x4 patch
    torch.testing.assert_close(per_patch.sum(dim=(1, 2)), gain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("regression,alpha", [("ridge", 1.0), ("lasso", 0.001)])
def test_lime_equals_captum_per_image(model, images, regression, alpha) -> None:
    maps = Lime(model, n_samples=40, regression=regression, alpha=alpha, seed=5)(images, TARGETS)
    surrogate = {"ridge": SkLearnRidge, "lasso": SkLearnLasso}[regression]
    for i in range(len(images)):
        torch.manual_seed(5)
        expected = CaptumLime(model, interpretable_model=surrogate(alpha=alpha)).attribute(
            images[i : i + 1], baselines=0.0, target=TARGETS[i : i + 1], feature_mask=grid_mask(4),
            n_samples=40,
        )[:, 0]
        close(maps[i : i + 1], expected)
    assert maps.abs().sum() > 0


def test_kernel_shap_equals_captum_per_image(model, images) -> None:
    maps = KernelShap(model, n_samples=48, seed=9)(images, TARGETS)
    for i in range(len(images)):
        torch.manual_seed(9)
        expected = CaptumKernelShap(model).attribute(
            images[i : i + 1], baselines=0.0, target=TARGETS[i : i + 1], feature_mask=grid_mask(4),
            n_samples=48,
        )[:, 0]
        close(maps[i : i + 1], expected)


@pytest.mark.parametrize(
    "cls,nt_type", [(VarGrad, "vargrad"), (SmoothGradSquared, "smoothgrad_sq")]
)
def test_noise_tunnel_variants_equal_captum_per_image(model, images, cls, nt_type) -> None:
    maps = cls(model, nt_samples=10, stdevs=0.3, nt_samples_batch_size=4, seed=2)(images, TARGETS)
    for i in range(len(images)):
        torch.manual_seed(2)
        expected = NoiseTunnel(CaptumSaliency(model)).attribute(
            images[i : i + 1], nt_type=nt_type, nt_samples=10, nt_samples_batch_size=4, stdevs=0.3,
            target=TARGETS[i : i + 1], abs=False,
        )
        close(maps[i : i + 1], expected.clamp_min(0).sum(dim=1))
    assert (maps >= 0).all()


def test_lrp_equals_captum_on_a_plain_conv_relu_linear_model(model, images) -> None:
    twin = plain(model)
    expected, delta = CaptumLRP(twin).attribute(
        images, target=TARGETS, return_convergence_delta=True
    )
    method = LRP(model)
    close(method(images, TARGETS), expected.sum(dim=1).detach())
    torch.testing.assert_close(method.last_delta, delta.reshape(-1))
    leftovers = [
        n for n, m in model.named_modules() if hasattr(m, "rule") or hasattr(m, "activations")
    ]
    assert leftovers == [] and hook_counts(model) == 0


def test_lrp_keeps_a_rule_the_user_set(model, images) -> None:
    from captum.attr._utils.lrp_rules import EpsilonRule

    rule = EpsilonRule(epsilon=0.5)
    model.head.rule = rule
    LRP(model)(images, TARGETS)
    assert model.head.rule is rule


def test_lrp_refuses_layers_without_a_rule_up_front() -> None:
    with pytest.raises(NotApplicableError) as info:
        LRP(MaxPoolHeadNet())
    message = str(info.value)
    assert "\n" not in message
    assert "AdaptiveMaxPool2d ('pool')" in message and "Flatten ('flatten')" in message
    with pytest.raises(NotApplicableError, match="Identity"):
        LRP(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Identity(), nn.Flatten(), nn.LazyLinear(2)))


class ResidualNet(TinyNet):
    """TinyNet with a functional residual add of two branches: no LRP rule covers it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features[1](self.features[0](x))
        b = self.features[3](self.features[2](a))
        return self.head(self.pool(torch.cat([a, a], dim=1)[:, :8] + b).flatten(1))


class AttentionHead(TinyNet):
    """TinyNet whose pooled features are re-weighted by a functional softmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.pool(self.features(x)).flatten(1)
        return self.head(f.softmax(dim=1) * 8.0)


class Untraceable(TinyNet):
    """Data-dependent control flow: torch.fx cannot trace it, so only its layers are checked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e9:
            x = x * 0
        return super().forward(x)


def test_lrp_refuses_functions_without_a_rule_up_front(images) -> None:
    with pytest.raises(NotApplicableError, match=r"add of two tensors \('forward'\)") as info:
        LRP(ResidualNet())
    assert "\n" not in str(info.value)
    with pytest.raises(NotApplicableError, match="softmax"):
        LRP(AttentionHead())
    torch.manual_seed(0)
    plain_net = TinyNet().eval()
    torch.manual_seed(0)
    untraceable = Untraceable().eval()
    torch.testing.assert_close(LRP(untraceable)(images, TARGETS), LRP(plain_net)(images, TARGETS))


# ---------------------------------------------------------------- seeds


SEEDED = [
    (GradientShap, {"n_samples": 6, "stdevs": 0.2}),
    (DeepLiftShap, {}),
    (ShapleyValueSampling, {"n_samples": 2}),
    (Lime, {"n_samples": 24}),
    (KernelShap, {"n_samples": 24}),
    (VarGrad, {"nt_samples": 4}),
    (SmoothGradSquared, {"nt_samples": 4}),
]


@pytest.mark.parametrize("cls,kwargs", SEEDED, ids=lambda v: getattr(v, "name", ""))
def test_a_seed_gives_the_same_map_twice_and_leaves_the_global_rngs_alone(
    cls, kwargs, model, images
) -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = cls(model, seed=4, **kwargs)(images, TARGETS)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    torch.manual_seed(999)  # another global state changes nothing
    again = cls(model, seed=4, **kwargs)(images, TARGETS)
    assert torch.equal(first, again)
    other = cls(model, seed=5, **kwargs)(images, TARGETS)
    assert not torch.equal(first, other)


def test_seed_none_draws_from_the_global_rng(model, images) -> None:
    method = VarGrad(model, nt_samples=4, seed=None)
    torch.manual_seed(1)
    first = method(images, TARGETS)
    torch.manual_seed(1)
    assert torch.equal(method(images, TARGETS), first)
    assert not torch.equal(method(images, TARGETS), first)
    with pytest.raises(XaikitError, match="seed"):
        VarGrad(model, seed=-1)
