"""Grad-CAM speed against torch-cam and pytorch-grad-cam, same model, layer, batch and targets.

Neither library is a dependency of xaikit: each case is skipped when its library is not
importable (put them on ``PYTHONPATH`` to run it, e.g. ``pip install --target DIR grad-cam
torchcam`` and ``PYTHONPATH=DIR make bench``). A round is one batch of 64 maps for given
targets (the predicted classes, computed once beforehand), then a CUDA sync. The models are
``ultimus`` and ``custom-resnet`` with a seeded random initialisation in eval mode, at their
spec's CAM layer. ``test_gradcam_against_libraries`` times each library in its own test, one
after the other; ``test_gradcam_interleaved`` lets them take turns on one warm model, which is
the comparison to quote (on a CPU, separate tests differ by 10-30% with the order they run in).
"""

from __future__ import annotations

import importlib.util
import statistics
import time

import pytest
import torch

import xaikit
from harness import DEVICE_PARAMS, record_throughput, synchronize

BATCH = 64
ROUNDS = 5
LIBRARIES = ("xaikit", "torch-cam", "pytorch-grad-cam")
MODELS = ("ultimus", "custom-resnet")


def _available(library: str) -> bool:
    module = {"xaikit": "xaikit", "torch-cam": "torchcam", "pytorch-grad-cam": "pytorch_grad_cam"}
    return importlib.util.find_spec(module[library]) is not None


def _gradcam(library: str, model: torch.nn.Module, layer_name: str, x: torch.Tensor, targets: torch.Tensor):
    """A callable computing ``[B, h, w]``-or-larger Grad-CAM maps of ``x`` for ``targets``."""
    layer = dict(model.named_modules())[layer_name]
    if library == "xaikit":
        method = xaikit.get_attribution("gradcam")(model, layer=layer_name)
        return lambda: method(x, targets)
    if library == "torch-cam":
        from torchcam.methods import GradCAM

        extractor = GradCAM(model, target_layer=layer, enable_hooks=False)

        def torchcam_maps() -> torch.Tensor:
            extractor._hooks_enabled = True
            model.zero_grad(set_to_none=True)
            scores = model(x)
            maps = extractor(targets.tolist(), scores)[0]
            extractor._hooks_enabled = False
            return maps

        return torchcam_maps
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=model, target_layers=[layer])
    wanted = [ClassifierOutputTarget(int(t)) for t in targets]
    return lambda: cam(input_tensor=x, targets=wanted)


def _setup(model_name: str, device: str):  # noqa: ANN202
    """``(spec, model, images, targets)``: the seeded model in eval mode and its predictions."""
    torch.manual_seed(0)
    spec = xaikit.get_model_spec(model_name)
    model = spec.create().to(device).eval()
    x = torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        targets = model(x).argmax(dim=1)
    return spec, model, x, targets


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_gradcam_against_libraries(benchmark, device, model_name, library) -> None:
    """Seconds per batch of 64 Grad-CAM maps, xaikit against the two reference libraries."""
    if not _available(library):
        pytest.skip(f"{library} is not installed (not a dependency; see the module docstring)")
    spec, model, x, targets = _setup(model_name, device)
    maps_of = _gradcam(library, model, spec.target_layer, x, targets)

    def run():
        maps = maps_of()
        synchronize(device)
        return maps

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=3, iterations=1)
    record_throughput(benchmark, BATCH, model=model_name, library=library)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_gradcam_interleaved(benchmark, device, model_name) -> None:
    """The fair comparison: the available libraries take turns on the same warm model, so a
    slow moment of the machine or a cold cache costs each of them alike. A round is one batch
    of 64 maps from each library, in alternating order; ``extra_info`` holds each library's
    median milliseconds over the rounds (and the speed relative to torch-cam's)."""
    available = [lib for lib in LIBRARIES if _available(lib)]
    if len(available) < 2:
        pytest.skip("torch-cam and pytorch-grad-cam are not installed (see the module docstring)")
    spec, model, x, targets = _setup(model_name, device)
    makers = {lib: _gradcam(lib, model, spec.target_layer, x, targets) for lib in available}
    times: dict[str, list[float]] = {lib: [] for lib in available}
    turn = [0]

    def one_round() -> None:
        order = available if turn[0] % 2 == 0 else available[::-1]
        for lib in order:
            started = time.perf_counter()
            makers[lib]()
            synchronize(device)
            times[lib].append(time.perf_counter() - started)
        turn[0] += 1

    benchmark.pedantic(one_round, rounds=4 * ROUNDS, warmup_rounds=3, iterations=1)
    medians = {lib: statistics.median(t[3:]) * 1000 for lib, t in times.items()}  # no warm-up
    benchmark.extra_info.update({f"{lib}_median_ms": round(ms, 1) for lib, ms in medians.items()})
    if "torch-cam" in medians:
        benchmark.extra_info.update({f"{lib}_vs_torch_cam": round(ms / medians["torch-cam"], 3)
                                     for lib, ms in medians.items()})
    benchmark.extra_info["model"] = model_name
