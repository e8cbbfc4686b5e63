"""SS-CAM, smoothed Score-CAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.scorecam import ScoreCAM


class SSCAM(ScoreCAM):
    """SS-CAM: Score-CAM with the class scores averaged over noisy masks.

    Wang, Naidu, Michael, Kundu, "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature
    Localization", 2020, arXiv:2006.14255; as torch-cam's ``SSCAM``. With ``H^k`` Score-CAM's
    upsampled, min-max normalised channel ``k`` and ``delta_n ~ N(0, std^2)`` per pixel,
    ``n = 1..N``::

        S_k = (1 / N) sum_n score_c(X * (H^k + delta_n))
        L   = ReLU(sum_k alpha_k(S) A^k)

    where ``score_c`` and ``alpha`` are :class:`ScoreCAM`'s, chosen by ``score``: by default
    ``alpha_k = S_k - p_c(X_b)``, the averaged increase of the target-class probability over the
    all-zero input (see :class:`ScoreCAM` for why); ``score="softmax-logits"`` is torch-cam's
    ``softmax_k`` of the averaged logits. ``std = 0`` gives Score-CAM.

    Seeded: the noise comes from a generator seeded with ``seed`` (on the CPU, the same on
    every device), ``N`` draws of shape ``[K, H, W]`` shared by every image of the batch, so an
    image's map depends on that image and the seed alone.

    **Defaults** ``N = 10``, ``std = 0.1``. torch-cam's are ``N = 35`` and ``std = 2``; noise
    twice the masks' whole [0, 1] range drowns their shape: every masked image is about the
    same noisy image, the weights are about equal, and the map is the channel sum or nothing.
    On a trained ULTIMUS (CIFAR-10 demo run, 32 images) ``std = 2`` left 94% of the
    predicted class's maps blank (every weight negative) and the maps of two classes
    correlated at 0.94 (Spearman); ``std = 0.1``, SmoothGrad's 10% of the range, left 9%
    blank and the two classes at -0.23, while still smoothing (0.77 with Score-CAM's maps).
    ``N = 10`` keeps the cost at ten Score-CAMs.

    Sign and scale: as :class:`ScoreCAM` (non-negative, unnormalised). Cost: ``N K + 1``
    forward passes per image (``K`` channels) and one for the baseline, in chunks of
    ``chunk_size``; no backward pass.
    """

    name = "sscam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (Score-CAM with noise-averaged class scores)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        num_samples: int = 10,
        std: float = 0.1,
        seed: int = 0,
        chunk_size: int = 1024,
        score: str = "cic",
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            num_samples: Noisy copies of every mask.
            std: Standard deviation of the noise added to the [0, 1] masks.
            seed: Seed of the noise.
            chunk_size: Masked images per forward pass.
            score: As :class:`ScoreCAM`.
        """
        super().__init__(model, layer, chunk_size=chunk_size, score=score)
        if num_samples < 1:
            raise XaikitError(f"num_samples must be >= 1, got {num_samples}")
        if not std >= 0:
            raise XaikitError(f"std must be >= 0, got {std}")
        self.num_samples, self.std, self.seed = num_samples, float(std), seed

    def noise(self, masks: Tensor) -> Tensor:
        """The ``N`` noise draws ``[N, K, H, W]`` (the same for every image and call)."""
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn((self.num_samples, *masks.shape[1:]), generator=generator)
        return (self.std * noise).to(device=masks.device, dtype=masks.dtype)

    def _mask_scores(self, x: Tensor, masks: Tensor, target: Tensor) -> Tensor:
        total = torch.zeros(masks.shape[:2], device=x.device)
        for noise in self.noise(masks):
            total += self._masked_scores(x, masks + noise, target)
        return total / self.num_samples
