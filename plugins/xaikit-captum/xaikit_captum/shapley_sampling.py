"""Shapley value sampling over image patches (Castro, Gomez and Tejada, "Polynomial calculation
of the Shapley value based on sampling", Computers & Operations Research 2009; Strumbelj and
Kononenko, JMLR 2010), through Captum's ``ShapleyValueSampling``."""

from __future__ import annotations

from captum.attr import ShapleyValueSampling as _CaptumShapleyValueSampling
from torch import Tensor, nn

from xaikit import Attribution, XaikitError
from xaikit_captum._captum_call import captum_call
from xaikit_captum._patches import patch_mask
from xaikit_captum._seeding import check_seed, seeded


class ShapleyValueSampling(Attribution):
    """Monte Carlo Shapley values of the patches of a fixed grid, the "player" being a patch.

    Features are the ``patch x patch`` squares of a fixed grid (64 on 32x32 images with the
    default 4). For ``n_samples`` random orderings pi of the patches, patches are switched
    from zero (the mean colour) to the image one at a time in that order, and each patch is
    credited with the change of the target logit it caused::

        phi_P = (1 / n) sum_pi [ f_c(x on pre_pi(P) + P) - f_c(x on pre_pi(P)) ]

    an unbiased estimate of the Shapley value; each map sums exactly to
    ``f_c(x) - f_c(0)`` (efficiency holds for every ordering). Every pixel of P gets ``phi_P``.

    Randomness: the orderings are drawn by Captum from torch's RNG, under ``seed`` in a
    forked RNG (the global state is untouched); they are shared by the whole batch, so an
    image's map is Captum's map for that image alone after ``torch.manual_seed(seed)``.

    Cost: ``n_samples * n_patches + 1`` forward passes of each image (1,601 on 32x32 with the
    defaults), ``perturbations_per_eval`` of them per pass.

    Output: ``[B, H, W]`` (one channel of Captum's per-channel-identical map); **signed**,
    logit units.

    Args:
        model: The classifier (logits out).
        layer: Must be ``None``.
        patch: Side of the grid's squares in pixels.
        n_samples: Random orderings of the patches.
        perturbations_per_eval: Perturbed copies of each image per forward pass.
        seed: Seed of the orderings, or ``None`` (global RNG).
    """

    name = "shapley-sampling"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, logit units; each map's patch values sum to f_c(x) - f_c(0)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        patch: int = 4,
        n_samples: int = 25,
        perturbations_per_eval: int = 16,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if patch < 1 or n_samples < 1 or perturbations_per_eval < 1:
            raise XaikitError(
                "shapley-sampling patch, n_samples and perturbations_per_eval must be >= 1"
            )
        check_seed(seed)
        self.patch = patch
        self.n_samples = n_samples
        self.perturbations_per_eval = perturbations_per_eval
        self.seed = seed

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with captum_call(self.model), seeded(self.seed, x.device):
            maps = _CaptumShapleyValueSampling(self.model_forward).attribute(
                x,
                baselines=0.0,
                target=target,
                feature_mask=patch_mask(x.shape, self.patch, x.device),
                n_samples=self.n_samples,
                perturbations_per_eval=self.perturbations_per_eval,
            )
        return maps[:, 0]
