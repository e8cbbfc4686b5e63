"""Methods with noise take a ``seed``: the same map twice, whatever the global random state
and the batch around the image; another seed, another map."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from xaikit_gradcam import SSCAM, SmoothGradCAMPlusPlus

from xaikit.testing.nets import ContractNet

SEEDED = [SSCAM, SmoothGradCAMPlusPlus]


def images(n: int = 3, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, 16, 20, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method_cls", SEEDED, ids=lambda cls: cls.name)
def test_the_same_seed_gives_the_same_map(method_cls):
    model = ContractNet().eval()
    x, targets = images(), [0, 2, 4]
    torch.manual_seed(1)
    first = method_cls(model, seed=5, num_samples=3)(x, targets)
    torch.manual_seed(2)
    torch.rand(10)
    again = method_cls(model, seed=5, num_samples=3)(x, targets)
    assert torch.equal(first, again)
    other = method_cls(model, seed=6, num_samples=3)(x, targets)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("method_cls", SEEDED, ids=lambda cls: cls.name)
def test_an_images_map_does_not_depend_on_its_batch(method_cls):
    model = ContractNet().eval()
    x, targets = images(4), [0, 2, 4, 1]
    method = method_cls(model, seed=3, num_samples=2)
    maps = method(x, targets)
    for i in range(4):
        torch.testing.assert_close(method(x[i : i + 1], targets[i])[0], maps[i])
    torch.testing.assert_close(method(x.flip(0), targets[::-1]), maps.flip(0))


@pytest.mark.parametrize("method_cls", SEEDED, ids=lambda cls: cls.name)
def test_the_noise_matters(method_cls):
    model = ContractNet().eval()
    x, targets = images(), [0, 2, 4]
    quiet = method_cls(model, std=0.0, num_samples=2)(x, targets)
    noisy = method_cls(model, std=1.0, num_samples=2)(x, targets)
    assert not torch.allclose(quiet, noisy)


@pytest.mark.parametrize("method_cls", SEEDED, ids=lambda cls: cls.name)
@pytest.mark.parametrize("options", [{"num_samples": 0}, {"std": -1.0}])
def test_bad_options_are_user_errors(method_cls, options):
    from xaikit import XaikitError

    with pytest.raises(XaikitError, match=next(iter(options))):
        method_cls(ContractNet(), **options)
