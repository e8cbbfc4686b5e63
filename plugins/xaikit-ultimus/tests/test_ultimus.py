"""Tests of the ULTIMUS model plugin: parameter budget, options, per-image attention, registry."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import xaikit
from xaikit.errors import XaikitError
from xaikit_ultimus.model import Ultimus, UltimusBlock, ultimus_block_reference
from xaikit_ultimus.plugin import ULTIMUS_RECIPE

OPTION_COMBINATIONS = [
    dict(scale=scale, softmax_dim=dim, residual=residual)
    for scale, dim, residual in itertools.product(("before", "after"), (1, 2), (True, False))
]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_model_has_exactly_26074_parameters() -> None:
    assert count_parameters(Ultimus()) == 26_074


@pytest.mark.parametrize("options", OPTION_COMBINATIONS, ids=str)
def test_options_do_not_change_the_parameter_count(options: dict) -> None:
    assert count_parameters(Ultimus(**options)) == 26_074


def test_forward_shape() -> None:
    assert Ultimus()(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    assert Ultimus(num_classes=7)(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("options", OPTION_COMBINATIONS, ids=str)
def test_every_option_combination_runs_forward_and_backward_finitely(options: dict) -> None:
    model = Ultimus(**options)
    logits = model(torch.randn(4, 3, 32, 32))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_options_raise_xaikit_error() -> None:
    with pytest.raises(XaikitError):
        Ultimus(scale="middle")
    with pytest.raises(XaikitError):
        Ultimus(softmax_dim=0)


def test_default_attention_makes_z_a_weighted_average_of_v() -> None:
    block = UltimusBlock()
    am = block.attention_map(torch.randn(6, 48))
    assert am.shape == (6, 8, 8)
    # z_j = sum_i v_i AM[i, j]: the weights of each z_j over i are positive and sum to one
    torch.testing.assert_close(am.sum(dim=1), torch.ones(6, 8))
    assert (am > 0).all()


@pytest.mark.parametrize("options", OPTION_COMBINATIONS, ids=str)
def test_batched_block_equals_per_image_reference(options: dict) -> None:
    block = UltimusBlock(48, 8, **options)
    x = torch.randn(7, 48) * 3
    torch.testing.assert_close(block(x), ultimus_block_reference(block, x))


def test_an_image_output_does_not_depend_on_the_rest_of_the_batch() -> None:
    model = Ultimus().eval()  # eval: BatchNorm uses running statistics, not batch statistics
    x = torch.randn(6, 3, 32, 32)
    out = model(x)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(model(x[perm]), out[perm])
    replaced = x.clone()
    replaced[1:] = torch.randn(5, 3, 32, 32) * 5
    torch.testing.assert_close(model(replaced)[0], out[0])
    torch.testing.assert_close(model(x[:1])[0], out[0])


def test_ultimus_blocks_do_not_mix_images_in_train_mode_either() -> None:
    blocks = Ultimus().ultimus.train()
    x = torch.randn(5, 48)
    out = blocks(x)
    replaced = torch.cat([x[:1], torch.randn(4, 48)])
    torch.testing.assert_close(blocks(replaced)[0], out[0])


def test_create_model_through_the_registry(plugin_manager) -> None:
    assert "ultimus" in xaikit.list_models(plugin_manager)
    model = xaikit.create_model("ultimus", plugin_manager)
    assert isinstance(model, Ultimus)
    assert count_parameters(model) == 26_074
    assert model.xaikit_target_layer == "conv3"
    spec = xaikit.get_model_spec("ultimus", plugin_manager)
    assert spec.recipe.epochs == 24
    assert xaikit.create_model("ultimus", plugin_manager, residual=False).ultimus[0].residual is False


def test_target_layer_outputs_the_last_conv_map_after_relu(plugin_manager) -> None:
    spec = xaikit.get_model_spec("ultimus", plugin_manager)
    model = spec.create().eval()
    layer = dict(model.named_modules())[spec.target_layer]
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        model(torch.randn(2, *spec.input_shape))
    finally:
        handle.remove()
    (feature_map,) = captured
    assert feature_map.dim() == 4
    assert feature_map.shape[:2] == (2, 48)
    assert min(feature_map.shape[2:]) >= 4
    assert (feature_map >= 0).all()  # after the ReLU


@pytest.mark.parametrize("seed", range(5))
def test_a_few_steps_at_the_recipe_max_lr_lower_the_loss_without_nan(seed: int) -> None:
    torch.manual_seed(seed)
    model = Ultimus()
    x = torch.randn(16, 3, 16, 16)  # small images keep the test fast; the model is size-agnostic
    y = torch.randint(0, 10, (16,))
    recipe = ULTIMUS_RECIPE
    if recipe.optimizer == "adam":
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=recipe.max_lr, momentum=recipe.momentum,
            nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
        )
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
