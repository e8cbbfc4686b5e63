"""NoiseTunnel with one noise bank shared by the images of a batch.

Captum's ``NoiseTunnel`` draws ``torch.normal`` noise for the whole expanded batch, so the
noise an image gets depends on its position and the batch size. :class:`SharedNoiseTunnel`
replaces that draw (``NoiseTunnel._add_noise_to_input``, stable since Captum 0.2) by slices
of a bank ``[n, C, H, W]`` added to every image, and counts the samples it handed out, so a
Captum that stops calling it is caught instead of silently ignored.

:func:`captum_noise_bank` draws the bank with Captum's own ``_add_noise_to_input`` on a
one-image zero batch, partition by partition as ``NoiseTunnel.attribute`` does, under
:func:`~xaikit_captum._seeding.seeded`: every image then gets exactly the noise Captum gives
a batch of that one image after ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

import torch
from captum.attr import NoiseTunnel
from captum.attr._utils.attribution import Attribution as CaptumAttribution
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call

from xaikit_captum._seeding import check_seed, seeded


class SharedNoiseTunnel(NoiseTunnel):
    """A NoiseTunnel whose noise samples come from ``bank`` ``[n, C, H, W]``, the same for
    every image of the batch."""

    def __init__(self, attribution_method: CaptumAttribution, bank: Tensor) -> None:
        super().__init__(attribution_method)
        self.bank = bank
        self.used = 0

    def _add_noise_to_input(  # type: ignore[override]
        self, input: Tensor, stdev: float, nt_samples_partition: int
    ) -> Tensor:
        noise = self.bank[self.used : self.used + nt_samples_partition]
        self.used += nt_samples_partition
        repeated = input.repeat_interleave(nt_samples_partition, dim=0)  # image-major rows
        return repeated + noise.repeat(input.shape[0], 1, 1, 1)


def partitions(nt_samples: int, nt_samples_batch_size: int | None) -> list[int]:
    """The sample counts of NoiseTunnel's forward passes, in Captum's order."""
    size = nt_samples if nt_samples_batch_size is None else min(nt_samples, nt_samples_batch_size)
    full, rest = divmod(nt_samples, size)
    return [size] * full + ([rest] if rest else [])


def captum_noise_bank(
    image_shape: torch.Size | tuple[int, ...],
    nt_samples: int,
    nt_samples_batch_size: int | None,
    stdev: float,
    seed: int | None,
    device: torch.device,
) -> Tensor:
    """The ``[nt_samples, C, H, W]`` noise Captum's NoiseTunnel draws for one image."""
    zero = torch.zeros((1, *image_shape[-3:]), device=device)
    with seeded(seed, device):
        draws = [
            NoiseTunnel._add_noise_to_input(zero, float(stdev), k)
            for k in partitions(nt_samples, nt_samples_batch_size)
        ]
    return torch.cat(draws)


def tunnel_gradients(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    nt_type: str,
    nt_samples: int,
    stdevs: float,
    nt_samples_batch_size: int | None,
    seed: int | None,
) -> Tensor:
    """Captum's ``NoiseTunnel(Saliency(model))`` of type ``nt_type`` on the raw gradients
    (``abs=False``), ``[B, C, H, W]``, with the noise of :func:`captum_noise_bank` shared by
    every image: image i's result is Captum's for ``x[i:i+1]`` after
    ``torch.manual_seed(seed)``."""
    from captum.attr import Saliency

    bank = captum_noise_bank(x.shape, nt_samples, nt_samples_batch_size, stdevs, seed, x.device)
    tunnel = SharedNoiseTunnel(Saliency(model), bank)
    grads = tunnel.attribute(
        x,
        nt_type=nt_type,
        nt_samples=nt_samples,
        nt_samples_batch_size=nt_samples_batch_size,
        stdevs=float(stdevs),
        target=target,
        abs=False,
    )
    if tunnel.used != nt_samples:
        raise RuntimeError("this Captum version no longer draws NoiseTunnel noise per input")
    return grads


class TunnelGradientStatistic(Attribution):
    """Base of the NoiseTunnel statistics of the target logit's input gradient (``vargrad``,
    ``smoothgrad-sq``): one constructor, one ``attribute``; a subclass names Captum's
    ``nt_type`` and the fewest samples the statistic needs. The map is the statistic summed
    over channels, clamped at 0 against rounding (a variance can come out -1e-9)."""

    uses_layer = False
    signed = False
    class_discriminative = True
    nt_type = ""
    min_samples = 1

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
        if nt_samples < self.min_samples or stdevs < 0:
            raise XaikitError(
                f"{self.name} needs nt_samples >= {self.min_samples} and stdevs >= 0, "
                f"got {nt_samples}, {stdevs}"
            )
        if nt_samples_batch_size is not None and nt_samples_batch_size < 1:
            raise XaikitError(f"nt_samples_batch_size must be >= 1, got {nt_samples_batch_size}")
        check_seed(seed)
        self.nt_samples = nt_samples
        self.stdevs = stdevs
        self.nt_samples_batch_size = nt_samples_batch_size
        self.seed = seed

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model):
            statistic = tunnel_gradients(
                self.model, x, target, self.nt_type, self.nt_samples, self.stdevs,
                self.nt_samples_batch_size, self.seed,
            )
        return statistic.clamp_min(0).sum(dim=1)
