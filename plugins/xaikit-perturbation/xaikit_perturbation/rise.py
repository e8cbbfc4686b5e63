"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das and Saenko, "RISE: Randomized
Input Sampling for Explanation of Black-box Models", BMVC 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit import Attribution, XaikitError


class Rise(Attribution):
    """Saliency as the class probability averaged over random masks that keep each pixel.

    Masks (section 3.2 of the paper): ``n_masks`` binary grids of ``cells x cells`` cells,
    each cell kept with probability ``p_keep``; each grid is upsampled bilinearly
    (``align_corners=False``, edges clamped) to ``(cells + 1) * ceil(H / cells)`` by
    ``(cells + 1) * ceil(W / cells)`` pixels and cropped to ``H x W`` at a random shift of
    0 to one cell in each direction, so the soft masks ``M_i`` in ``[0, 1]`` do not all
    share the same cell borders. With ``p_c`` the softmax probability of the target class::

        S_c(x) = 1 / (N * p_keep) * sum_{i=1..N} p_c(x * M_i) * M_i

    a Monte Carlo estimate of ``E[p_c(x * M) | M(pixel) = 1]``. Masked pixels become zero,
    the data set's mean colour in the model's normalised input space (the paper's black).

    Randomness: the grids and shifts are drawn from a ``torch.Generator`` seeded with
    ``seed`` on the CPU (the global RNG is untouched), so the same seed gives the same masks
    on CPU and GPU, and every image of a batch gets the same masks: an image's map does not
    depend on its batch. ``seed=None`` draws a seed from the global RNG.

    Cost: ``n_masks`` forward passes of masked copies per image (no backward), run as
    batches of up to ``batch_size`` masked images on the model's device; the masks take
    ``n_masks * H * W`` floats.

    Output: ``[B, H, W]``, **non-negative**, about the expected probability of the class
    when the pixel is kept (``p_c(x)`` everywhere when ``p_keep=1``); class-discriminative.

    Args:
        model: The classifier (logits out; the softmax is taken here).
        layer: Must be ``None``.
        n_masks: Number of random masks N.
        cells: Grid cells per side of the low-resolution masks (8: 4x4-pixel cells on 32x32).
        p_keep: Probability that a cell is kept.
        batch_size: Masked images per forward pass.
        seed: Seed of the masks, or ``None``.
    """

    name = "rise"
    uses_layer = False
    signed = False
    class_discriminative = True
    scale = "non-negative, ~ probability of the class when the pixel is kept"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        n_masks: int = 1000,
        cells: int = 8,
        p_keep: float = 0.5,
        batch_size: int = 1024,
        seed: int | None = 0,
    ) -> None:
        super().__init__(model, layer)
        if n_masks < 1 or cells < 1 or batch_size < 1:
            raise XaikitError(
                "rise needs n_masks, cells and batch_size >= 1, "
                f"got {n_masks}, {cells}, {batch_size}"
            )
        if not 0 < p_keep <= 1:
            raise XaikitError(f"rise needs 0 < p_keep <= 1, got {p_keep}")
        if seed is not None and not 0 <= seed < 2**63:
            raise XaikitError(f"seed must be in 0..2**63-1 or None, got {seed}")
        self.n_masks = n_masks
        self.cells = cells
        self.p_keep = p_keep
        self.batch_size = batch_size
        self.seed = seed

    def masks(self, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
        """The ``[n_masks, height, width]`` soft masks of one call, on ``device``."""
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)
        n, s = self.n_masks, self.cells
        grid = (torch.rand((n, 1, s, s), generator=generator) < self.p_keep).float()
        cell_h, cell_w = math.ceil(height / s), math.ceil(width / s)
        shift_h = torch.randint(0, cell_h, (n,), generator=generator)
        shift_w = torch.randint(0, cell_w, (n,), generator=generator)
        device = torch.device(device)
        up = F.interpolate(
            grid.to(device), size=((s + 1) * cell_h, (s + 1) * cell_w), mode="bilinear",
            align_corners=False,
        )[:, 0]
        rows = (shift_h.to(device)[:, None] + torch.arange(height, device=device))[:, :, None]
        cols = (shift_w.to(device)[:, None] + torch.arange(width, device=device))[:, None, :]
        masks = up[torch.arange(n, device=device)[:, None, None], rows, cols]
        return masks.clamp_(0.0, 1.0)  # bilinear weights can round to 1 + 1e-7

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        masks = self.masks(height, width, x.device).to(x.dtype)
        per_pass = max(1, self.batch_size // batch)  # masks per forward pass, for all images
        probs = []
        with torch.no_grad():
            for start in range(0, self.n_masks, per_pass):
                chunk = masks[start : start + per_pass]  # [n, H, W]
                masked = x[:, None] * chunk[None, :, None]  # [B, n, C, H, W]
                logits = self.model_forward(masked.flatten(0, 1))
                p = logits.float().softmax(dim=1).reshape(batch, len(chunk), -1)
                probs.append(p.gather(2, target[:, None, None].expand(-1, len(chunk), 1))[..., 0])
            weights = torch.cat(probs, dim=1)  # [B, N]
            saliency = weights @ masks.flatten(1).float()  # [B, H * W]
        return (saliency / (self.n_masks * self.p_keep)).reshape(batch, height, width)
