"""CAM applies to a global-average-pooling head with one linear layer, and says it cannot apply
to any other model, in its constructor or, where only a forward pass tells, in its call."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from xaikit_gradcam import CAM, GradCAM

import xaikit
from xaikit import NotApplicableError
from xaikit.attribution.base import upsample
from xaikit.testing import TinyConvNet, hooks_left, module_flags
from xaikit.testing.nets import ContractNet, ForwardFailure


def images(n: int = 3, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_cam_on_a_pooled_linear_head_is_the_class_row_times_the_activation():
    model = TinyConvNet(num_classes=6, width=5).eval()
    x, targets = images(), torch.tensor([0, 5, 2])
    activation = model.act(model.conv(x)).detach()
    expected = torch.einsum("bk,bkij->bij", model.fc.weight[targets].detach(), activation)
    maps = CAM(model, layer="act")(x, targets)
    torch.testing.assert_close(maps, expected)
    logits = model(x).detach()[range(3), targets]
    torch.testing.assert_close(maps.mean(dim=(1, 2)) + model.fc.bias[targets].detach(), logits)
    # Grad-CAM of such a model is ReLU(CAM) / (h w)
    torch.testing.assert_close(GradCAM(model, layer="act")(x, targets), maps.relu() / 144)


class MLPHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.hidden = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 3)
        self.xaikit_target_layer = "conv"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.hidden(self.conv(x).relu().mean(dim=(2, 3))).relu())


def test_cam_does_not_apply_to_an_mlp_head():
    with pytest.raises(NotApplicableError, match="hidden") as info:
        CAM(MLPHead())
    assert "\n" not in str(info.value)


def test_cam_does_not_apply_to_ultimus():
    pm = xaikit.plugins.make_plugin_manager()
    if "ultimus" not in xaikit.list_models(pm):
        pytest.skip("the ultimus plugin is not installed")
    model = xaikit.get_model_spec("ultimus", pm).create()
    with pytest.raises(NotApplicableError, match="ultimus.0"):
        CAM(model)


class PoolBeforeAverage(nn.Module):
    """conv, ReLU, max-pool, global mean, linear: no weights after the ReLU but the linear
    layer, yet its logits are not linear(mean of the ReLU's output)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4, 3)
        self.xaikit_target_layer = "act"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.parametrize("model, layer", [(PoolBeforeAverage(), "act"), (TinyConvNet(), "conv")])
def test_cam_checks_the_head_on_the_batch_it_explains(model, layer):
    # the ReLU after TinyConvNet's conv, or a max-pool before the average: only a forward tells
    method = CAM(model.eval(), layer=layer)
    with pytest.raises(NotApplicableError, match="right after the layer") as info:
        method(images(), 0)
    assert "\n" not in str(info.value)
    assert hooks_left(model) == []


def test_cam_without_a_linear_layer_does_not_apply():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(NotApplicableError, match="has none"):
        CAM(model)


class PooledContractNet(ContractNet):
    """ContractNet with a global-average-pooling head: the contract tests' net, for CAM."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 5)
        self.xaikit_target_layer = "features.5"

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.training_seen.append(any(m.training for m in self.modules()))
        a = self.features(x)
        if self.fail_on_call == self.calls:
            raise ForwardFailure(f"forward call {self.calls} fails on purpose")
        return self.head(self.dropout(a.mean(dim=(2, 3))))


def test_cam_passes_the_contract_checks_on_a_pooled_head():
    # the registry-wide contract tests skip cam: their ContractNet has no pooled linear head
    model = PooledContractNet()
    model.eval()
    model.features[1].train()
    model.dropout.train()
    flags = module_flags(model)
    method = CAM(model)
    x = torch.randn(3, 3, 16, 20)
    maps = method(x, [0, 2, 4])
    assert maps.shape == (3, 16, 20) and maps.dtype == torch.float32
    assert bool(torch.isfinite(maps).all()) and bool((maps != 0).any())
    alone = torch.stack([method(x[i : i + 1], t)[0] for i, t in enumerate([0, 2, 4])])
    torch.testing.assert_close(alone, maps)
    other = x.clone()
    other[[0, 2]] = torch.randn(2, 3, 16, 20)
    changed = method(other, [0, 2, 4])
    torch.testing.assert_close(changed[1], maps[1])
    assert not torch.allclose(changed[0], maps[0])
    assert module_flags(model) == flags and not any(model.training_seen)
    assert hooks_left(model) == [] and all(p.grad is None for p in model.parameters())
    model.fail_on_call = model.calls + 1  # the next call's one forward
    with pytest.raises(ForwardFailure):
        method(x, 1)
    assert hooks_left(model) == [] and module_flags(model) == flags


def test_cam_upsamples_the_layer_map():
    model = PooledContractNet().eval()
    x = torch.randn(2, 3, 16, 20)
    activation = model.features(x).detach()
    low = torch.einsum("bk,bkij->bij", model.head.weight[[1, 3]].detach(), activation)
    torch.testing.assert_close(CAM(model)(x, [1, 3]), upsample(low, (16, 20)))
