"""SmoothGrad-Squared (Hooker, Erhan, Kindermans and Kim, "A Benchmark for Interpretability
Methods in Deep Neural Networks", NeurIPS 2019; SmoothGrad: Smilkov et al. 2017), through
Captum's ``NoiseTunnel`` over ``Saliency``."""

from __future__ import annotations

from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._noise import tunnel_gradients
from xaikit_captum._seeding import check_seed


class SmoothGradSquared(Attribution):
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
    uses_layer = False
    signed = False
    class_discriminative = True
    scale = "non-negative, mean squared d logit / d input under noise, channel sum"

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
            raise XaikitError(
                f"smoothgrad-sq needs nt_samples >= 1 and stdevs >= 0, got {nt_samples}, {stdevs}"
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
            squares = tunnel_gradients(
                self.model, x, target, "smoothgrad_sq", self.nt_samples, self.stdevs,
                self.nt_samples_batch_size, self.seed,
            )
        return squares.sum(dim=1)
