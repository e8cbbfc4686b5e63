"""Tests of the xaikit-resnet plugin: parameter counts, shapes, target layers, registry, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xaikit
from xaikit.errors import XaikitError
from xaikit.registry import model_entries
from xaikit_resnet import CustomResNet, ResNet18, custom_resnet, resnet18

NARROW = 1 / 8
MODELS = ["custom-resnet", "resnet18"]
PUBLISHED_PARAMETERS = {"custom-resnet": 6_573_120, "resnet18": 11_173_962}
TARGET_LAYERS = {"custom-resnet": ("layer3", 512), "resnet18": ("layer4", 512)}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_output(model: nn.Module, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """Run ``model(x)`` and return what module ``layer_name`` produced."""
    captured: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer_name].register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    try:
        model(x)
    finally:
        handle.remove()
    assert len(captured) == 1
    return captured[0]


@pytest.mark.parametrize("name", MODELS)
def test_registered_by_this_plugin(plugin_manager, name: str) -> None:
    entry = model_entries(plugin_manager)[name]
    assert entry.plugin == "resnet"
    assert entry.obj.recipe.optimizer == "sgd"
    assert entry.obj.target_layer == TARGET_LAYERS[name][0]


@pytest.mark.parametrize("name", MODELS)
def test_published_parameter_count(plugin_manager, name: str) -> None:
    with torch.device("meta"):  # counts shapes without allocating 6-11M floats
        model = xaikit.create_model(name)
    assert count_parameters(model) == PUBLISHED_PARAMETERS[name]


def test_factories_build_the_named_classes() -> None:
    assert isinstance(custom_resnet(width=NARROW), CustomResNet)
    assert isinstance(resnet18(width=NARROW), ResNet18)


@pytest.mark.parametrize("name", MODELS)
def test_narrow_model_is_smaller_and_has_given_classes(plugin_manager, name: str) -> None:
    model = xaikit.create_model(name, width=NARROW, num_classes=7)
    assert count_parameters(model) < PUBLISHED_PARAMETERS[name] / 30
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 7)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_target_layer_map(plugin_manager, name: str) -> None:
    model = xaikit.create_model(name, width=NARROW).eval()
    layer_name, full_channels = TARGET_LAYERS[name]
    assert model.xaikit_target_layer == layer_name
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    feature_map = layer_output(model, layer_name, x)
    assert feature_map.shape == (2, round(full_channels * NARROW), 4, 4)


def test_custom_resnet_target_layer_is_after_the_residual() -> None:
    model = custom_resnet(width=NARROW).eval()
    x = torch.randn(2, 3, 32, 32)
    residual_output = layer_output(model, "layer3.residual", x)
    torch.testing.assert_close(layer_output(model, "layer3", x), residual_output)


def test_custom_resnet_logits_are_scaled_by_one_eighth() -> None:
    model = custom_resnet(width=NARROW).eval()
    x = torch.randn(2, 3, 32, 32)
    unscaled = model.fc(model.flatten(model.pool(layer_output(model, "layer3", x))))
    torch.testing.assert_close(model(x), unscaled * 0.125)


@pytest.mark.parametrize("name", MODELS)
def test_narrow_model_trains_on_a_fixed_batch(plugin_manager, name: str) -> None:
    model = xaikit.create_model(name, width=NARROW).train()
    recipe = xaikit.get_model_spec(name).recipe
    images, labels = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_matches_contiguous(plugin_manager, name: str) -> None:
    model = xaikit.create_model(name, width=NARROW).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_forward_and_backward(plugin_manager, name: str) -> None:
    model = xaikit.create_model(name, width=NARROW).train()
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    logits.float().logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("factory", [custom_resnet, resnet18])
@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": -1.0}, {"num_classes": 0}])
def test_bad_arguments_raise_xaikit_error(factory, kwargs: dict) -> None:
    with pytest.raises(XaikitError):
        factory(**kwargs)
