"""Every registered attribution method, of every installed plugin, against the base contract.

The methods come from ``xaikit.list_attributions()`` of a fresh plugin manager built when this
module is collected, so the test ids are the method names. Each test runs a tiny seeded conv
net on 3 images of 3x16x20 (not square, so a swapped height and width shows).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import xaikit
from xaikit.plugins import make_plugin_manager

_PM = make_plugin_manager()
METHODS = xaikit.list_attributions(_PM)
LAYER_METHODS = [name for name in METHODS if xaikit.get_attribution(name, _PM).uses_layer]

NUM_CLASSES = 5
BATCH, HEIGHT, WIDTH = 3, 16, 20


class ForwardFailure(Exception):
    """Raised by :class:`TinyNet` on the forward call numbered ``fail_on_call``."""


class TinyNet(nn.Module):
    """conv-bn-relu, max-pool, conv-relu (the target layer), 2x2 average pool, dropout, linear.

    It counts its forward calls, records whether any submodule was in training mode during
    each, and raises :class:`ForwardFailure` (after the target layer ran) on call
    ``fail_on_call``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8 * 4, NUM_CLASSES)
        self.xaikit_target_layer = "features.4"
        self.fail_on_call: int | None = None
        self.calls = 0
        self.training_seen: list[bool] = []
        with torch.no_grad():
            bn = self.features[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.training_seen.append(any(m.training for m in self.modules()))
        a = self.features(x)
        if self.fail_on_call == self.calls:
            raise ForwardFailure(f"forward call {self.calls} fails on purpose")
        return self.head(self.dropout(self.pool(a).flatten(1)))


def images(n: int = BATCH, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


def build(name: str, pm, model: nn.Module | None = None, **kwargs):
    model = model if model is not None else TinyNet()
    return xaikit.get_attribution(name, pm)(model, **kwargs)


def call(method, x: Tensor, target, seed: int = 0) -> Tensor:
    """Call ``method`` with the global RNG seeded, so stochastic methods repeat exactly."""
    torch.manual_seed(seed)
    return method(x, target)


def assert_maps_close(actual: Tensor, expected: Tensor) -> None:
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * scale)


def hooks_left(model: nn.Module) -> list[str]:
    """Names of every hook still registered on a module or parameter of ``model``."""
    left = []
    for module_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if "hooks" in attr and isinstance(value, dict) and value:
                left.append(f"{module_name or 'model'}.{attr}")
    for param_name, param in model.named_parameters():
        if param._backward_hooks:
            left.append(f"{param_name}._backward_hooks")
    from torch.nn.modules import module as torch_module

    for attr in dir(torch_module):
        value = getattr(torch_module, attr)
        if attr.startswith("_global") and "hook" in attr and isinstance(value, dict) and value:
            left.append(f"torch.nn.modules.module.{attr}")
    return left


def module_flags(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def is_stochastic(method, x: Tensor, target) -> bool:
    return not torch.equal(call(method, x, target, seed=1), call(method, x, target, seed=2))


@pytest.mark.parametrize("name", METHODS)
def test_output_is_a_finite_float_map_per_image_at_input_resolution(name, plugin_manager):
    method = build(name, plugin_manager)
    maps = call(method, images(), None)
    assert maps.shape == (BATCH, HEIGHT, WIDTH)
    assert maps.dtype == torch.float32
    assert maps.device == next(method.model.parameters()).device
    assert bool(torch.isfinite(maps).all())
    assert bool((maps != 0).any()), "every map of the batch is zero"
    if not method.signed:
        assert bool((maps >= 0).all()), "an unsigned method returned negative values"


@pytest.mark.parametrize("name", METHODS)
def test_every_target_form_selects_the_same_classes(name, plugin_manager):
    method = build(name, plugin_manager)
    x = images(2)
    predicted = method.model.eval()(x).argmax(dim=1)
    assert_maps_close(call(method, x, None), call(method, x, predicted.tolist()))
    by_int = call(method, x, 3)
    for same in ([3, 3], torch.tensor(3), [3]):
        assert_maps_close(call(method, x, same), by_int)
    assert_maps_close(call(method, x, torch.tensor([0, 4])), call(method, x, [0, 4]))


@pytest.mark.parametrize("name", METHODS)
def test_a_wrong_number_of_targets_is_a_user_error(name, plugin_manager):
    with pytest.raises(xaikit.XaikitError, match="targets"):
        build(name, plugin_manager)(images(), [0, 1])


@pytest.mark.parametrize("name", METHODS)
def test_an_image_map_does_not_depend_on_its_neighbours(name, plugin_manager):
    method = build(name, plugin_manager)
    x, targets = images(), [0, 2, 4]
    other = x.clone()
    other[[0, 2]] = images(2, seed=1)
    maps, maps_with_other_neighbours = call(method, x, targets), call(method, other, targets)
    assert_maps_close(maps_with_other_neighbours[1], maps[1])
    assert not torch.allclose(maps_with_other_neighbours[0], maps[0]), "maps ignore the image"


@pytest.mark.parametrize("name", METHODS)
def test_an_image_map_in_a_batch_equals_its_map_computed_alone(name, plugin_manager):
    method = build(name, plugin_manager)
    x, targets = images(), [0, 2, 4]
    if is_stochastic(method, x, targets):
        pytest.skip("stochastic method: its noise depends on the batch size, not on the image")
    maps = call(method, x, targets)
    for i in range(BATCH):
        assert_maps_close(call(method, x[i : i + 1], targets[i])[0], maps[i])


@pytest.mark.parametrize("name", METHODS)
def test_the_model_is_left_as_it_was(name, plugin_manager):
    model = TinyNet()
    model.eval()
    model.features[1].train()
    model.dropout.train()
    flags = module_flags(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    call(build(name, plugin_manager, model), images(), None)
    assert module_flags(model) == flags
    assert model.training_seen and not any(model.training_seen), "forward ran in training mode"
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"{key} changed"
    assert all(p.grad is None for p in model.parameters()), "parameter gradients were written"
    assert hooks_left(model) == []


@pytest.mark.parametrize("fail_on_call", [1, 2])
@pytest.mark.parametrize("name", METHODS)
def test_no_hook_is_left_when_the_forward_raises(name, fail_on_call, plugin_manager):
    model = TinyNet().train()
    model.fail_on_call = fail_on_call
    flags = module_flags(model)
    method = build(name, plugin_manager, model)
    try:
        call(method, images(), 1)
        propagated = False
    except ForwardFailure:
        propagated = True
    assert propagated == (model.calls >= fail_on_call), "the forward's exception was swallowed"
    assert hooks_left(model) == []
    assert module_flags(model) == flags


@pytest.mark.parametrize("name", METHODS)
def test_an_out_of_range_target_is_a_one_line_error_and_leaves_no_hook(name, plugin_manager):
    model = TinyNet()
    with pytest.raises(xaikit.XaikitError, match=f"target classes must be in 0..{NUM_CLASSES - 1}"):
        call(build(name, plugin_manager, model), images(), NUM_CLASSES)
    assert hooks_left(model) == []


@pytest.mark.parametrize("name", METHODS)
def test_a_wrong_layer_name_is_an_error_listing_the_valid_names(name, plugin_manager):
    cls = xaikit.get_attribution(name, plugin_manager)
    with pytest.raises(xaikit.XaikitError) as info:
        cls(TinyNet(), layer="features.9")
    message = str(info.value)
    assert "\n" not in message
    if cls.uses_layer:
        assert "features.9" in message
        assert all(valid in message for valid in ("features.0", "features.4", "pool", "head"))
    else:
        assert name in message  # "method ... does not take a layer"


@pytest.mark.parametrize("name", LAYER_METHODS)
def test_layer_methods_explain_the_layer_they_are_given(name, plugin_manager):
    model = TinyNet()
    method = build(name, plugin_manager, model, layer="features.2")
    assert method.layer_name == "features.2" and method.layer is model.features[2]
    maps = call(method, images(), [0, 1, 2])
    assert maps.shape == (BATCH, HEIGHT, WIDTH) and bool(torch.isfinite(maps).all())
    default = call(build(name, plugin_manager, model), images(), [0, 1, 2])
    assert not torch.allclose(maps, default), "the layer argument made no difference"


def test_hooks_left_finds_module_parameter_and_global_hooks():
    model = TinyNet()
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
