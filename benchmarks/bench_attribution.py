"""Attribution throughput: images per second of every registered method on ULTIMUS.

One case per method in ``xaikit.list_attributions()`` (the registry at collection time), batch
size and device. The model is ``ultimus`` with a seeded random initialisation, in eval mode:
the amount of work of these methods depends on shapes, not on weight values. Inputs are seeded
standard-normal images ``[B, 3, 32, 32]`` (the scale of normalised images); targets are the
predicted classes, as ``xaikit explain`` uses by default. A round is one call ``method(x)``
(including the base class's forward pass for the targets), then a CUDA sync. Rounds are
pedantic (bounded): some methods (occlusion, Score-CAM, integrated gradients) take seconds
per batch of 64 on a CPU.
"""

from __future__ import annotations

import pytest
import torch

import xaikit
from harness import DEVICE_PARAMS, record_throughput, synchronize

MODEL = "ultimus"
BATCH_SIZES = (1, 64)
ROUNDS = {1: 5, 64: 3}
#: Rounds of the methods that take seconds per batch of 64 on a CPU (thousands of forward
#: passes per image): one round each, so `make bench` stays in minutes.
SLOW = {"lime", "kernel-shap", "shapley-sampling", "occlusion", "feature-ablation", "rise",
        "gradient-shap", "deeplift-shap", "sscam", "iscam", "ablationcam", "scorecam"}


def registered_methods() -> list[str]:
    """Every registered attribution method (empty when no plugin registers one)."""
    return xaikit.list_attributions()


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("method", registered_methods())
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_attribution_throughput(benchmark, device, method, batch) -> None:
    """Seconds per batch of maps of ``method`` on a randomly initialised ULTIMUS."""
    torch.manual_seed(0)
    model = xaikit.create_model(MODEL).to(device).eval()
    try:
        explainer = xaikit.get_attribution(method)(model)
    except xaikit.NotApplicableError as exc:  # lrp on ULTIMUS's attention, cam on its head
        pytest.skip(str(exc))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=generator).to(device)

    def run() -> torch.Tensor:
        maps = explainer(x)
        synchronize(device)
        return maps

    slow = method in SLOW and torch.device(device).type == "cpu"
    rounds, warmup = (1, 0) if slow else (ROUNDS[batch], 1)
    maps = benchmark.pedantic(run, rounds=rounds, warmup_rounds=warmup, iterations=1)
    assert maps.shape == (batch, 32, 32)
    record_throughput(benchmark, batch, model=MODEL, weights="random init (seed 0)")
