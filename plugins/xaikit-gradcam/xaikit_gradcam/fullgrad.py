"""FullGrad."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from xaikit import Attribution, upsample
from xaikit_gradcam.hooks import forward_hooks


def effective_bias(module: nn.Module) -> Tensor | None:
    """The bias a layer adds to each output channel in eval mode, or ``None`` if it adds none.

    ``Conv2d``: its ``bias``. ``BatchNorm2d`` (running statistics, eval mode): ``y = s x + b``
    with ``s = gamma / sqrt(var + eps)`` and ``b = beta - s * mean`` (``gamma = 1, beta = 0``
    without affine parameters), as the paper's reference code.
    """
    if isinstance(module, nn.Conv2d):
        return None if module.bias is None else module.bias.detach()
    if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
        scale = torch.rsqrt(module.running_var.detach() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.detach()
        shift = -scale * module.running_mean.detach()
        return shift if module.bias is None else shift + module.bias.detach()
    return None


def normalise(saliency: Tensor, per_channel: bool) -> Tensor:
    """Min-max normalise ``[B, C, h, w]`` to [0, 1] per image (``per_channel``: per image and
    channel); a constant block becomes 0."""
    dims = (2, 3) if per_channel else (1, 2, 3)
    low = saliency.amin(dim=dims, keepdim=True)
    span = saliency.amax(dim=dims, keepdim=True) - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (saliency - low) / safe, torch.zeros_like(saliency))


class FullGrad(Attribution):
    """FullGrad: input-gradient times input plus the bias-gradients of every layer, summed.

    Srinivas, Fleuret, "Full-Gradient Representation for Neural Network Visualization",
    NeurIPS 2019, arXiv:1905.00780. With ``y_c`` the target logit, ``x`` the input and, for each
    layer ``l`` with a per-channel bias ``b_l``, ``g_l = dy_c / dz_l`` the gradient at its output
    ``z_l`` ``[K_l, h_l, w_l]``::

        psi(T) = Upsample(s(|T|))       s: min-max normalisation of the image's whole block
        L = sum_c psi(x * dy_c/dx)_c + sum_l sum_k psi(g_l * b_l)_k

    (``*`` elementwise, ``b_l`` broadcast over locations, sums over the colour channels ``c``
    and the layer's channels ``k``.) This is the paper's saliency map (Eq. 6) with the
    post-processing of its reference code (idiap/fullgrad-saliency): absolute value, min-max
    normalisation over all channels and locations of one image's term, bilinear upsampling,
    sum over channels. ``per_channel=True`` normalises each channel on its own instead, as
    pytorch-grad-cam's ``FullGrad`` (which also min-max normalises the total to [0, 1]).

    **Which biases.** Every ``nn.Conv2d`` with a bias and every ``nn.BatchNorm2d`` with running
    statistics (its eval-mode bias ``beta - gamma * mean / sqrt(var + eps)``), found in
    ``model.modules()`` and recorded on each call in the forward pass (a forward hook per layer,
    removed when the call ends). A ``nn.Linear`` layer's bias-gradient is one number per output
    unit, not a map: it has no place in the image and is left out, as in the reference code and
    pytorch-grad-cam. Other layers with biases (GroupNorm, LayerNorm, attention) are not
    included. The method takes no ``layer``.

    **Not class-discriminative** (``class_discriminative = False``), although the gradients
    depend on the class: every term is an absolute value, and on a trained test CNN the maps
    of the predicted class and of another class still rank the pixels alike (Spearman 0.95),
    above the 0.9 the class-discriminative check allows.

    Sign and scale: non-negative, unnormalised: the sum of [0, 1]-normalised terms, upsampled
    bilinearly to the input resolution. Cost: one forward and one backward pass.
    """

    name = "fullgrad"
    uses_layer = False
    signed = False
    class_discriminative = False
    scale = ">= 0, unnormalised (sum of [0, 1]-normalised |input-grad x input|, |bias-grad x bias|)"

    def __init__(
        self, model: nn.Module, layer: str | None = None, *, per_channel: bool = False
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Must be ``None``: FullGrad uses every layer with a bias.
            per_channel: Normalise each channel of each term on its own (pytorch-grad-cam)
                instead of each term as a whole (the paper's code).
        """
        super().__init__(model, layer)
        self.per_channel = bool(per_channel)
        self.bias_layers = [m for m in model.modules() if effective_bias(m) is not None]

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        outputs: list[Tensor] = []
        biases: list[Tensor] = []

        def record(module: nn.Module, _inputs: Any, output: Any) -> Tensor | None:
            if not isinstance(output, Tensor) or output.ndim != 4 or not output.requires_grad:
                return None
            outputs.append(output)
            biases.append(effective_bias(module))
            # the model goes on with a copy: an in-place op after the layer cannot change it
            return output.clone()

        with torch.enable_grad(), forward_hooks(self.bias_layers, record):
            x = x.detach().requires_grad_(True)
            score = self.model(x).gather(1, target[:, None]).sum()
            gradients = torch.autograd.grad(score, [x, *outputs], allow_unused=True)
        size = tuple(x.shape[-2:])
        saliency = normalise((x.detach() * gradients[0]).abs(), self.per_channel).sum(dim=1)
        for gradient, bias in zip(gradients[1:], biases):
            if gradient is None:
                continue
            term = normalise((gradient * bias[None, :, None, None]).abs(), self.per_channel)
            saliency = saliency + upsample(term.sum(dim=1), size)
        return saliency
