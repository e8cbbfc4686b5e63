"""Grad-CAM against Captum, and each method's formula on a case where it reduces to a known one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn

from xaikit.attribution.base import upsample
from xaikit_gradcam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM


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


def scorecam_by_channel_loop(model: nn.Module, x: Tensor, target: int) -> Tensor:
    """Score-CAM of one image [3, H, W], one masked forward per channel."""
    with torch.no_grad():
        activation = model.features(x[None])[0]
        scores = []
        for channel in activation:
            mask = F.interpolate(channel[None, None], size=x.shape[-2:], mode="bilinear")[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            scores.append(F.softmax(model(x[None] * mask), dim=1)[0, target])
        weights = F.softmax(torch.stack(scores), dim=0)
        return (weights[:, None, None] * activation).sum(dim=0).relu()


def test_scorecam_matches_the_per_channel_formula():
    model = SmallNet(channels=4).eval()
    x, targets = images(), [3, 0, 1]
    maps = ScoreCAM(model, chunk_size=5)(x, targets)
    activation = model.features(x).detach()
    assert bool((activation.amax(dim=(2, 3)) > activation.amin(dim=(2, 3))).all())
    for i in range(3):
        expected = upsample(scorecam_by_channel_loop(model, x[i], targets[i])[None], (16, 16))[0]
        torch.testing.assert_close(maps[i], expected)


def test_scorecam_with_one_channel_is_the_relu_of_that_channel():
    model = SmallNet(channels=1).eval()
    x = images()
    expected = upsample(model.features(x)[:, 0].detach().relu(), (16, 16))
    torch.testing.assert_close(ScoreCAM(model)(x, [0, 1, 2]), expected)


def test_scorecam_does_not_depend_on_the_chunk_size():
    model = SmallNet().eval()
    x = images()
    torch.testing.assert_close(ScoreCAM(model, chunk_size=1)(x, 2), ScoreCAM(model, chunk_size=1000)(x, 2))


def test_scorecam_rejects_a_chunk_size_below_one():
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match="chunk_size"):
        ScoreCAM(SmallNet(), chunk_size=0)


def test_the_plugin_registers_all_six_methods_with_their_classes(plugin_manager):
    import xaikit

    expected = {
        "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM,
        "layercam": LayerCAM, "hirescam": HiResCAM, "scorecam": ScoreCAM,
    }
    for name, cls in expected.items():
        assert xaikit.get_attribution(name) is cls
        assert cls.uses_layer and not cls.signed and cls.scale
    entries = xaikit.registry.attribution_entries()
    assert {entries[name].plugin for name in expected} == {"gradcam"}
