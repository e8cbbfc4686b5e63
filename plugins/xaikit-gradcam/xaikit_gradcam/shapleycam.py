"""ShapleyCAM."""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit_gradcam.gradient_cam import GradientCAM, check_feature_map


class ShapleyCAM(GradientCAM):
    """ShapleyCAM: Grad-CAM with a second-order (Hessian-vector product) correction.

    Cai, "CAMs as Shapley Value-based Explainers", 2025, arXiv:2501.06261; as pytorch-grad-cam's
    ``ShapleyCAM``. The paper reads a channel's weight as a Shapley value of the class score
    for "players" the activations; its second-order Taylor estimate is::

        g   = dy^c/dA                          gradient at the layer's output A [K, h, w]
        Hv  = (d^2 y^c / dA^2) A               Hessian-vector product, by double backprop
        w_k = (1 / h w) sum_ij (g - Hv / 2)^k_ij
        L   = ReLU(sum_k w_k A^k)

    pytorch-grad-cam's default target is the logit, used here (the paper also suggests a
    "ReST" target mixing logit and softmax). Where the network after the layer is piecewise
    linear (ReLU, max-pool, linear layers) the Hessian is zero almost everywhere and ShapleyCAM
    is Grad-CAM; it differs where the head is curved (softmax attention, as in ULTIMUS, sigmoid
    gates, normalisation). Each image's ``Hv`` is its own (the Hessian of a batch sum is block
    diagonal in eval mode).

    Sign and scale: non-negative, unnormalised (logit units, as Grad-CAM), upsampled bilinearly
    to the input resolution. Cost: one forward and two backward passes (the second through the
    graph of the first).
    """

    name = "shapleycam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (Grad-CAM with Hessian-corrected weights, logit units)"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad(), self.capture(retain_grad=False) as captured:
            logits = self.model(x.detach().requires_grad_(True))
            activation = captured["activation"]
            check_feature_map(activation, self.name, self.layer_name)
            score = logits.gather(1, target[:, None]).sum()
            (gradient,) = torch.autograd.grad(score, activation, create_graph=True)
            hvp = None
            if gradient.requires_grad:
                (hvp,) = torch.autograd.grad(
                    gradient, activation, grad_outputs=activation.detach(), allow_unused=True
                )
        gradient = gradient.detach()
        correction = torch.zeros_like(gradient) if hvp is None else hvp.detach()
        weights = (gradient - 0.5 * correction).mean(dim=(2, 3), keepdim=True)
        return (weights * activation.detach()).sum(dim=1).clamp_min(0)
