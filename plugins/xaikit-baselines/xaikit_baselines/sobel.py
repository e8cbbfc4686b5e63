"""The ``sobel`` control: the input's gradient magnitude, no model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from xaikit import Attribution

#: d/dx (along the width) of the Sobel operator, unnormalised; d/dy is its transpose.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of ``x`` ``[B, C, H, W]``, per channel, summed: ``[B, H, W]``.

    Borders are padded by replicating the edge pixel (scipy.ndimage's ``mode="reflect"``), so the
    image frame is not an edge.
    """
    channels = x.shape[1]
    kx = SOBEL_X.to(x.device, x.dtype)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(channels, 1, 1, 1)  # [2C, 1, 3, 3]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(padded, kernels, groups=channels)  # [B, 2C, H, W]: gx_c, gy_c, ...
    gx, gy = gradients[:, 0::2], gradients[:, 1::2]
    return torch.sqrt(gx * gx + gy * gy).sum(dim=1)


class SobelEdges(Attribution):
    """Edge-detector control: Sobel gradient magnitude of the input, summed over channels.

    Sobel & Feldman, "A 3x3 isotropic gradient operator for image processing" (1968); the
    edge-detector control of Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
    who show that several saliency methods are close to one. A method that merely finds edges
    does no better than this. With ``*`` a 2-D cross-correlation, per channel ``c`` of the
    image as the model sees it (normalised)::

        Kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],   Ky = Kx^T
        map = sum_c sqrt((Kx * x_c)^2 + (Ky * x_c)^2)

    with a one-pixel replicated border. The model is not used (the base class calls it only to
    resolve the targets); the target class is ignored.

    Sign and scale: non-negative, unnormalised, in units of the normalised input (a unit step
    between two flat regions gives 4 per channel on both sides of the step).
    """

    name = "sobel"
    signed = False
    scale = "sum over channels of the Sobel gradient magnitude of the input, >= 0, unnormalised"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        return sobel_magnitude(x)
