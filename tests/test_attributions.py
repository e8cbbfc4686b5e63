"""Tests of the attribution test helpers that are not registry-wide.

The contract every registered attribution method must meet (shape, device, finiteness,
per-image independence, no hooks left, train/eval flags restored...) lives in
``xaikit/testing/test_contract.py``, shipped so that a third-party plugin runs it too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xaikit.testing import ContractNet, hooks_left


def test_hooks_left_finds_module_parameter_and_global_hooks():
    model = ContractNet()
    assert hooks_left(model) == []
    handles = [
        model.features[4].register_forward_hook(lambda *args: None),
        model.head.weight.register_hook(lambda grad: grad),
        nn.modules.module.register_module_forward_pre_hook(lambda *args: None),
    ]
    try:
        left = hooks_left(model)
    finally:
        for handle in handles:
            handle.remove()
    assert "features.4._forward_hooks" in left
    assert "head.weight._backward_hooks" in left
    assert any(name.startswith("torch.nn.modules.module._global_forward_pre") for name in left)
    assert hooks_left(model) == []


def test_an_in_place_op_after_the_layer_does_not_change_the_recorded_activation(plugin_manager):
    """Before: with ReLU(inplace=True) after the chosen BatchNorm, every CAM used the ReLU'd
    activation (Grad-CAM's map then correlated only 0.93 with the right one)."""
    from torch import nn

    import xaikit

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model[1](model[0](x))
    method = xaikit.get_attribution("gradcam")(model, layer="1")
    activation, grad, _ = method.forward_with_layer(x, torch.tensor([0, 1]))
    assert (activation < 0).any()
    torch.testing.assert_close(activation, expected)


class ViewHead(nn.Module):
    """conv - ReLU, then ``x.view(len(x), -1)``: it cannot take channels_last tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv(x))
        return self.fc(a.view(len(a), -1))


def test_gradient_cams_give_the_nchw_result_on_channels_last_input_and_on_models_that_cannot_take_it(
    plugin_manager,
):
    """On the CPU the gradient CAMs feed the model NHWC images (faster in oneDNN); the maps are
    those of the plain NCHW pass, and a model that raises on NHWC tensors is run again on NCHW."""
    import xaikit

    torch.manual_seed(0)
    x, target = torch.randn(3, 3, 6, 6), torch.tensor([0, 2, 1])
    model = ViewHead().eval()
    with pytest.raises(RuntimeError, match="view"):
        model(x.contiguous(memory_format=torch.channels_last))
    method = xaikit.get_attribution("gradcam")(model, layer="conv")
    activation, grad, logits = method.forward_with_layer(x, target)
    x_leaf = x.clone()
    a = model.conv(x_leaf)
    a.retain_grad()
    out = model.fc(torch.relu(a).view(len(a), -1))
    out.gather(1, target[:, None]).sum().backward()
    torch.testing.assert_close(activation, a.detach())
    torch.testing.assert_close(grad, a.grad)
    torch.testing.assert_close(logits, out.detach())
    assert hooks_left(model) == [] and torch.is_grad_enabled()
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).eval()
    maps = xaikit.get_attribution("gradcam")(conv, layer="0")(x, target)
    with torch.no_grad():  # Grad-CAM by hand on the NCHW pass
        act = conv[0](x)
    act.requires_grad_(True)
    score = conv[4](conv[3](conv[2](conv[1](act)))).gather(1, target[:, None]).sum()
    (g,) = torch.autograd.grad(score, act)
    expected = torch.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(1)).detach()
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6)


def test_forward_nhwc_feeds_channels_last_and_remembers_a_model_that_cannot_take_it() -> None:
    """The perturbation methods and metrics run the model through ``forward_nhwc``: the same
    logits as ``model(x)``, NHWC input on the CPU, and a model that raises on NHWC tensors runs
    on NCHW, tried once only."""
    from xaikit.modules import forward_nhwc

    torch.manual_seed(0)
    x = torch.randn(3, 3, 6, 6)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).eval()
    seen = []
    conv[0].register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        torch.testing.assert_close(forward_nhwc(conv, x), conv[4](conv[3](conv[2](conv[1](
            torch.nn.functional.conv2d(x, conv[0].weight, conv[0].bias, padding=1))))))
    assert seen == [True]
    view = ViewHead().eval()
    calls = []
    view.conv.register_forward_pre_hook(lambda *_: calls.append(1))
    retried = []
    with torch.no_grad():
        expected = view(x)
        calls.clear()
        torch.testing.assert_close(forward_nhwc(view, x, on_retry=lambda: retried.append(1)), expected)
        assert len(calls) == 2 and retried == [1]  # NHWC failed, NCHW ran
        calls.clear()
        torch.testing.assert_close(forward_nhwc(view, x), expected)
        assert len(calls) == 1  # remembered: straight to NCHW


def test_given_targets_cost_no_extra_forward_pass(plugin_manager):
    """Before: every call ran one more forward pass only to validate the targets."""
    import xaikit

    from xaikit.testing import TinyConvNet

    model = TinyConvNet().eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    method = xaikit.get_attribution("gradcam")(model, layer="conv")
    x = torch.randn(4, 3, 8, 8)
    method(x, [0, 1, 2, 3])  # the first call learns the number of classes once
    calls.clear()
    method(x, [0, 1, 2, 3])
    assert len(calls) == 1
    with pytest.raises(xaikit.XaikitError, match="target classes must be in 0..9"):
        method(x, [0, 1, 2, 10])


@pytest.mark.parametrize(("size", "to"), [((8, 8), (32, 32)), ((4, 7), (32, 30)), ((32, 32), (9, 13)), ((1, 1), (5, 5))])
def test_upsample_is_torch_bilinear_resizing(size, to):
    import torch.nn.functional as F

    from xaikit.attribution.base import upsample

    maps = torch.randn(3, *size, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(maps[:, None], size=to, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(upsample(maps, to), expected, atol=1e-6, rtol=1e-5)
