"""SmoothGrad (Smilkov, Thorat, Kim, Viegas and Wattenberg, "SmoothGrad: removing noise by
adding noise", 2017), through Captum's ``NoiseTunnel`` over ``Saliency``."""

from __future__ import annotations

import torch
from captum.attr import Saliency as _CaptumSaliency
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._noise import SharedNoiseTunnel as _SharedNoiseTunnel


class SmoothGrad(Attribution):
    """Saliency averaged over noisy copies of the input, maximised over channels.

    ``M_ij = max_k (1/n) sum_{s=1..n} |d f_c(x + e_s) / d x_kij|``, ``e_s ~ N(0, stdevs^2)``,
    i.e. Captum's ``NoiseTunnel(Saliency)`` with ``nt_type="smoothgrad"`` (which averages the
    per-channel ``|grad|``), then the max over channels as in :class:`~xaikit_captum.Saliency`.

    ``stdevs`` is absolute, in normalised input units: the default 0.5 is about 12% of the
    range of a CIFAR-10 image normalised by its std (~0.25 on the 0..1 scale), inside the
    10-20% the paper recommends. The ``nt_samples`` noise images ``e_s`` are drawn once per
    call from a generator seeded with ``seed`` (``seed=None``: the global RNG) and shared by
    all images of the batch, so repeated calls give the same maps and an image's map is the
    same in any batch.

    Output: ``[B, H, W]``, **non-negative**, logit-per-input-unit (unnormalised).

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        nt_samples: Noisy samples per image.
        stdevs: Standard deviation of the Gaussian noise.
        nt_samples_batch_size: Noisy samples per image and forward pass (each pass holds
            ``B * nt_samples_batch_size`` images).
        seed: Seed of the noise, or ``None``.
    """

    name = "smoothgrad"
    uses_layer = False
    signed = False
    class_discriminative = True
    scale = "non-negative, mean |d logit / d input| under noise, max over channels"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        nt_samples: int = 16,
        stdevs: float = 0.5,
        nt_samples_batch_size: int | None = 8,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if nt_samples < 1 or stdevs < 0:
            raise XaikitError(f"need nt_samples >= 1 and stdevs >= 0, got {nt_samples}, {stdevs}")
        self.nt_samples = nt_samples
        self.stdevs = stdevs
        self.nt_samples_batch_size = nt_samples_batch_size
        self.seed = seed

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)
        bank = torch.randn((self.nt_samples, *x.shape[1:]), generator=generator) * self.stdevs
        tunnel = _SharedNoiseTunnel(_CaptumSaliency(self.model), bank.to(x))
        with captum_call(self.model):
            grads = tunnel.attribute(
                x,
                nt_type="smoothgrad",
                nt_samples=self.nt_samples,
                nt_samples_batch_size=self.nt_samples_batch_size,
                stdevs=float(self.stdevs),
                target=target,
                abs=True,
            )
        if tunnel.used != self.nt_samples:
            raise RuntimeError("this Captum version no longer draws NoiseTunnel noise per input")
        return grads.amax(dim=1)
