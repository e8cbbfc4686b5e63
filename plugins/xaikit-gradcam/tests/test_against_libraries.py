"""The plugin's maps against pytorch-grad-cam's and torch-cam's own, where they are installed.

Neither library is a dependency of anything: these tests are skipped without them. To run
them, install them next to xaikit (``pip install grad-cam torchcam``, or into a folder on
``PYTHONPATH``). The model's CAM layer has the input's resolution, so no resampling stands
between the maps. pytorch-grad-cam returns maps min-max normalised twice (each layer's, then
their mean, with ``1e-7`` added to the maximum): :func:`as_pytorch_grad_cam` does the same to
ours. torch-cam is called with ``normalized=False`` and compared exactly.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from xaikit_gradcam import (
    CAM,
    FEM,
    ISCAM,
    KPCACAM,
    SSCAM,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    ScoreCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
)

pytorch_grad_cam = pytest.importorskip(
    "pytorch_grad_cam", reason="pytorch-grad-cam is not installed"
)


class TinyNet(nn.Module):
    """conv-bn-relu, conv-relu (the CAM layer ``features.4``, 5 x 8 x 8), then a curved head
    (``head="mlp"``: flatten, linear, tanh, linear) or global average pooling and a linear
    layer (``head="gap"``)."""

    def __init__(self, head: str = "mlp") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
        )
        self.gap = head == "gap"
        if self.gap:
            self.head = nn.Linear(5, 5)
        else:
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(5 * 64, 16), nn.Tanh(), nn.Linear(16, 5)
            )
        self.xaikit_target_layer = "features.4"
        with torch.no_grad():
            bn = self.features[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            for p in self.head.parameters():
                p.mul_(20)

    def forward(self, x: Tensor) -> Tensor:
        a = self.features(x)
        return self.head(a.mean(dim=(2, 3)) if self.gap else a)


@pytest.fixture
def case() -> tuple[nn.Module, Tensor, list[int]]:
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        predicted = model(x).argmax(dim=1).tolist()
    return model, x, predicted


def as_pytorch_grad_cam(maps: Tensor) -> Tensor:
    for _ in range(2):
        maps = maps - maps.amin(dim=(1, 2), keepdim=True)
        maps = maps / (1e-7 + maps.amax(dim=(1, 2), keepdim=True))
    return maps


def theirs(method: type, model: nn.Module, x: Tensor, targets: list[int], **options) -> Tensor:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = method(model=model, target_layers=[model.features[4]], **options)
    try:
        maps = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        # release() calls detach_() on what it kept, which fails on ShapleyCAM's graph-carrying
        # gradients with recent torch: forget them, then remove the hooks
        cam.activations_and_grads.activations = []
        cam.activations_and_grads.gradients = []
        cam.activations_and_grads.release()
    return torch.from_numpy(maps)


@pytest.mark.parametrize(
    "ours, name",
    [
        (GradCAM, "GradCAM"), (GradCAMElementWise, "GradCAMElementWise"), (FEM, "FEM"),
        (ShapleyCAM, "ShapleyCAM"), (AblationCAM, "AblationCAM"),
        (lambda m: ScoreCAM(m, score="softmax-logits"), "ScoreCAM"),
    ],
)
def test_maps_equal_pytorch_grad_cam(case, ours, name):
    model, x, targets = case
    reference = theirs(getattr(pytorch_grad_cam, name), model, x, targets)
    mine = as_pytorch_grad_cam(ours(model)(x, targets))
    torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "ours, name", [(EigenCAM, "EigenCAM"), (EigenGradCAM, "EigenGradCAM"), (KPCACAM, "KPCA_CAM")]
)
def test_principal_component_maps_equal_pytorch_grad_cams_up_to_the_sign(case, ours, name):
    # pytorch-grad-cam keeps LAPACK's sign of the component: its map is ours or the ReLU of
    # our component's negative
    from xaikit_gradcam.projection import first_component, kernel_first_component

    model, x, targets = case
    reference = theirs(getattr(pytorch_grad_cam, name), model, x, targets)
    ours_map = as_pytorch_grad_cam(ours(model)(x, targets))
    activation, gradient, _ = GradCAM(model).forward_with_layer(x, torch.tensor(targets))
    if name == "KPCA_CAM":
        component = kernel_first_component(activation)
    else:
        component = first_component(gradient * activation if name == "EigenGradCAM" else activation)
    flipped = as_pytorch_grad_cam((-component).relu())
    for i in range(len(x)):
        gaps = [float((m - reference[i]).abs().max()) for m in (ours_map[i], flipped[i])]
        closest = ours_map[i] if gaps[0] <= gaps[1] else flipped[i]
        torch.testing.assert_close(closest, reference[i], rtol=1e-4, atol=1e-4)


def test_finercam_equals_pytorch_grad_cam(case):
    model, x, targets = case
    with pytorch_grad_cam.FinerCAM(model, [model.features[4]]) as cam:
        reference = torch.from_numpy(cam(x.clone(), targets=None))  # compares the prediction
    ours = as_pytorch_grad_cam(FinerCAM(model)(x, targets))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)


def test_fullgrad_per_channel_equals_pytorch_grad_cam(case):
    model, x, targets = case
    reference = theirs(pytorch_grad_cam.FullGrad, model, x, targets)
    ours = as_pytorch_grad_cam(FullGrad(model, per_channel=True)(x, targets))
    # pytorch-grad-cam adds 1e-7 to every channel's maximum: close, not exact
    torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- torch-cam


def torch_cam(
    method_name: str, model: nn.Module, x: Tensor, targets: list[int], **options
) -> Tensor:
    methods = pytest.importorskip("torchcam.methods", reason="torch-cam is not installed")
    extractor = getattr(methods, method_name)(model, "features.4", input_shape=(3, 8, 8), **options)
    try:
        scores = model(x)
        return extractor(class_idx=targets, scores=scores, normalized=False)[0].detach()
    finally:
        extractor.remove_hooks()


def test_cam_equals_torch_cam():
    torch.manual_seed(0)
    model = TinyNet("gap").eval()
    x = torch.randn(4, 3, 8, 8)
    targets = [0, 3, 1, 4]
    reference = torch_cam("CAM", model, x, targets, fc_layer="head")
    torch.testing.assert_close(CAM(model)(x, targets), reference)


def test_scorecam_softmax_logits_equals_torch_cam(case):
    model, x, targets = case
    reference = torch_cam("ScoreCAM", model, x, targets, batch_size=7)
    torch.testing.assert_close(ScoreCAM(model, score="softmax-logits")(x, targets), reference)


def test_iscam_cumulative_equals_torch_cam(case):
    model, x, targets = case
    reference = torch_cam("ISCAM", model, x, targets, batch_size=7, num_samples=4)
    ours = ISCAM(model, num_samples=4, cumulative=True, score="softmax-logits")(x, targets)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)


class ReplayNoise:
    """Stands in for torch-cam's noise distribution: hands out given draws in order."""

    def __init__(self, draws: Tensor) -> None:
        self.draws = list(draws)

    def sample(self, shape: torch.Size) -> Tensor:
        return self.draws.pop(0).reshape(shape)


def test_sscam_equals_torch_cam_with_the_same_noise(case):
    methods = pytest.importorskip("torchcam.methods", reason="torch-cam is not installed")
    model, x, targets = case
    ours = SSCAM(model, num_samples=3, std=0.5, seed=3, score="softmax-logits")
    for i in range(2):  # one image per call: torch-cam draws noise for the whole batch
        extractor = methods.SSCAM(
            model, "features.4", input_shape=(3, 8, 8), num_samples=3, std=0.5
        )
        try:
            extractor._distrib = ReplayNoise(ours.noise(torch.zeros(1, 5, 8, 8)))
            scores = model(x[i : i + 1])
            reference = extractor(class_idx=targets[i], scores=scores, normalized=False)[0].detach()
        finally:
            extractor.remove_hooks()
        torch.testing.assert_close(ours(x[i : i + 1], targets[i]), reference, rtol=1e-4, atol=1e-5)


def test_smoothgradcam_plus_plus_differs_from_torch_cam_only_where_the_docstring_says(case):
    # torch-cam's map, from the same noise, is ours with its three differences: the denominator
    # 2 D2 + sum_ab (A D3)_ab, the last noisy sample's gradient in the weights, and the last
    # noisy sample's activation in the map
    from xaikit_gradcam.gradcam_plus_plus import plus_plus_weights

    methods = pytest.importorskip("torchcam.methods", reason="torch-cam is not installed")
    model, x, targets = case
    ours = SmoothGradCAMPlusPlus(model, num_samples=4, std=0.1, seed=1)
    for i in range(len(x)):
        image, target = x[i : i + 1], torch.tensor([targets[i]])
        extractor = methods.SmoothGradCAMpp(
            model, "features.4", input_shape=(3, 8, 8), num_samples=4, std=0.1
        )
        try:
            extractor._distrib = ReplayNoise(ours.noise(image))
            scores = model(image)
            reference = extractor(class_idx=targets[i], scores=scores, normalized=False)[0].detach()
        finally:
            extractor.remove_hooks()
        clean, _, _ = ours.forward_with_layer(image, target)
        samples = [ours.forward_with_layer(image + n, target) for n in ours.noise(image)]
        d2 = sum(g.pow(2) for _, g, _ in samples) / 4
        d3 = sum(g.pow(3) for _, g, _ in samples) / 4
        alpha = d2 / (2 * d2 + (d3 * clean).sum(dim=(2, 3), keepdim=True) + 1e-8)
        last_activation, last_gradient, _ = samples[-1]
        weights = (alpha * last_gradient.relu()).sum(dim=(2, 3), keepdim=True)
        torch_cams_formula = (weights * last_activation).sum(dim=1).relu()
        torch.testing.assert_close(torch_cams_formula, reference, rtol=1e-4, atol=1e-6)
        d1 = sum(g for _, g, _ in samples) / 4
        our_formula = (plus_plus_weights(clean, d1, d2, d3) * clean).sum(dim=1).relu()
        torch.testing.assert_close(ours(image, target), our_formula)
