"""Score-CAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import Attribution, upsample
from xaikit import XaikitError

from xaikit_gradcam.gradient_cam import check_feature_map


class ScoreCAM(Attribution):
    """Score-CAM: channels weighted by the class score of the input they mask.

    Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu, "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks", CVPR Workshops 2020, arXiv:1910.01279.

    Gradient-free. For each image and each channel ``k`` of the layer's output ``A``::

        H^k = s(Upsample(A^k))                     s: min-max normalisation to [0, 1] per channel
                                                   (H^k = 0 where A^k is constant)
        C_k = p_c(X * H^k) - p_c(X_b)              increase of confidence (CIC); p_c = softmax
                                                   probability of the target class
        alpha_k = exp(C_k) / sum_j exp(C_j)        softmax over the channels (Algorithm 1)
        L = ReLU(sum_k alpha_k A^k)

    This is the paper's Algorithm 1 with softmax probabilities as the class score. The
    baseline term ``p_c(X_b)`` is one number per image, so it cancels in the softmax over
    channels and is not computed. Because ``C_k`` lies in [-1, 1], the weights of one image
    differ by at most a factor ``e^2``.

    The ``B * K`` masked images go through the model in chunks of ``chunk_size`` images (one
    forward per chunk, no gradients); images never mix, since the model is in eval mode.

    Output: non-negative, unnormalised (a convex combination of activation channels, ReLU'd),
    upsampled bilinearly to the input resolution.
    """

    name = "scorecam"
    uses_layer = True
    signed = False
    scale = "ReLU'd, >= 0, unnormalised (softmax-weighted mean of activation channels)"

    def __init__(self, model: nn.Module, layer: str | None = None, *, chunk_size: int = 256) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            chunk_size: Masked images per forward pass.
        """
        super().__init__(model, layer)
        if chunk_size < 1:
            raise XaikitError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            activation = self._activation(x)
            masks = self._channel_masks(activation, tuple(x.shape[-2:]))
            scores = self._masked_scores(x, masks, target)
            weights = torch.softmax(scores, dim=1)
            return (weights[:, :, None, None] * activation).sum(dim=1).clamp_min(0)

    def _activation(self, x: Tensor) -> Tensor:
        """The layer's output ``[B, K, h, w]`` for ``x`` (one forward, hook removed after)."""
        with self.capture(retain_grad=False) as captured:
            self.model(x)
        activation = captured.get("activation")
        if activation is None:
            raise XaikitError(f"layer {self.layer_name!r} was not called in the model's forward")
        check_feature_map(activation, self.name, self.layer_name)
        return activation

    @staticmethod
    def _channel_masks(activation: Tensor, size: tuple[int, int]) -> Tensor:
        """Upsampled, per-channel min-max normalised activations ``[B, K, H, W]`` in [0, 1]."""
        batch, channels = activation.shape[:2]
        masks = upsample(activation.reshape(batch * channels, *activation.shape[2:]), size)
        masks = masks.reshape(batch, channels, *size)
        low = masks.amin(dim=(2, 3), keepdim=True)
        span = masks.amax(dim=(2, 3), keepdim=True) - low
        safe = torch.where(span > 0, span, torch.ones_like(span))
        return torch.where(span > 0, (masks - low) / safe, torch.zeros_like(masks))

    def _masked_scores(self, x: Tensor, masks: Tensor, target: Tensor) -> Tensor:
        """Target-class probability of every masked image, ``[B, K]``."""
        batch, channels = masks.shape[:2]
        image_of = torch.arange(batch, device=x.device).repeat_interleave(channels)
        flat_masks = masks.reshape(batch * channels, 1, *masks.shape[2:])
        flat_targets = target[image_of][:, None]
        scores = torch.empty(batch * channels, device=x.device, dtype=x.dtype)
        for start in range(0, batch * channels, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            logits = self.model(x[image_of[rows]] * flat_masks[rows])
            scores[rows] = torch.softmax(logits.float(), dim=1).gather(1, flat_targets[rows])[:, 0]
        return scores.reshape(batch, channels)
