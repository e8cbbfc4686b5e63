"""KernelSHAP over image patches (Lundberg and Lee, "A Unified Approach to Interpreting Model
Predictions", NeurIPS 2017, section 4.1), through Captum's ``KernelShap``."""

from __future__ import annotations

from captum.attr import KernelShap as _CaptumKernelShap
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._patches import patch_mask
from xaikit_captum._seeding import check_seed, per_image


class KernelShap(Attribution):
    """Shapley values of the patches of a fixed grid, estimated by weighted linear regression.

    Features are the ``patch x patch`` squares of a fixed grid (64 on 32x32 images with the
    default 4); an absent patch is set to zero (the mean colour). Captum samples coalitions
    ``z`` in proportion to the Shapley kernel (first all patches, then none, then
    ``|z| = k`` with ``p(k) ~ (M - 1) / (k (M - k))`` and a uniform subset of that size)
    and fits by least squares (scikit-learn's ``LinearRegression``), every sample with weight
    1 except the full and the empty coalition, weighted 1e6 so that the fit all but meets
    ``phi_0 = f_c(0)`` and ``sum_P phi_P = f_c(x) - f_c(0)``::

        f_c(x_z) ~ phi_0 + sum_P phi_P z_P

    whose coefficients approach the Shapley values as ``n_samples`` grows (M patches need
    well over M samples; 256 by default for 64 patches). Every pixel of P gets ``phi_P``.

    Randomness and batches: each image is explained on its own (Captum fits one model per
    image anyway), under torch's RNG seeded with ``seed`` in a forked RNG (the global state
    is untouched): an image's map is Captum's map for that image alone after
    ``torch.manual_seed(seed)``, in any batch.

    Cost: ``n_samples`` forward passes per image (``perturbations_per_eval`` per pass) and
    one least-squares fit per image on the CPU.

    Output: ``[B, H, W]`` (one channel of Captum's per-channel-identical map); **signed**,
    logit units per patch.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        patch: Side of the grid's squares in pixels.
        n_samples: Coalitions sampled per image.
        perturbations_per_eval: Coalitions per forward pass.
        seed: Seed of the coalitions, or ``None`` (global RNG).
    """

    name = "kernel-shap"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, estimated Shapley value of the pixel's patch, logit units"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        patch: int = 4,
        n_samples: int = 256,
        perturbations_per_eval: int = 64,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if patch < 1 or n_samples < 1 or perturbations_per_eval < 1:
            raise XaikitError(
                "kernel-shap patch, n_samples and perturbations_per_eval must be >= 1"
            )
        check_seed(seed)
        self.patch = patch
        self.n_samples = n_samples
        self.perturbations_per_eval = perturbations_per_eval
        self.seed = seed

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        mask = patch_mask(x.shape, self.patch, x.device)
        explainer = _CaptumKernelShap(self.model_forward)

        def one(image: Tensor, label: Tensor, _i: int) -> Tensor:
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
