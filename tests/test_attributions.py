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
