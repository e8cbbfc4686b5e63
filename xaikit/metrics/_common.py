"""Internal helpers shared by the metric modules: input checks, targets, probabilities."""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.attribution.base import TargetLike, resolve_targets
from xaikit.errors import XaikitError
from xaikit.modules import forward_nhwc, model_device, module_mode


def check_maps(x: Tensor, maps: Tensor) -> None:
    """Raise unless ``x`` is ``[B, C, H, W]`` and ``maps`` is ``[B, H, W]`` of the same images."""
    if x.ndim != 4:
        raise XaikitError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
    if maps.shape != (x.shape[0], *x.shape[-2:]):
        raise XaikitError(f"maps {tuple(maps.shape)} do not fit images {tuple(x.shape)}")


def prepare(model: nn.Module, x: Tensor, target: TargetLike) -> tuple[Tensor, Tensor]:
    """``x`` as float32 on the model's device and the per-image targets ``[B]`` there."""
    x = x.to(model_device(model), torch.float32)
    with module_mode(model, training=False):
        targets = resolve_targets(target, model, x)
    return x, targets


def target_probability(model: nn.Module, batch: Tensor, targets: Tensor) -> Tensor:
    """``softmax(model(batch))[i, targets[i]]`` per image (call in eval mode, no grad; the
    batch goes in channels_last on a CPU, :func:`xaikit.modules.forward_nhwc`)."""
    p = F.softmax(forward_nhwc(model, batch).float(), dim=1)
    return p.gather(1, targets[:, None])[:, 0]


def channel_std(std: Sequence[float] | Tensor | None, channels: int) -> Tensor | None:
    """Per-channel std ``[C]`` (0 treated as 1, as ``normalize`` does), or ``None``."""
    if std is None:
        return None
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
    if s.numel() == 1:
        s = s.expand(channels)
    if s.numel() != channels:
        raise XaikitError(f"got {s.numel()} channel stds for {channels} channels")
    return torch.where(s > 0, s, torch.ones_like(s))


def finite_list(values: Tensor | Sequence[float]) -> list[float | None]:
    """Plain floats for JSON, with NaN/inf as ``None``."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().reshape(-1).tolist()
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def seconds_since(started: float, device: torch.device) -> float:
    """Wall seconds since ``started`` (``time.perf_counter``), after a CUDA sync."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started




def captum_batch(batch: int, samples: int, budget: int) -> int:
    """Captum's ``max_examples_per_batch``: ``budget`` clamped to ``[batch, batch * samples]``
    (outside that range Captum warns and clamps itself)."""
    return max(batch, min(budget, batch * samples))
