"""Smooth Grad-CAM++."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.gradcam_plus_plus import plus_plus_weights
from xaikit_gradcam.gradient_cam import GradientCAM, check_feature_map


class SmoothGradCAMPlusPlus(GradientCAM):
    """Smooth Grad-CAM++: Grad-CAM++ with gradients averaged over noisy copies of the input.

    Omeiza, Speakman, Cintas, Weldemariam, "Smooth Grad-CAM++: An Enhanced Inference Level
    Visualization Technique for Deep Convolutional Neural Network Models", 2019,
    arXiv:1908.01224; torch-cam's ``SmoothGradCAMpp`` (same defaults: 4 samples, noise standard
    deviation 0.3 in the model's input space). With ``g_n = dy^c/dA`` at ``x + eps_n``,
    ``eps_n ~ N(0, std^2)``, ``n = 1..N``, and ``A`` the clean image's activation::

        D1 = mean_n g_n,   D2 = mean_n g_n^2,   D3 = mean_n g_n^3
        alpha = D2 / (2 D2 + sum_ab A_ab * D3)      (0 where the denominator is 0)
        w_k   = sum_ij alpha_ij * ReLU(D1_ij)
        L     = ReLU(sum_k w_k A^k)

    This is Grad-CAM++'s closed form (see :class:`GradCAMPlusPlus`) with every gradient power
    replaced by its average, and equals ``gradcam++`` when ``std = 0``. torch-cam differs in
    three details, which this class does not copy: its denominator is ``2 D2 + sum_ab (A_ab
    D3_ab)`` (a per-channel constant), its final weights use the *last* noisy sample's gradient
    instead of ``D1``, and its map multiplies them with the last noisy sample's activation.

    Seeded: the noise comes from a generator seeded with ``seed`` (on the CPU, so the same on
    every device), one draw of ``N`` noise images of the input's shape, the same for every
    image of the batch; so an image's map depends on that image and the seed alone, and two
    calls give the same map.

    Sign and scale: non-negative, unnormalised (as ``gradcam++``), upsampled bilinearly to the
    input resolution. Cost: ``N + 1`` forward and ``N`` backward passes.
    """

    name = "smoothgradcam++"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (Grad-CAM++ with noise-averaged gradient powers)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        num_samples: int = 4,
        std: float = 0.3,
        seed: int = 0,
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            num_samples: Noisy copies of each image.
            std: Standard deviation of the Gaussian noise, in the model's input units.
            seed: Seed of the noise.
        """
        super().__init__(model, layer)
        if num_samples < 1:
            raise XaikitError(f"num_samples must be >= 1, got {num_samples}")
        if not std >= 0:
            raise XaikitError(f"std must be >= 0, got {std}")
        self.num_samples, self.std, self.seed = num_samples, float(std), seed

    def noise(self, x: Tensor) -> Tensor:
        """The ``N`` noise images ``[N, C, H, W]`` (the same for every image and call)."""
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn((self.num_samples, *x.shape[1:]), generator=generator)
        return (self.std * noise).to(device=x.device, dtype=x.dtype)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad(), self.capture(retain_grad=False) as captured:
            self.model(x)
        activation = captured["activation"]
        check_feature_map(activation, self.name, self.layer_name)
        d1 = torch.zeros_like(activation)
        d2 = torch.zeros_like(activation)
        d3 = torch.zeros_like(activation)
        for noise in self.noise(x):
            _noisy_activation, gradient, _logits = self.forward_with_layer(x + noise, target)
            d1 += gradient
            d2 += gradient.pow(2)
            d3 += gradient.pow(3)
        d1, d2, d3 = (d / self.num_samples for d in (d1, d2, d3))
        weights = plus_plus_weights(activation, d1, d2, d3)
        return (weights * activation).sum(dim=1).clamp_min(0)
