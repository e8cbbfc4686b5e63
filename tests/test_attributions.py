"""Tests of the attribution test helpers that are not registry-wide.

The contract every registered attribution method must meet (shape, device, finiteness,
per-image independence, no hooks left, train/eval flags restored...) lives in
``xaikit/testing/test_contract.py``, shipped so that a third-party plugin runs it too.
"""

from __future__ import annotations

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
