"""Fidelity of a map to the model's local behaviour: infidelity (Captum) and IG completeness.

* :func:`infidelity` -- Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and
  Sensitivity of Explanations", NeurIPS 2019, computed by ``captum.metrics.infidelity``::

      INFD = E_I [ (I^T phi - (f_c(x) - f_c(x - I)))^2 ]

  for random perturbations ``I``, with ``f_c`` the target logit. Perturbation (documented
  choice): Gaussian noise ``I ~ N(0, noise_std^2)`` per *pixel*, the same in every channel, in
  the units of the normalised input (default ``noise_std = 0.1``, about 6/255 on the 0..1
  scale for CIFAR-10's stds of about 0.25; Yeh et al.'s "noisy baseline"). A channel-shared
  perturbation makes ``I^T phi = sum_pixels I_p map_p`` exact for our channel-summed ``[B, H,
  W]`` maps (Captum gets ``phi = map / C`` broadcast over the channels). With ``normalize=True``
  (default) Captum rescales each image's map by the least-squares ``beta`` first (Yeh et al.,
  Sec. 3), so the score does not depend on the map's scale, only on how well ``I^T phi``
  tracks the logit change: ``INFD = E[d^2] (1 - cos^2)`` over the samples. Lower is better;
  units are squared logits. The perturbations come from a generator seeded by ``seed``, so
  every method sees the same ones on the same images.
* :func:`completeness_gap` -- ``|sum(map) - (f_c(x) - f_c(baseline))|`` (Sundararajan, Taly and
  Yan 2017), for integrated-gradients maps.
"""

from __future__ import annotations

import functools

import captum.metrics
import torch
from torch import Tensor, nn

from xaikit.attribution.base import TargetLike
from xaikit.metrics._common import check_maps, prepare
from xaikit.modules import forward_nhwc, model_device, module_mode


def gaussian_pixel_perturbation(noise_std: float, generator: torch.Generator):
    """Captum ``perturb_func``: ``(I, x - I)`` with ``I ~ N(0, noise_std^2)`` per pixel, shared by channels."""

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        n, c, h, w = inputs.shape
        noise = torch.randn(n, 1, h, w, generator=generator).to(inputs) * noise_std
        noise = noise.expand(n, c, h, w)
        return noise, inputs - noise

    return perturb


def infidelity(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: TargetLike = None,
    *,
    noise_std: float = 0.1,
    n_perturb_samples: int = 16,
    normalize: bool = True,
    seed: int = 0,
    max_examples_per_batch: int | None = None,
) -> Tensor:
    """Infidelity of ``maps`` per image (Yeh et al. 2019) via ``captum.metrics.infidelity``: ``[B]``.

    Args:
        model: The classifier; ``f_c`` is its target logit (eval mode, flags restored).
        x: Images ``[B, C, H, W]`` as the model takes them.
        maps: Maps ``[B, H, W]``, the channel sum of the attribution.
        target: Class of each image (``None``: the model's prediction).
        noise_std: Std of the per-pixel Gaussian perturbation, in ``x``'s units.
        n_perturb_samples: Perturbations per image.
        normalize: Captum's scale-invariant version (optimal ``beta`` per image).
        seed: Seed of the perturbations.
        max_examples_per_batch: Captum's batching of the ``B * n_perturb_samples`` inputs.

    Returns:
        CPU float tensor ``[B]``, lower is better.
    """
    check_maps(x, maps)
    x, targets = prepare(model, x, target)
    c = x.shape[1]
    attributions = (maps.to(x) / c)[:, None].expand_as(x).contiguous()
    generator = torch.Generator().manual_seed(seed)
    with module_mode(model, training=False):
        values = captum.metrics.infidelity(
            functools.partial(forward_nhwc, model), gaussian_pixel_perturbation(noise_std, generator),
            x, attributions,
            target=targets, n_perturb_samples=n_perturb_samples, normalize=normalize,
            max_examples_per_batch=max_examples_per_batch,
        )
    return values.detach().float().cpu()


def completeness_gap(model: nn.Module, x: Tensor, maps: Tensor, target: TargetLike = None,
                     baseline: Tensor | float | None = None) -> Tensor:
    """``|sum(map) - (f_c(x) - f_c(baseline))|`` per image, on the logits (IG completeness).

    ``maps`` is ``[B, C, H, W]`` or its channel sum ``[B, H, W]`` (the total is the same);
    ``baseline`` a tensor broadcastable to ``x``, a scalar, ``None`` (zeros), or a distribution of
    ``K`` references per image ``[B, K, C, H, W]`` (GradientSHAP, DeepLIFT-SHAP), for which
    ``f_c(baseline)`` is the mean over the ``K`` references: completeness in expectation, exact
    only when they are the references the maps used. For integrated gradients the gap goes to
    0 as the number of steps grows (Sundararajan et al. 2017). Returns a CPU tensor ``[B]``.
    """
    device = model_device(model)
    x, targets = prepare(model, x, target)
    with module_mode(model, training=False), torch.no_grad():
        rows = torch.arange(x.shape[0], device=device)
        f_x = model(x)[rows, targets]
        if isinstance(baseline, Tensor) and baseline.ndim == x.ndim + 1:
            b, k = baseline.shape[:2]
            refs = baseline.to(x).reshape(b * k, *x.shape[1:])
            f_base = model(refs)[torch.arange(b * k, device=device),
                                 targets.repeat_interleave(k)].view(b, k).mean(dim=1)
        else:
            base = (torch.zeros_like(x) if baseline is None
                    else torch.as_tensor(baseline).to(x).expand_as(x))
            f_base = model(base)[rows, targets]
    total = maps.to(device).flatten(1).sum(dim=1)
    return (total - (f_x - f_base)).abs().float().cpu()
