"""DeepLIFT-SHAP (Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions",
NeurIPS 2017, "Deep SHAP"; DeepLIFT: Shrikumar, Greenside and Kundaje, ICML 2017), through
Captum's ``DeepLiftShap``."""

from __future__ import annotations

import torch
from captum.attr import DeepLiftShap as _CaptumDeepLiftShap
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._baselines import check_baseline_options, shap_baselines
from xaikit_captum._captum_call import captum_call, relus_not_inplace
from xaikit_captum._seeding import check_seed, per_image
from xaikit_captum.deeplift import reused_nonlinearities


class DeepLiftShap(Attribution):
    """DeepLIFT (Rescale rule) averaged over a set of references: approximate SHAP values.

    With ``R`` the image's K references and ``DL(x; x')`` DeepLIFT's contributions to
    ``f_c(x) - f_c(x')`` against reference x'::

        phi(x) = (1 / K) sum_{x' in R} DL(x; x'),   sum_i phi_i(x) ~ f_c(x) - mean_{x'} f_c(x')

    References ``R`` (``K = 1 + len(blur_sigmas) + n_noise`` images, 8 by default, at least
    2): the mean colour (zeros in normalised space), ``x`` blurred with each sigma of
    ``blur_sigmas`` (pixels), and ``n_noise`` images of ``N(0, noise_std^2)`` noise in
    normalised units from a generator seeded with ``seed`` (the global RNG is untouched);
    :meth:`baselines` returns them. The blurred references depend on the image, so each image
    is one Captum call (Captum shares one reference set across a batch): the map is Captum's
    ``DeepLiftShap`` for that image and its references, in any batch.

    DeepLIFT's limits carry over (see :class:`~xaikit_captum.DeepLift`): only nonlinearity
    *modules* get the Rescale rule, a nonlinearity module called twice per forward pass is
    refused, in-place ReLUs are switched off for the call; the summation-to-delta above is
    only approximate on models with attention softmax or max-pooling heads.

    Cost: one forward and backward pass of K images per image.

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**, logit units.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        blur_sigmas: Gaussian blur widths (pixels) of the blurred references.
        n_noise: Number of noise references.
        noise_std: Standard deviation of the noise references (normalised units).
        seed: Seed of the noise references, or ``None`` (drawn from the global RNG).
    """

    name = "deeplift-shap"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, logit units; each map sums to about f_c(x) - mean f_c(reference)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        blur_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
        n_noise: int = 4,
        noise_std: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        check_baseline_options(blur_sigmas, n_noise, noise_std)
        check_seed(seed)
        self.blur_sigmas = tuple(blur_sigmas)
        self.n_noise = n_noise
        self.noise_std = noise_std
        self.seed = seed

    def baselines(self, x: Tensor) -> Tensor:
        """The references ``[B, K, C, H, W]`` of each image of ``x``."""
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        return shap_baselines(x, self.blur_sigmas, self.n_noise, self.noise_std, seed)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        reused = reused_nonlinearities(self.model, x[:1])
        if reused:
            raise XaikitError(
                f"deeplift-shap needs each nonlinearity module used once per forward pass; "
                f"{', '.join(reused)} is called more than once (give each use its own module)"
            )
        references = self.baselines(x)
        explainer = _CaptumDeepLiftShap(self.model, multiply_by_inputs=True)

        def one(image: Tensor, label: Tensor, i: int) -> Tensor:
            return explainer.attribute(image, baselines=references[i], target=label)

        with captum_call(self.model), relus_not_inplace(self.model):
            return per_image(x, target, None, one)
