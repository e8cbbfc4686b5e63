"""Ablation-CAM."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.gradient_cam import ActivationCAM
from xaikit_gradcam.hooks import forward_hooks


class AblationCAM(ActivationCAM):
    """Ablation-CAM: each channel weighted by the drop of the class score when it is zeroed.

    Desai, Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via
    Gradient-free Localization", WACV 2020, pp. 983-991. With ``y_c`` the target logit and
    ``y_c^(k)`` the logit when channel ``k`` of the layer's output ``A`` is set to zero (the
    rest of the forward unchanged)::

        w_k = (y_c - y_c^(k)) / |y_c|              (0 where y_c = 0)
        L   = ReLU(sum_k w_k A^k)

    The paper divides by ``y_c``. For a target whose logit is negative (a class the model
    rejects) that flips every weight, and the ReLU'd map would show where the class is *least*
    supported; dividing by ``|y_c|`` keeps the meaning (``w_k > 0``: removing the channel lowers
    the class score) and is the paper's formula wherever ``y_c > 0``. pytorch-grad-cam's
    ``AblationCAM`` divides by ``y_c`` and, when the layer's output has no zero minimum, ablates
    with ``min(A) - 1e7`` instead of 0; both agree with this one on a ReLU layer with ``y_c > 0``.

    Batched: the ``B * K`` ablated forwards run in chunks of ``chunk_size`` images, each image
    repeated once per channel, with the layer's output multiplied by a mask that zeroes that
    row's channel (a forward hook, removed when the call ends). Images never mix.

    Sign and scale: non-negative, unnormalised (activation units times relative logit drops),
    upsampled bilinearly to the input resolution. Cost: ``K + 1`` forward passes per image
    (``K`` channels), no backward pass.
    """

    name = "ablationcam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (activations weighted by relative logit drops)"

    def __init__(
        self, model: nn.Module, layer: str | None = None, *, chunk_size: int = 1024
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            chunk_size: Ablated images per forward pass.
        """
        super().__init__(model, layer)
        if chunk_size < 1:
            raise XaikitError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, logits = self.activation_and_logits(x)
        with torch.no_grad():
            score = logits.float().gather(1, target[:, None])[:, 0]
            ablated = self._ablated_scores(x, target, activation.shape[1])
            drop = score[:, None] - ablated
            denominator = score.abs()[:, None]
            safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
            weights = torch.where(denominator > 0, drop / safe, torch.zeros_like(drop))
            return (weights[:, :, None, None] * activation).sum(dim=1).clamp_min(0)

    def _ablated_scores(self, x: Tensor, target: Tensor, channels: int) -> Tensor:
        """Target logit ``[B, K]`` of each image with each channel of the layer set to zero."""
        batch = x.shape[0]
        rows = batch * channels
        image_of = torch.arange(batch, device=x.device).repeat_interleave(channels)
        channel_of = torch.arange(channels, device=x.device).repeat(batch)
        scores = torch.empty(rows, device=x.device, dtype=torch.float32)
        current: dict[str, Tensor] = {}

        def ablate(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
            if not isinstance(output, Tensor) or output.ndim != 4:
                raise XaikitError(
                    f"method {self.name!r} needs a layer with output [B, C, h, w]; layer "
                    f"{self.layer_name!r} gives {type(output).__name__}"
                )
            keep = torch.ones(output.shape[:2], device=output.device, dtype=output.dtype)
            keep[torch.arange(len(keep), device=output.device), current["channels"]] = 0
            return output * keep[:, :, None, None]

        with forward_hooks([self.layer], ablate):
            for start in range(0, rows, self.chunk_size):
                chunk = slice(start, start + self.chunk_size)
                current["channels"] = channel_of[chunk]
                logits = self.model_forward(x[image_of[chunk]]).float()
                scores[chunk] = logits.gather(1, target[image_of[chunk]][:, None])[:, 0]
        return scores.reshape(batch, channels)
