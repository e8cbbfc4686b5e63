"""airbench94: the patch-whitening initialisation, identity init, the parameter count and the
epoch hook, against the paper's formulas (Jordan 2024, arXiv 2404.00498)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaikit.data.synthetic import load_synthetic
from xaikit_resnet.airbench94 import (
    WHITEN_EPS, Airbench94, airbench94, init_from_data, on_epoch_start, whitening_sample,
    whitening_weights,
)


def test_parameter_count_and_frozen_parameters() -> None:
    model = airbench94()
    assert sum(p.numel() for p in model.parameters()) == 1_972_792
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert "whiten.weight" in frozen and all(n == "whiten.weight" or n.endswith("weight") for n in frozen)
    assert all("norm" in n for n in frozen if n != "whiten.weight")  # BatchNorm scales stay 1
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_whitening_filters_decorrelate_the_patches() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(3, 3)
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(40, 3, 16, 16))  # correlated channels
    weights = whitening_weights(images)
    assert weights.shape == (24, 3, 2, 2)
    torch.testing.assert_close(weights[12:], -weights[:12])
    patches = F.unfold(images, 2).transpose(1, 2).reshape(-1, 12).double()  # (c, h, w) order
    covariance = patches.T @ patches / patches.shape[0]
    eigenvalues = torch.linalg.eigvalsh(covariance).flip(0)
    w = weights[:12].reshape(12, 12).double()
    # W Sigma W^T = diag(lambda / (lambda + eps)): unit variance where lambda >> eps, in order
    expected = torch.diag(eigenvalues / (eigenvalues + WHITEN_EPS))
    torch.testing.assert_close(w @ covariance @ w.T, expected, atol=1e-4, rtol=1e-4)
    # the conv layer computes exactly these projections
    out = F.conv2d(images, weights[:12])
    assert out.flatten(2).var(dim=(0, 2)).min() > 0.9


def test_three_by_three_convolutions_start_with_identities() -> None:
    model = airbench94()
    conv = model.block2.conv2
    x = torch.randn(1, conv.in_channels, 5, 5)
    out = conv(x)
    torch.testing.assert_close(out[:, : conv.in_channels], x)


def test_init_from_data_and_the_whitening_bias_schedule(tmp_path) -> None:
    data = load_synthetic(None, tmp_path)
    model = Airbench94()
    init_from_data(model, data)
    from xaikit.data import normalize

    sample = whitening_sample(len(data.train_images))
    expected = whitening_weights(normalize(data.train_images[sample], data.mean, data.std))
    torch.testing.assert_close(model.whiten.weight, expected)
    on_epoch_start(model, 3)
    assert model.whiten.bias.requires_grad
    on_epoch_start(model, 4)
    assert not model.whiten.bias.requires_grad


def test_the_whitening_sample_spans_a_class_sorted_training_set() -> None:
    # an ImageFolder bundle lists the classes in order: 5,000 airplanes first on CIFAR-10
    labels = torch.arange(10).repeat_interleave(5000)
    sample = whitening_sample(len(labels))
    assert len(sample) == 5000 and len(set(sample.tolist())) == 5000
    assert labels[sample].bincount(minlength=10).tolist() == [500] * 10
    assert whitening_sample(300).tolist() == list(range(300))  # fewer images than 5,000: all
