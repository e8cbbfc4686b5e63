"""LIME over image patches (Ribeiro, Singh and Guestrin, "'Why Should I Trust You?':
Explaining the Predictions of Any Classifier", KDD 2016), through Captum's ``Lime``."""

from __future__ import annotations

from typing import Literal

from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge
from captum.attr import Lime as _CaptumLime
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._patches import patch_mask
from xaikit_captum._seeding import check_seed, per_image


class Lime(Attribution):
    """Coefficients of a weighted linear surrogate of the target logit over patches on/off.

    Features are the ``patch x patch`` squares of a fixed grid (64 on 32x32 images with the
    default 4). Captum draws ``n_samples`` binary vectors ``z`` (each patch kept with
    probability 1/2, the others set to zero, the mean colour), evaluates
    ``f_c(x_z)``, weights each sample by ``pi(z) = exp(-d(x, x_z)^2 / 2)`` with ``d`` the
    cosine distance of the flattened images (Captum's default kernel, width 1), and fits::

        g = argmin_{w, b} sum_z pi(z) (f_c(x_z) - b - w . z)^2 + Omega(w)

    Every pixel of patch P gets ``w_P``. ``Omega``: ``regression="ridge"`` (default,
    ``alpha * |w|^2``, as the LIME reference package) or ``"lasso"`` (``alpha * |w|_1``,
    Captum's default with alpha 0.01, which zeroes every coefficient when no patch moves the
    logit by more than about alpha, as on an untrained model). Fitted by scikit-learn.

    Randomness and batches: each image is explained on its own (Captum fits one surrogate
    per image anyway), under torch's RNG seeded with ``seed`` in a forked RNG (the global
    state is untouched): an image's map is Captum's map for that image alone after
    ``torch.manual_seed(seed)``, in any batch.

    Cost: ``n_samples`` forward passes per image (``perturbations_per_eval`` per pass) and
    one linear fit per image on the CPU.

    Output: ``[B, H, W]`` (one channel of Captum's per-channel-identical map); **signed**,
    logit units per patch.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        patch: Side of the grid's squares in pixels.
        n_samples: Perturbed samples per image.
        perturbations_per_eval: Perturbed samples per forward pass.
        regression: ``"ridge"`` or ``"lasso"``.
        alpha: Regularisation strength of the regression.
        seed: Seed of the samples, or ``None`` (global RNG).
    """

    name = "lime"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, surrogate coefficient of the pixel's patch, logit units"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        patch: int = 4,
        n_samples: int = 256,
        perturbations_per_eval: int = 64,
        regression: Literal["ridge", "lasso"] = "ridge",
        alpha: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if patch < 1 or n_samples < 1 or perturbations_per_eval < 1:
            raise XaikitError("lime patch, n_samples and perturbations_per_eval must be >= 1")
        if regression not in ("ridge", "lasso") or alpha < 0:
            raise XaikitError(
                f"lime needs regression 'ridge' or 'lasso' and alpha >= 0, "
                f"got {regression!r}, {alpha}"
            )
        check_seed(seed)
        self.patch = patch
        self.n_samples = n_samples
        self.perturbations_per_eval = perturbations_per_eval
        self.regression = regression
        self.alpha = alpha
        self.seed = seed

    def surrogate(self) -> SkLearnRidge | SkLearnLasso:
        """A fresh interpretable model for Captum's ``Lime``."""
        if self.regression == "lasso":
            return SkLearnLasso(alpha=self.alpha)
        return SkLearnRidge(alpha=self.alpha)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        mask = patch_mask(x.shape, self.patch, x.device)

        def one(image: Tensor, label: Tensor, _i: int) -> Tensor:
            explainer = _CaptumLime(self.model_forward, interpretable_model=self.surrogate())
            return explainer.attribute(
                image,
                baselines=0.0,
                target=label,
                feature_mask=mask,
                n_samples=self.n_samples,
                perturbations_per_eval=self.perturbations_per_eval,
            )

        with captum_call(self.model):
            return per_image(x, target, self.seed, one)[:, 0]
