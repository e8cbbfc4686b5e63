"""GradientSHAP (Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions",
NeurIPS 2017, section 5 and the SHAP package's GradientExplainer; Erion et al., "Improving
performance of deep learning models with axiomatic attribution priors and expected
gradients", Nature Machine Intelligence 2021), through Captum's ``GradientShap``."""

from __future__ import annotations

import torch
from captum.attr import GradientShap as _CaptumGradientShap
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._baselines import check_baseline_options, shap_baselines
from xaikit_captum._captum_call import captum_call
from xaikit_captum._seeding import check_seed, per_image


class GradientShap(Attribution):
    """Expected gradients: integrated gradients averaged over random references and path points.

    For image x, references x' drawn uniformly from the image's reference set R (see below),
    path points ``a ~ U(0, 1)`` and optional noise ``e ~ N(0, stdevs^2)``::

        phi_ik(x) = E_{x', a, e} [ (x_ik - x'_ik) * d f_c(x' + a (x + e - x')) / d x_ik ]

    estimated by Captum's ``GradientShap`` from ``n_samples`` draws of ``(x', a, e)`` per
    image. In expectation a map sums to ``f_c(x) - E_{x'}[f_c(x')]`` (SHAP's efficiency, exact
    for a linear model).

    References ``R`` (``K = 1 + len(blur_sigmas) + n_noise`` images, 8 by default): the mean
    colour (zeros in normalised space), ``x`` blurred with each sigma of ``blur_sigmas``
    (pixels), and ``n_noise`` images of ``N(0, noise_std^2)`` noise in normalised units drawn
    from a generator seeded with ``seed``; :meth:`baselines` returns them.

    Randomness and batches: each image is explained on its own, under torch and NumPy RNGs
    seeded with ``seed`` (forked, so the global state is untouched): an image's map is
    Captum's map for that image alone after ``torch.manual_seed(seed)`` and
    ``numpy.random.seed(seed)``, in any batch. ``seed=None`` draws from the global RNGs.

    Cost: ``n_samples`` forward and backward passes per image, one Captum call per image.

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**
    (positive = raises the target logit), logit units.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        n_samples: Draws of (reference, path point, noise) per image.
        stdevs: Standard deviation of the noise added to the input (normalised units; 0: none).
        blur_sigmas: Gaussian blur widths (pixels) of the blurred references.
        n_noise: Number of noise references.
        noise_std: Standard deviation of the noise references (normalised units).
        seed: Seed of the references and of Captum's draws, or ``None``.
    """

    name = "gradient-shap"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, logit units; each map sums to about f_c(x) - mean f_c(reference)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        n_samples: int = 32,
        stdevs: float = 0.0,
        blur_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
        n_noise: int = 4,
        noise_std: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if n_samples < 1 or stdevs < 0:
            raise XaikitError(f"need n_samples >= 1 and stdevs >= 0, got {n_samples}, {stdevs}")
        check_baseline_options(blur_sigmas, n_noise, noise_std)
        check_seed(seed)
        self.n_samples = n_samples
        self.stdevs = stdevs
        self.blur_sigmas = tuple(blur_sigmas)
        self.n_noise = n_noise
        self.noise_std = noise_std
        self.seed = seed

    def baselines(self, x: Tensor) -> Tensor:
        """The references ``[B, K, C, H, W]`` of each image of ``x``."""
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        return shap_baselines(x, self.blur_sigmas, self.n_noise, self.noise_std, seed)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        references = self.baselines(x)
        explainer = _CaptumGradientShap(self.model, multiply_by_inputs=True)

        def one(image: Tensor, label: Tensor, i: int) -> Tensor:
            return explainer.attribute(
                image,
                baselines=references[i],
                n_samples=self.n_samples,
                stdevs=float(self.stdevs),
                target=label,
            )

        with captum_call(self.model):
            return per_image(x, target, self.seed, one)
