"""The contract every registered model, data set and attribution method must meet.

The names come from a fresh plugin manager built when this module is collected, so every
installed plugin is tested and the test ids are the registered names. xaikit's own suite runs
this module; a plugin author runs it on their installed plugin with::

    python -m pytest --pyargs xaikit.testing.test_contract

Models: the factory takes ``num_classes``; the target layer gives a ``[B, C, h, w]`` map; the
state dict round-trips through ``torch.load(weights_only=True)``; a channels_last forward
matches NCHW (or raises, and the trainer stays in NCHW); option defaults fit their types.

Data sets: loaded with no ``--data`` and no network (skipped with the reason when that raises
``XaikitError``), the bundle passes :func:`xaikit.data.validate_bundle` and normalises to
finite values; ``cifar10`` also reads a tiny generated ``cifar-10-batches-py`` folder.

Attribution methods: run on :class:`~xaikit.testing.nets.ContractNet` with 3 images of 3x16x20
(not square, so a swapped height and width shows): shape, device, finiteness, target forms,
per-image independence, model left as it was, no hook left after an exception, layer names.
A method that cannot apply to a model (construction raises ``XaikitError``) is skipped with
the reason.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import xaikit
from xaikit.data import normalize, validate_bundle
from xaikit.errors import XaikitError
from xaikit.plugins import make_plugin_manager
from xaikit.registry import get_entry
from xaikit.options import REQUIRED
from xaikit.specs import ModelSpec
from xaikit.testing import _seeded, plugin_manager  # noqa: F401  (fixtures, for --pyargs runs)
from xaikit.testing.checks import hooks_left, module_flags, no_network, write_cifar10_batches
from xaikit.testing.nets import NUM_CLASSES, ContractNet, ForwardFailure, NoConvNet

_PM = make_plugin_manager()
MODELS = xaikit.list_models(_PM)
DATASETS = xaikit.list_datasets(_PM)
METHODS = xaikit.list_attributions(_PM)
LAYER_METHODS = [name for name in METHODS if xaikit.get_attribution(name, _PM).uses_layer]

MODEL_BATCH = 2
BATCH, HEIGHT, WIDTH = 3, 16, 20


# ---------------------------------------------------------------- models


def model_spec(name: str) -> ModelSpec:
    return xaikit.get_model_spec(name, _PM)


def model_inputs(spec: ModelSpec, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(MODEL_BATCH, *spec.input_shape, generator=generator)


@pytest.mark.parametrize("num_classes", [10, 3])
@pytest.mark.parametrize("name", MODELS)
def test_model_factory_takes_num_classes(name: str, num_classes: int) -> None:
    spec = model_spec(name)
    model = spec.create(num_classes=num_classes).eval()
    with torch.no_grad():
        logits = model(model_inputs(spec))
    assert logits.shape == (MODEL_BATCH, num_classes)
    assert bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("name", MODELS)
def test_model_target_layer_outputs_a_spatial_map(name: str) -> None:
    spec = model_spec(name)
    if spec.target_layer is None:
        pytest.skip(f"model {name!r} declares no spatial layer (target_layer=None)")
    model = spec.create().eval()
    assert model.xaikit_target_layer == spec.target_layer
    modules = dict(model.named_modules())
    assert spec.target_layer in modules, (
        f"target_layer {spec.target_layer!r} is not in model.named_modules(): "
        f"{', '.join(n for n in modules if n)}"
    )
    outputs: list[object] = []
    handle = modules[spec.target_layer].register_forward_hook(lambda m, i, out: outputs.append(out))
    try:
        with torch.no_grad():
            model(model_inputs(spec))
    finally:
        handle.remove()
    assert outputs, f"layer {spec.target_layer!r} does not run in the forward pass"
    out = outputs[-1]
    assert isinstance(out, Tensor) and out.ndim == 4, (
        f"layer {spec.target_layer!r} must output [B, C, h, w], got "
        f"{list(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
    )
    assert out.shape[0] == MODEL_BATCH and min(out.shape[1:]) >= 1


@pytest.mark.parametrize("name", MODELS)
def test_model_state_dict_round_trips(name: str) -> None:
    spec = model_spec(name)
    torch.manual_seed(0)
    trained = spec.create().eval()
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    fresh = spec.create().eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x = model_inputs(spec)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_model_channels_last_forward_matches_nchw_or_raises(name: str) -> None:
    spec = model_spec(name)
    model = spec.create().eval()
    x = model_inputs(spec)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        try:
            actual = model(x.contiguous(memory_format=torch.channels_last))
        except Exception as exc:  # the trainer's probe: such a model trains in NCHW
            pytest.skip(f"no channels_last forward ({type(exc).__name__}); it trains in NCHW")
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_model_option_defaults_fit_their_types(name: str) -> None:
    spec = model_spec(name)
    options = spec.options()
    assert "num_classes" not in options
    defaults = {key: o.default for key, o in options.items() if o.default is not REQUIRED}
    spec.check_model_kwargs(defaults)  # raises XaikitError naming the option
    json.dumps([o.to_dict() for o in options.values()])


# ---------------------------------------------------------------- data sets


def check_bundle(name: str, bundle: object) -> None:
    entry = get_entry("dataset", name, _PM)
    bundle = validate_bundle(bundle, f"dataset {name!r} (plugin {entry.plugin})")
    for images, labels in (
        (bundle.train_images, bundle.train_labels),
        (bundle.test_images, bundle.test_labels),
    ):
        assert images.dtype == torch.uint8 and images.ndim == 4 and len(images) > 0
        assert labels.dtype == torch.int64 and labels.shape == (len(images),)
        assert 0 <= int(labels.min()) and int(labels.max()) < len(bundle.classes)
    x = normalize(bundle.train_images[:16], bundle.mean, bundle.std)
    assert bool(torch.isfinite(x).all()), "normalised images are not finite"


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_loads_offline_as_a_valid_bundle(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XAIKIT_DATA", raising=False)  # the default source, not a local copy
    spec = xaikit.get_dataset_spec(name, _PM)
    with no_network():
        try:
            bundle = spec.load(None, tmp_path / "cache")
        except XaikitError as exc:
            pytest.skip(f"{name!r} does not load offline without --data: {exc}")
    check_bundle(name, bundle)


@pytest.mark.skipif("cifar10" not in DATASETS, reason="no cifar10 data set registered")
def test_cifar10_loads_a_batches_folder(tmp_path: Path) -> None:
    folder = write_cifar10_batches(tmp_path / "cifar-10-batches-py")
    bundle = xaikit.get_dataset_spec("cifar10", _PM).load(str(folder), tmp_path / "cache")
    check_bundle("cifar10", bundle)
    assert bundle.train_images.shape == (12, 3, 32, 32) and bundle.classes == ["bee", "ant", "cat"]


# ---------------------------------------------------------------- attribution methods


def images(n: int = BATCH, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


def build(name: str, pm: object, model: nn.Module | None = None, **kwargs: object) -> object:
    """Method ``name`` on ``model`` (a fresh :class:`ContractNet` by default).

    A method that raises ``XaikitError`` here cannot apply to the model: the test is skipped
    with its reason.
    """
    model = model if model is not None else ContractNet()
    try:
        return xaikit.get_attribution(name, pm)(model, **kwargs)
    except XaikitError as exc:
        pytest.skip(f"{name} cannot apply to {type(model).__name__}: {exc}")


def call(method: object, x: Tensor, target: object, seed: int = 0) -> Tensor:
    """Call ``method`` with the global RNG seeded, so stochastic methods repeat exactly."""
    torch.manual_seed(seed)
    return method(x, target)


def assert_maps_close(actual: Tensor, expected: Tensor) -> None:
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * scale)


def is_stochastic(method: object, x: Tensor, target: object) -> bool:
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
    method = build(name, plugin_manager)
    with pytest.raises(xaikit.XaikitError, match="targets"):
        method(images(), [0, 1])


@pytest.mark.parametrize("name", METHODS)
def test_an_image_map_does_not_depend_on_its_neighbours(name, plugin_manager):
    method = build(name, plugin_manager)
    x, targets = images(), [0, 2, 4]
    other = x.clone()
    other[[0, 2]] = images(2, seed=1)
    maps, maps_with_other_neighbours = call(method, x, targets), call(method, other, targets)
    assert_maps_close(maps_with_other_neighbours[1], maps[1])
    if not method.image_independent:  # a control such as `center` is the same for every image
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
    model = ContractNet()
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
    model = ContractNet().train()
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
    model = ContractNet()
    method = build(name, plugin_manager, model)
    with pytest.raises(xaikit.XaikitError, match=f"target classes must be in 0..{NUM_CLASSES - 1}"):
        call(method, images(), NUM_CLASSES)
    assert hooks_left(model) == []


@pytest.mark.parametrize("name", METHODS)
def test_a_wrong_layer_name_is_an_error_listing_the_valid_names(name, plugin_manager):
    cls = xaikit.get_attribution(name, plugin_manager)
    with pytest.raises(xaikit.XaikitError) as info:
        cls(ContractNet(), layer="features.9")
    message = str(info.value)
    assert "\n" not in message
    if cls.uses_layer:
        assert "features.9" in message
        assert all(valid in message for valid in ("features.0", "features.4", "pool", "head"))
    else:
        assert name in message  # "method ... does not take a layer"


@pytest.mark.parametrize("name", LAYER_METHODS)
def test_layer_methods_explain_the_layer_they_are_given(name, plugin_manager):
    model = ContractNet()
    method = build(name, plugin_manager, model, layer="features.2")
    assert method.layer_name == "features.2" and method.layer is model.features[2]
    maps = call(method, images(), [0, 1, 2])
    assert maps.shape == (BATCH, HEIGHT, WIDTH) and bool(torch.isfinite(maps).all())
    default = call(build(name, plugin_manager, model), images(), [0, 1, 2])
    assert not torch.allclose(maps, default), "the layer argument made no difference"


@pytest.mark.parametrize("name", METHODS)
def test_a_model_without_a_spatial_layer_gets_maps_or_a_one_line_error(name, plugin_manager):
    model = NoConvNet(HEIGHT, WIDTH)
    cls = xaikit.get_attribution(name, plugin_manager)
    try:
        method = cls(model)
    except XaikitError as exc:
        assert "\n" not in str(exc)
        pytest.skip(f"{name} cannot apply to a model without a spatial layer: {exc}")
    maps = call(method, images(), [0, 1, 2])
    assert maps.shape == (BATCH, HEIGHT, WIDTH) and bool(torch.isfinite(maps).all())
    assert hooks_left(model) == []


DISCRIMINATIVE = [n for n in METHODS if xaikit.get_attribution(n, _PM).class_discriminative]


@pytest.mark.parametrize("name", DISCRIMINATIVE)
def test_two_classes_of_a_trained_model_get_different_maps(name, plugin_manager):
    """Every method that declares itself class-discriminative gives different maps for two
    different classes of the same trained model (mean Spearman rho below 0.9)."""
    from xaikit.metrics import spearman
    from xaikit.testing.nets import trained_shapes

    model, x, labels = trained_shapes()
    x, labels = x[:8], labels[:8]  # 8 correctly classified images: enough to tell, and fast
    try:
        method = xaikit.get_attribution(name)(model)
        a, b = method(x, labels), method(x, (labels + 5) % 10)
    except xaikit.NotApplicableError as exc:
        pytest.skip(str(exc))
    rho = float(spearman(a, b).mean())
    assert rho < 0.9, f"{name}: the maps of two classes correlate at {rho:.3f}"
