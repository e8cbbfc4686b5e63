"""VarGrad (Adebayo, Gilmer, Goodfellow and Kim, "Local Explanation Methods for Deep Neural
Networks Lack Sensitivity to Parameter Values", ICLR workshop 2018; Adebayo et al., "Sanity
Checks for Saliency Maps", NeurIPS 2018), through Captum's ``NoiseTunnel`` over ``Saliency``."""

from __future__ import annotations

from xaikit_captum._noise import TunnelGradientStatistic


class VarGrad(TunnelGradientStatistic):
    """Variance of the target logit's gradient under input noise, summed over channels.

    ``M_ij = sum_k Var_s[ d f_c(x + e_s) / d x_kij ]`` over ``s = 1..n``, ``e_s ~ N(0,
    stdevs^2)``: Captum's ``NoiseTunnel(Saliency(abs=False))`` with ``nt_type="vargrad"``
    (the population variance ``mean(g^2) - mean(g)^2``, clamped at 0 against rounding), then
    the channel sum (the trace of the gradient's covariance at each pixel).

    Noise: ``stdevs`` is absolute, in normalised input units (0.5 by default, as
    ``smoothgrad``). The ``nt_samples`` noise images are drawn by Captum's own NoiseTunnel
    draw under torch's RNG seeded with ``seed`` (forked: the global state is untouched) and
    shared by all images, so the maps repeat and image i's map is Captum's for ``x[i:i+1]``
    after ``torch.manual_seed(seed)``, in any batch. ``seed=None`` draws from the global RNG.

    Cost: ``nt_samples`` forward and backward passes per image, ``nt_samples_batch_size``
    noisy copies of every image per pass.

    Output: ``[B, H, W]``, **non-negative**, squared logit-per-input-unit (unnormalised).

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        nt_samples: Noisy samples per image (at least 2).
        stdevs: Standard deviation of the Gaussian noise.
        nt_samples_batch_size: Noisy samples per image and forward pass (``None``: all).
        seed: Seed of the noise, or ``None``.
    """

    name = "vargrad"
    scale = "non-negative, variance of d logit / d input under noise, channel sum"
    nt_type = "vargrad"
    min_samples = 2
