"""The methods pytorch-grad-cam defines, against its formulas written out here (NumPy and plain
autograd, no code of this plugin) on a tiny model whose CAM layer has the input's resolution,
so that no resampling stands between the two."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from xaikit_gradcam import (
    FEM,
    KPCACAM,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAMElementWise,
    ShapleyCAM,
)
from xaikit_gradcam.projection import first_component, kernel_first_component


class TinyNet(nn.Module):
    """conv-bn-relu, conv-relu (the CAM layer ``features.4``, 5 x 8 x 8) and a curved head
    (flatten, linear, tanh, linear), so that second derivatives are not zero."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(5 * 64, 16), nn.Tanh(), nn.Linear(16, 5))
        self.xaikit_target_layer = "features.4"
        with torch.no_grad():
            bn = self.features[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            self.head[3].weight.mul_(20)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@pytest.fixture
def case() -> tuple[nn.Module, Tensor, list[int]]:
    torch.manual_seed(0)
    return TinyNet().eval(), torch.randn(4, 3, 8, 8), [0, 3, 1, 4]


def activation_and_gradient(model: nn.Module, x: Tensor, targets: list[int], score=None):
    """``A`` and ``dS/dA`` (``S``: the sum of the target logits, or ``score(logits)``)."""
    activation = model.features(x).detach().requires_grad_(True)
    logits = model.head(activation)
    total = logits[range(len(targets)), targets].sum() if score is None else score(logits)
    (gradient,) = torch.autograd.grad(total, activation)
    return activation.detach(), gradient


def projection_reference(maps: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's ``get_2d_projection``: centred SVD, projection on ``VT[0]``."""
    out = []
    for m in maps.astype(np.float64):
        points = m.reshape(m.shape[0], -1).T
        points = points - points.mean(axis=0)
        _u, _s, vt = np.linalg.svd(points, full_matrices=True)
        out.append((points @ vt[0]).reshape(m.shape[1:]))
    return np.array(out)


def kernel_projection_reference(maps: np.ndarray, gamma: float | None = None) -> np.ndarray:
    """``KernelPCA(n_components=1, kernel="sigmoid").fit_transform`` of the centred points,
    written out: Gram matrix tanh(gamma x.y + 1), double centring, top eigenpair."""
    out = []
    for m in maps.astype(np.float64):
        points = m.reshape(m.shape[0], -1).T
        points = points - points.mean(axis=0)
        g = 1.0 / points.shape[1] if gamma is None else gamma
        gram = np.tanh(g * points @ points.T + 1.0)
        n = len(gram)
        ones = np.full((n, n), 1.0 / n)
        gram = gram - ones @ gram - gram @ ones + ones @ gram @ ones
        values, vectors = np.linalg.eigh(gram)
        out.append((vectors[:, -1] * np.sqrt(max(values[-1], 0.0))).reshape(m.shape[1:]))
    return np.array(out)


def assert_same_up_to_sign(ours: Tensor, reference: np.ndarray) -> None:
    reference = torch.from_numpy(reference).to(ours.dtype)
    signs = torch.sign((ours * reference).sum(dim=(1, 2)))[:, None, None]
    torch.testing.assert_close(ours, signs * reference, rtol=1e-4, atol=1e-5)


def test_gradcam_elementwise(case):
    model, x, targets = case
    a, g = activation_and_gradient(model, x, targets)
    torch.testing.assert_close(GradCAMElementWise(model)(x, targets), (g * a).relu().sum(dim=1))


def test_eigencam_projection_and_its_sign(case):
    model, x, _ = case
    a = model.features(x).detach()
    projection = first_component(a)
    assert_same_up_to_sign(projection, projection_reference(a.numpy()))
    centred_sum = a.sum(dim=1) - a.sum(dim=1).mean(dim=(1, 2), keepdim=True)
    assert bool(((projection * centred_sum).sum(dim=(1, 2)) > 0).all())
    torch.testing.assert_close(EigenCAM(model)(x, 0), projection.relu())


def test_eigengradcam(case):
    model, x, targets = case
    a, g = activation_and_gradient(model, x, targets)
    projection = first_component(g * a)
    assert_same_up_to_sign(projection, projection_reference((g * a).numpy()))
    torch.testing.assert_close(EigenGradCAM(model)(x, targets), projection.relu())


@pytest.mark.parametrize("gamma", [None, 0.05])
def test_kpca_cam(case, gamma):
    model, x, _ = case
    a = model.features(x).detach()
    projection = kernel_first_component(a, "sigmoid", gamma)
    assert_same_up_to_sign(projection, kernel_projection_reference(a.numpy(), gamma))
    torch.testing.assert_close(KPCACAM(model, gamma=gamma)(x, 0), projection.relu())


def test_kpca_cam_against_scikit_learn(case):
    decomposition = pytest.importorskip("sklearn.decomposition")
    model, x, _ = case
    a = model.features(x).detach()
    for kernel in ("sigmoid", "rbf", "poly", "cosine"):
        reference = []
        for m in a.numpy().astype(np.float64):
            points = m.reshape(m.shape[0], -1).T
            points = points - points.mean(axis=0)
            pca = decomposition.KernelPCA(n_components=1, kernel=kernel, eigen_solver="dense")
            reference.append(pca.fit_transform(points)[:, 0].reshape(m.shape[1:]))
        assert_same_up_to_sign(kernel_first_component(a, kernel), np.array(reference))


def test_fem(case):
    model, x, _ = case
    a = model.features(x).detach().numpy()
    threshold = a.mean(axis=(2, 3), keepdims=True) + 2 * a.std(axis=(2, 3), keepdims=True)
    weights = (a > threshold).mean(axis=(2, 3))
    expected = np.maximum((weights[:, :, None, None] * a).sum(axis=1), 0)
    torch.testing.assert_close(FEM(model)(x, 0), torch.from_numpy(expected).float())


def test_ablationcam(case):
    # (y - y_k) / y with channel k zeroed, for targets whose logit is positive (there the
    # plugin's |y| is pytorch-grad-cam's y)
    model, x, _ = case
    with torch.no_grad():
        a = model.features(x)
        logits = model.head(a)
        targets = logits.argmax(dim=1)
        assert bool((logits.max(dim=1).values > 0).all())
        y = logits[range(4), targets]
        weights = torch.zeros(4, a.shape[1])
        for k in range(a.shape[1]):
            ablated = a.clone()
            ablated[:, k] = 0
            weights[:, k] = (y - model.head(ablated)[range(4), targets]) / y
    expected = (weights[:, :, None, None] * a).sum(dim=1).relu()
    torch.testing.assert_close(AblationCAM(model, chunk_size=3)(x, targets), expected)


def test_shapleycam(case):
    model, x, targets = case
    a, g = activation_and_gradient(model, x, targets)

    def score(activation: Tensor) -> Tensor:
        return model.head(activation)[range(4), targets].sum()

    _, hvp = torch.autograd.functional.hvp(score, a, a)
    assert float(hvp.abs().max()) > 1e-3  # the tanh head is curved
    weights = (g - 0.5 * hvp).mean(dim=(2, 3), keepdim=True)
    expected = (weights * a).sum(dim=1).relu()
    torch.testing.assert_close(ShapleyCAM(model)(x, targets), expected, rtol=1e-4, atol=1e-5)


def test_finercam(case):
    # pytorch-grad-cam's FinerWeightedTarget: sum_j p_j (y_c - alpha y_j) / (sum_j p_j + 1e-9)
    # over the 3 classes nearest to y_c (np.argsort of |y - y_c|, after c itself)
    model, x, targets = case
    with torch.no_grad():
        logits = model(x).numpy()
    order = np.argsort(np.abs(logits - logits[range(4), targets][:, None]), axis=-1)
    assert (order[:, 0] == targets).all()
    rivals = torch.from_numpy(order[:, 1:4].copy())

    def score(y: Tensor) -> Tensor:
        p = torch.softmax(y, dim=1).gather(1, rivals)
        own = y[range(4), targets][:, None]
        return ((p * (own - y.gather(1, rivals))).sum(dim=1) / (p.sum(dim=1) + 1e-9)).sum()

    a, g = activation_and_gradient(model, x, targets, score)
    expected = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1).relu()
    torch.testing.assert_close(FinerCAM(model)(x, targets), expected, rtol=1e-4, atol=1e-5)


def fullgrad_reference(model: TinyNet, x: Tensor, targets: list[int], per_channel: bool) -> Tensor:
    """FullGrad on TinyNet written out: bias-gradients at the outputs of conv 0 (bias), BN 1
    (beta - gamma mean / sqrt(var + eps)) and conv 3 (bias); all at the input's resolution."""
    conv0, bn, _relu, conv3, relu = model.features
    x = x.clone().requires_grad_(True)
    z0 = conv0(x)
    z1 = bn(z0)
    z3 = conv3(z1.relu())
    total = model.head(relu(z3))[range(len(targets)), targets].sum()
    gx, g0, g1, g3 = torch.autograd.grad(total, [x, z0, z1, z3])
    bn_bias = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    dims = (2, 3) if per_channel else (1, 2, 3)

    def psi(t: Tensor) -> Tensor:
        t = t.abs()
        t = t - t.amin(dim=dims, keepdim=True)
        return (t / t.amax(dim=dims, keepdim=True)).sum(dim=1)

    biases = ((g0, conv0.bias), (g1, bn_bias), (g3, conv3.bias))
    terms = [psi(x * gx)] + [psi(g * b[None, :, None, None]) for g, b in biases]
    return sum(terms).detach()


@pytest.mark.parametrize("per_channel", [False, True])
def test_fullgrad(case, per_channel):
    model, x, targets = case
    expected = fullgrad_reference(model, x, targets, per_channel)
    torch.testing.assert_close(FullGrad(model, per_channel=per_channel)(x, targets), expected)
