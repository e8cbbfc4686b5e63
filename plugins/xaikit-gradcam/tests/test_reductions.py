"""Grad-CAM against Captum, and each method's formula on a case where it reduces to a known one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn
from xaikit_gradcam import (
    ISCAM,
    KPCACAM,
    METHODS,
    SSCAM,
    EigenCAM,
    EigenGradCAM,
    FinerCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)

from xaikit.attribution.base import upsample


class SmallNet(nn.Module):
    """conv-bn-relu, max-pool, conv-relu (the CAM layer, 8x8 on 16x16 inputs), then a head.

    ``head="gap"``: global average pooling and a linear layer (gradients constant over space);
    ``head="flatten"``: a linear layer on the flattened map (gradients vary over space).
    """

    def __init__(self, head: str = "flatten", channels: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, channels, 3, padding=1), nn.ReLU(),
        )
        self.head_kind = head
        self.fc = nn.Linear(channels if head == "gap" else channels * 64, 5)
        self.xaikit_target_layer = "features.5"

    def forward(self, x: Tensor) -> Tensor:
        a = self.features(x)
        return self.fc(a.mean(dim=(2, 3)) if self.head_kind == "gap" else a.flatten(1))


def images(n: int = 3) -> Tensor:
    return torch.randn(n, 3, 16, 16)


def test_gradcam_equals_captum_layer_gradcam_upsampled():
    model = SmallNet().eval()
    x, targets = images(4), [0, 3, 1, 4]
    ours = GradCAM(model)(x, targets)
    theirs = LayerGradCam(model, model.features[5]).attribute(
        x, target=targets, relu_attributions=True
    )
    torch.testing.assert_close(ours, upsample(theirs[:, 0], x.shape[-2:]))


def test_gradcam_is_cam_for_a_global_average_pooling_head():
    # dy^c/dA^k_ij = W_ck / (h w): Grad-CAM = ReLU(sum_k W_ck A^k) / (h w) (Zhou et al. 2016's CAM)
    model = SmallNet("gap").eval()
    x, targets = images(), torch.tensor([0, 2, 4])
    activation = model.features(x)
    cam = torch.einsum("bk,bkij->bij", model.fc.weight[targets], activation).relu() / 64
    torch.testing.assert_close(GradCAM(model)(x, targets), upsample(cam.detach(), (16, 16)))


@pytest.mark.parametrize("method_cls", [HiResCAM, XGradCAM])
def test_hirescam_and_xgradcam_equal_gradcam_when_gradients_are_constant_over_space(method_cls):
    model = SmallNet("gap").eval()
    x, targets = images(), [1, 2, 3]
    torch.testing.assert_close(method_cls(model)(x, targets), GradCAM(model)(x, targets))


def test_xgradcam_equals_gradcam_when_activations_are_uniform():
    # a constant image gives spatially constant activations away from the padded border:
    # use a 1x1-conv layer so every location is the same, with a head whose gradients vary
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3))
    model.xaikit_target_layer = "1"
    x = torch.rand(3, 3, 1, 1).expand(3, 3, 4, 4).contiguous()
    torch.testing.assert_close(XGradCAM(model)(x, [0, 1, 2]), GradCAM(model)(x, [0, 1, 2]))


def test_layercam_equals_hirescam_when_gradients_are_positive():
    model = SmallNet("gap").eval()
    with torch.no_grad():
        model.fc.weight.abs_()
    x, targets = images(), [0, 1, 2]
    assert bool((model.fc.weight > 0).all())
    torch.testing.assert_close(LayerCAM(model)(x, targets), HiResCAM(model)(x, targets))


def test_layercam_differs_from_hirescam_when_some_gradients_are_negative():
    model = SmallNet().eval()
    x, targets = images(), [0, 1, 2]
    assert not torch.allclose(LayerCAM(model)(x, targets), HiResCAM(model)(x, targets))


def test_gradcam_plus_plus_closed_form_for_a_global_average_pooling_head():
    # g^k_ij = W_ck / (h w) = g_k: alpha_k = 1 / (2 + S_k g_k), w_k = (h w) alpha_k ReLU(g_k)
    model = SmallNet("gap").eval()
    x, targets = images(), torch.tensor([4, 0, 2])
    activation = model.features(x).detach()
    g = model.fc.weight[targets].detach() / 64
    s = activation.sum(dim=(2, 3))
    weights = 64 * g.clamp_min(0) / (2 + s * g)
    cam = torch.einsum("bk,bkij->bij", weights, activation).relu()
    torch.testing.assert_close(GradCAMPlusPlus(model)(x, targets), upsample(cam, (16, 16)))


def scorecam_by_channel_loop(
    model: nn.Module, x: Tensor, target: int, score: str = "cic", scale: float = 1.0,
    noise: Tensor | None = None,
) -> Tensor:
    """Score-CAM's weights ``[K]`` for one image [3, H, W], one masked forward per channel; the
    masks are multiplied by ``scale`` and ``noise`` ``[K, H, W]`` is added to them."""
    with torch.no_grad():
        activation = model.features(x[None])[0]
        scores = []
        for k, channel in enumerate(activation):
            mask = F.interpolate(channel[None, None], size=x.shape[-2:], mode="bilinear")[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            if noise is not None:
                mask = mask + noise[k]
            logits = model(x[None] * scale * mask)[0]
            if score != "softmax-logits":
                logits = F.softmax(logits, 0)
            scores.append(logits[target])
        scores = torch.stack(scores)
        if score == "softmax-logits":
            return F.softmax(scores, dim=0)
        if score == "probability":
            return scores
        return scores - F.softmax(model(torch.zeros_like(x[None]))[0], 0)[target]


def cam_of(weights: Tensor, activation: Tensor) -> Tensor:
    return upsample((weights[:, None, None] * activation).sum(dim=0).relu()[None], (16, 16))[0]


@pytest.mark.parametrize("score", ["cic", "probability", "softmax-logits"])
def test_scorecam_matches_the_per_channel_formula(score):
    model = SmallNet(channels=4).eval()
    x, targets = images(), [3, 0, 1]
    maps = ScoreCAM(model, chunk_size=5, score=score)(x, targets)
    activation = model.features(x).detach()
    assert bool((activation.amax(dim=(2, 3)) > activation.amin(dim=(2, 3))).all())
    for i in range(3):
        weights = scorecam_by_channel_loop(model, x[i], targets[i], score)
        torch.testing.assert_close(maps[i], cam_of(weights, activation[i]))


def test_scorecam_with_one_channel():
    # cic: the channel times its probability gain; softmax over one channel: the channel itself
    model = SmallNet(channels=1).eval()
    x = images()
    activation = model.features(x)[:, 0].detach()
    gains = torch.stack([scorecam_by_channel_loop(model, x[i], 0)[0] for i in range(3)])
    expected = upsample((gains[:, None, None] * activation).relu(), (16, 16))
    torch.testing.assert_close(ScoreCAM(model)(x, 0), expected)
    softmax_logits = ScoreCAM(model, score="softmax-logits")(x, 0)
    torch.testing.assert_close(softmax_logits, upsample(activation.relu(), (16, 16)))


def test_scorecam_rejects_an_unknown_score():
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match="score must be one of"):
        ScoreCAM(SmallNet(), score="logit")


def test_sscam_matches_the_per_channel_formula_with_its_noise():
    model = SmallNet(channels=3).eval()
    x, targets = images(2), [1, 4]
    method = SSCAM(model, num_samples=3, std=0.5, seed=7, chunk_size=4)
    maps = method(x, targets)
    activation = model.features(x).detach()
    noise = method.noise(torch.zeros(1, 3, 16, 16))
    assert noise.shape == (3, 3, 16, 16)
    for i in range(2):
        probabilities = torch.stack([
            scorecam_by_channel_loop(model, x[i], targets[i], "probability", noise=n) for n in noise
        ]).mean(dim=0)
        baseline = F.softmax(model(torch.zeros(1, 3, 16, 16)), dim=1)[0, targets[i]].detach()
        torch.testing.assert_close(maps[i], cam_of(probabilities - baseline, activation[i]))


def test_sscam_without_noise_and_iscam_with_one_step_are_scorecam():
    model = SmallNet().eval()
    x, targets = images(), [0, 2, 4]
    expected = ScoreCAM(model)(x, targets)
    torch.testing.assert_close(SSCAM(model, std=0.0, num_samples=2)(x, targets), expected)
    torch.testing.assert_close(ISCAM(model, num_samples=1)(x, targets), expected)


@pytest.mark.parametrize("cumulative", [False, True])
def test_iscam_matches_the_per_channel_formula_along_its_path(cumulative):
    model = SmallNet(channels=3).eval()
    x, targets = images(2), [2, 0]
    method = ISCAM(model, num_samples=4, cumulative=cumulative, score="softmax-logits")
    maps = method(x, targets)
    scales = [0.25, 0.75, 1.5, 2.5] if cumulative else [0.25, 0.5, 0.75, 1.0]
    assert method.coefficients() == pytest.approx(scales)
    activation = model.features(x).detach()
    for i in range(2):
        with torch.no_grad():
            logits = torch.stack([
                torch.log(scorecam_by_channel_loop(model, x[i], targets[i], "softmax-logits", s))
                for s in scales
            ])  # log softmax_k of logits = logits - logsumexp: averaging then softmax is exact
        weights = F.softmax(logits.mean(dim=0), dim=0)
        torch.testing.assert_close(maps[i], cam_of(weights, activation[i]))


def test_scorecam_does_not_depend_on_the_chunk_size():
    model = SmallNet().eval()
    x = images()
    one_by_one = ScoreCAM(model, chunk_size=1)(x, 2)
    torch.testing.assert_close(one_by_one, ScoreCAM(model, chunk_size=1000)(x, 2))


def test_scorecam_rejects_a_chunk_size_below_one():
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match="chunk_size"):
        ScoreCAM(SmallNet(), chunk_size=0)


def test_gradcam_elementwise_equals_hirescam_when_every_product_is_positive():
    model = SmallNet("gap").eval()  # the CAM layer is a ReLU: A >= 0
    with torch.no_grad():
        model.fc.weight.abs_()  # g = W_c / (h w) > 0
    x, targets = images(), [0, 1, 2]
    torch.testing.assert_close(GradCAMElementWise(model)(x, targets), HiResCAM(model)(x, targets))


def test_finercam_without_comparison_is_gradcam():
    model = SmallNet().eval()
    x, targets = images(), [0, 3, 4]
    torch.testing.assert_close(FinerCAM(model, alpha=0.0)(x, targets), GradCAM(model)(x, targets))


def test_finercam_compares_with_the_classes_whose_logits_are_nearest():
    from xaikit_gradcam.finercam import similar_classes

    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 4.5], [3.0, 2.0, 1.0, 0.0, -5.0]])
    rivals = similar_classes(logits, torch.tensor([1, 4]), 3)
    assert rivals.tolist() == [[4, 2, 0], [3, 2, 1]]
    assert similar_classes(logits[:, :2], torch.tensor([0, 0]), 3).tolist() == [[1], [1]]


def test_smoothgradcam_plus_plus_without_noise_is_gradcam_plus_plus():
    model = SmallNet().eval()
    x, targets = images(), [1, 2, 3]
    method = SmoothGradCAMPlusPlus(model, std=0.0, num_samples=2)
    torch.testing.assert_close(method(x, targets), GradCAMPlusPlus(model)(x, targets))


def test_kpca_cam_with_a_linear_kernel_is_eigencam():
    model = SmallNet().eval()
    x = images()
    torch.testing.assert_close(KPCACAM(model, kernel="linear")(x, 0), EigenCAM(model)(x, 0))


def test_eigengradcam_is_the_principal_component_of_gradient_times_activation():
    from xaikit_gradcam.projection import first_component

    model = SmallNet().eval()
    x, targets = images(), torch.tensor([0, 1, 2])
    method = EigenGradCAM(model)
    activation, gradient, _ = method.forward_with_layer(x, targets)
    expected = upsample(first_component(gradient * activation).relu(), (16, 16))
    torch.testing.assert_close(method(x, targets), expected)


def test_the_plugin_registers_every_method_with_its_class(plugin_manager):
    import xaikit

    expected = {
        "gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "scorecam",
        "gradcam-elementwise", "eigencam", "eigengradcam", "ablationcam", "fullgrad", "kpca-cam",
        "shapleycam", "finercam", "fem", "sscam", "iscam", "smoothgradcam++", "cam",
    }
    assert {cls.name for cls in METHODS} == expected
    for cls in METHODS:
        assert xaikit.get_attribution(cls.name) is cls
        assert cls.scale and cls.__doc__ and "Cost" in cls.__doc__, cls.name
        assert cls.uses_layer == (cls.name != "fullgrad")
        assert cls.signed == (cls.name == "cam")
    entries = xaikit.registry.attribution_entries()
    assert {entries[cls.name].plugin for cls in METHODS} == {"gradcam"}
