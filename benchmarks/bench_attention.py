"""The ULTIMUS attention block and the stack of four: per-image vs batched vs compiled.

Inputs are the 48-d pooled feature vectors ``x [B, 48]`` that the blocks see in the model.

* ``per-image``: ``xaikit_ultimus.model.ultimus_block_reference``, a Python loop over the
  images (outer product, softmax and ``v @ AM`` of one image at a time);
* ``batched``: the model's own ``UltimusBlock.forward`` (one einsum over ``[B, 8, 8]``);
* ``compiled``: ``torch.compile(batched, dynamic=False)`` (one graph per batch size; on the
  CPU Inductor needs a C++ compiler, and a failing compile skips the case with its reason).

``forward`` runs under ``torch.no_grad()`` (inference); ``forward+backward`` runs the forward
with gradients on (the input requires grad, as conv features do in the model) and back-propagates
``y.sum()``. Per-image at batch 1024 takes seconds per round: it uses a few pedantic rounds.
"""

from __future__ import annotations

import functools
from typing import Callable

import pytest
import torch
from harness import DEVICE_PARAMS, record_throughput, synchronize
from torch import Tensor, nn

IMPLEMENTATIONS = ("per-image", "batched", "compiled")
MODES = ("forward", "forward+backward")
BATCH_SIZES = (1, 128, 1024)
MODULES = ("block", "stack")
SLOW_PER_IMAGE_BATCH = 1024  # per-image rounds at this size are pedantic (bounded)
SLOW_ROUNDS = 3

_compiled: dict[tuple[str, str], Callable[[Tensor], Tensor]] = {}


@functools.cache
def attention_modules(device: str) -> dict[str, nn.Module]:
    """A seeded ULTIMUS model's first block and its stack of four blocks, on ``device``.

    Built once per device, so that the compiled wrappers and the timed calls share modules.
    """
    from xaikit_ultimus.model import Ultimus

    torch.manual_seed(0)
    model = Ultimus().to(device)
    return {"block": model.ultimus[0], "stack": model.ultimus}


def per_image(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The per-image reference of a block, or of a stack applied block after block."""
    from xaikit_ultimus.model import ultimus_block_reference

    blocks = list(module) if isinstance(module, nn.Sequential) else [module]

    def run(x: Tensor) -> Tensor:
        return functools.reduce(lambda h, block: ultimus_block_reference(block, h), blocks, x)

    return run


def implementation(impl: str, module_name: str, module: nn.Module, device: str) -> Callable:
    """The callable that ``impl`` names for ``module`` (compiled wrappers are cached)."""
    if impl == "per-image":
        return per_image(module)
    if impl == "batched":
        return module
    key = (module_name, device)
    if key not in _compiled:  # one compiled wrapper per module; recompiles per shape and mode
        _compiled[key] = torch.compile(module, dynamic=False)
    return _compiled[key]


def timed_call(
    fn: Callable[[Tensor], Tensor], module: nn.Module, x: Tensor, mode: str, device: str
) -> Callable[[], None]:
    """The function a round times: one forward (or forward+backward), then a CUDA sync."""
    if mode == "forward":

        def run() -> None:
            with torch.no_grad():
                fn(x)
            synchronize(device)

    else:
        x = x.detach().requires_grad_(True)

        def run() -> None:
            module.zero_grad(set_to_none=True)
            x.grad = None
            fn(x).sum().backward()
            synchronize(device)

    return run


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_ultimus_attention(benchmark, device, module, impl, mode, batch) -> None:
    """Seconds per call of the block (or stack) on ``batch`` feature vectors."""
    layer = attention_modules(device)[module]
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 48, generator=generator).to(device)
    fn = implementation(impl, module, layer, device)
    run = timed_call(fn, layer, x, mode, device)
    if impl == "compiled":
        try:
            run()  # compile outside the timed rounds
        except Exception as exc:  # noqa: BLE001 (Inductor: no C++ compiler, no Triton...)
            message = " ".join(str(exc).split())[:200]
            pytest.skip(f"torch.compile failed on {device}: {type(exc).__name__}: {message}")
    if impl == "per-image" and batch >= SLOW_PER_IMAGE_BATCH:
        benchmark.pedantic(run, rounds=SLOW_ROUNDS, warmup_rounds=1, iterations=1)
    else:
        benchmark(run)
    record_throughput(benchmark, batch)
