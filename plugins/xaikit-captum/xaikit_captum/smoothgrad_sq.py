"""SmoothGrad-Squared (Hooker, Erhan, Kindermans and Kim, "A Benchmark for Interpretability
Methods in Deep Neural Networks", NeurIPS 2019; SmoothGrad: Smilkov et al. 2017), through
Captum's ``NoiseTunnel`` over ``Saliency``."""

from __future__ import annotations

from xaikit_captum._noise import TunnelGradientStatistic


class SmoothGradSquared(TunnelGradientStatistic):
    """Mean squared gradient of the target logit under input noise, summed over channels.

    ``M_ij = sum_k (1/n) sum_{s=1..n} (d f_c(x + e_s) / d x_kij)^2``, ``e_s ~ N(0,
    stdevs^2)``: Captum's ``NoiseTunnel(Saliency(abs=False))`` with
    ``nt_type="smoothgrad_sq"``, then the channel sum (the mean squared gradient norm at each
    pixel). Squaring before averaging keeps gradients of opposite sign from cancelling.

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
        nt_samples: Noisy samples per image.
        stdevs: Standard deviation of the Gaussian noise.
        nt_samples_batch_size: Noisy samples per image and forward pass (``None``: all).
        seed: Seed of the noise, or ``None``.
    """

    name = "smoothgrad-sq"
    scale = "non-negative, mean squared d logit / d input under noise, channel sum"
    nt_type = "smoothgrad_sq"
    min_samples = 1
