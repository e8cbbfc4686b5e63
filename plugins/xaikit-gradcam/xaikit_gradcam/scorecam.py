"""Score-CAM, and the masked-input machinery that SS-CAM and IS-CAM share."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import XaikitError, upsample
from xaikit_gradcam.gradient_cam import ActivationCAM

#: How the class scores of the masked images become channel weights (see :class:`ScoreCAM`).
SCORES = ("cic", "probability", "softmax-logits")


class ScoreCAM(ActivationCAM):
    """Score-CAM: each channel weighted by the target-class score of the input it masks.

    Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu, "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks", CVPR Workshops 2020, arXiv:1910.01279.

    Gradient-free. For each image ``X`` and each channel ``k`` of the layer's output ``A``::

        H^k = s(Upsample(A^k))                  s: min-max normalisation to [0, 1] per channel
                                                (H^k = 0 where A^k is constant)
        L   = ReLU(sum_k alpha_k A^k)

    with the weight ``alpha_k`` chosen by ``score`` (``c`` the target class, ``p_c`` its softmax
    probability, ``y_c`` its logit, ``X_b = 0`` the baseline)::

        "cic" (default)   alpha_k = p_c(X * H^k) - p_c(X_b)            the paper's "increase of
                                                                       confidence" (Sec. 4.1)
        "probability"     alpha_k = p_c(X * H^k)                       the authors' code
                                                                       (haofanwang/Score-CAM)
        "softmax-logits"  alpha_k = softmax_k(y_c(X * H^k))            pytorch-grad-cam, torch-cam

    **Why "cic" is the default.** The paper's Algorithm 1 also passes the increases of
    confidence through a softmax over the channels. Those scores are probabilities, so they lie
    in [-1, 1] and the softmax makes every weight ``(1 + O(C_k)) / K``: all channels get about
    the same weight whatever the class, and the map is about the channel mean for every class.
    That was this plugin's earlier Score-CAM: on the trained ULTIMUS of the CIFAR-10 demo run
    the maps of the predicted class and of another one correlated at 0.98 (Spearman, 32
    images); with ``"cic"`` they correlate at -0.10 (Grad-CAM: -0.29). We keep the paper's
    score, the target class's probability (a channel counts where it raises class ``c``
    *against the other classes*), and its baseline, and drop the softmax: ``alpha_k`` is linear
    in the evidence, negative for a channel whose region alone makes ``c`` *less* likely than a
    blank image, and a map's scale is comparable across images and classes. Where no channel
    beats the blank image the map is zero, which is the honest answer for a class the image
    gives no evidence for. The softmax over the channels of *logits* (``"softmax-logits"``) is
    class-discriminative too, but winner-takes-all (a logit gap of a few units between two
    masks gives one channel almost all the weight) and blind to the competing classes. The
    baseline ``X_b`` is the all-zero input, which is what ``X * H`` becomes as the mask goes to
    zero (in the normalised input space: the data set's mean colour); it costs one forward pass
    of one image, the same for every image of the batch.

    The ``B * K`` masked images go through the model in chunks of ``chunk_size`` images (one
    forward per chunk, no gradients); images never mix, since the model is in eval mode.

    Sign and scale: non-negative, unnormalised (``"cic"``/``"probability"``: activations times
    probabilities; ``"softmax-logits"``: a convex combination of channels), ReLU'd and upsampled
    bilinearly to the input resolution.

    Cost: ``K + 1`` forward passes per image (``K`` channels) and one for the baseline; no
    backward pass.
    """

    name = "scorecam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (channels weighted by target-class probability gains)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        chunk_size: int = 1024,
        score: str = "cic",
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            chunk_size: Masked images per forward pass.
            score: ``"cic"`` (default), ``"probability"`` or ``"softmax-logits"``: how the
                class scores of the masked images become weights (see the class docstring).
        """
        super().__init__(model, layer)
        if chunk_size < 1:
            raise XaikitError(f"chunk_size must be >= 1, got {chunk_size}")
        if score not in SCORES:
            raise XaikitError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
        self.chunk_size = chunk_size
        self.score = score

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, _logits = self.activation_and_logits(x)
        with torch.no_grad():
            masks = channel_masks(activation, tuple(x.shape[-2:]))
            scores = self._mask_scores(x, masks, target)
            weights = self._weights(scores, x, target)
            return (weights[:, :, None, None] * activation).sum(dim=1).clamp_min(0)

    def _mask_scores(self, x: Tensor, masks: Tensor, target: Tensor) -> Tensor:
        """The class score of every masked image ``X * H^k``, ``[B, K]`` (SS-CAM and IS-CAM
        average it over perturbed masks)."""
        return self._masked_scores(x, masks, target)

    def _weights(self, scores: Tensor, x: Tensor, target: Tensor) -> Tensor:
        """Channel weights ``[B, K]`` from the (averaged) class scores of the masked images."""
        if self.score == "softmax-logits":
            return torch.softmax(scores, dim=1)
        if self.score == "probability":
            return scores
        baseline = torch.softmax(self.model(torch.zeros_like(x[:1])).float(), dim=1)[0]
        return scores - baseline[target][:, None]

    def _masked_scores(self, x: Tensor, masks: Tensor, target: Tensor) -> Tensor:
        """Target-class score of every masked image ``x[b] * masks[b, k]``, ``[B, K]``: the
        softmax probability, or the logit for ``score="softmax-logits"``."""
        batch, channels = masks.shape[:2]
        image_of = torch.arange(batch, device=x.device).repeat_interleave(channels)
        flat_masks = masks.reshape(batch * channels, 1, *masks.shape[2:])
        flat_targets = target[image_of][:, None]
        scores = torch.empty(batch * channels, device=x.device, dtype=torch.float32)
        for start in range(0, batch * channels, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            logits = self.model_forward(x[image_of[rows]] * flat_masks[rows]).float()
            if self.score != "softmax-logits":
                logits = torch.softmax(logits, dim=1)
            scores[rows] = logits.gather(1, flat_targets[rows])[:, 0]
        return scores.reshape(batch, channels)


def channel_masks(activation: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsampled, per-channel min-max normalised activations ``[B, K, H, W]`` in [0, 1]
    (0 for a constant channel)."""
    batch, channels = activation.shape[:2]
    masks = upsample(activation.reshape(batch * channels, *activation.shape[2:]).float(), size)
    masks = masks.reshape(batch, channels, *size)
    low = masks.amin(dim=(2, 3), keepdim=True)
    span = masks.amax(dim=(2, 3), keepdim=True) - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (masks - low) / safe, torch.zeros_like(masks))
