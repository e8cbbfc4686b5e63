"""The random-number states a checkpoint carries, so that a resumed run continues exactly."""

from __future__ import annotations

from typing import Any

import torch


def capture_rng_state(data_generator: torch.Generator) -> dict[str, Any]:
    """The CPU, CUDA and data-generator RNG states, as tensors."""
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_generator.get_state(),
        "data_device": str(data_generator.device),
    }


def restore_rng_state(state: dict[str, Any], data_generator: torch.Generator) -> None:
    """Put back what :func:`capture_rng_state` saved (CUDA states only where CUDA exists)."""
    torch.set_rng_state(state["cpu"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    saved_device = state.get("data_device")
    if saved_device is not None and torch.device(saved_device).type == data_generator.device.type:
        data_generator.set_state(state["data"].cpu())  # cuda:0's state fits cuda:1's generator
