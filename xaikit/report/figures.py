"""Matplotlib figures shared by ``xaikit explain`` and ``xaikit report`` (Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xaikit.runs_io import atomic_path  # noqa: E402


def normalise_map(attribution: Tensor, signed: bool = False) -> np.ndarray:
    """Scale one map ``[H, W]`` for display: to 0..1, or to -1..1 keeping 0 for signed maps.

    The 99.5th percentile of |map| is the scale, so one hot pixel does not wash the map out.
    """
    a = attribution.detach().float().cpu().numpy()
    scale = float(np.percentile(np.abs(a), 99.5)) or 1.0
    if signed:
        return np.clip(a / scale, -1.0, 1.0)
    a = a - min(float(a.min()), 0.0)
    return np.clip(a / scale, 0.0, 1.0)


def overlay(image: Tensor, attribution: Tensor, signed: bool = False, alpha: float = 0.55) -> np.ndarray:
    """RGB float array ``[H, W, 3]``: the image blended with a colour map of the attribution.

    Non-negative maps use ``jet`` over 0..1; signed maps use ``bwr`` (blue < 0 < red).
    """
    rgb = image.detach().cpu().permute(1, 2, 0).float().numpy() / 255.0
    m = normalise_map(attribution, signed)
    if signed:
        heat = plt.get_cmap("bwr")((m + 1.0) / 2.0)[..., :3]
        weight = alpha * np.abs(m)[..., None]
    else:
        heat = plt.get_cmap("jet")(m)[..., :3]
        weight = alpha * np.ones_like(m)[..., None]
    return np.clip((1.0 - weight) * rgb + weight * heat, 0.0, 1.0)


def explanation_grid(
    images: Tensor,
    maps: Mapping[str, Tensor],
    signed: Mapping[str, bool],
    labels: Sequence[int],
    preds: Sequence[int],
    classes: Sequence[str],
    path: Path,
    confidences: Sequence[float] | None = None,
    max_rows: int = 16,
) -> Path:
    """Save a grid: one row per image (true and predicted label), the input, then each method.

    Args:
        images: uint8 ``[N, 3, H, W]``.
        maps: method name -> ``[N, H, W]`` maps for the same images.
        signed: method name -> whether its maps are signed.
        labels, preds: true and predicted class indices.
        classes: class names.
        path: PNG file to write (atomically).
        confidences: predicted-class probabilities, shown in the row label.
        max_rows: at most this many images (rows) are drawn.
    """
    n = min(len(images), max_rows)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for row in range(n):
        ok = labels[row] == preds[row]
        conf = f" {confidences[row]:.0%}" if confidences is not None else ""
        ax = axes[row][0]
        ax.imshow(images[row].permute(1, 2, 0).cpu().numpy())
        ax.set_ylabel(
            f"{classes[labels[row]]}\n-> {classes[preds[row]]}{conf}",
            fontsize=7, color="black" if ok else "crimson", rotation=0, ha="right", va="center",
        )
        for col, (name, method_maps) in enumerate(maps.items(), start=1):
            axes[row][col].imshow(overlay(images[row], method_maps[row], signed.get(name, False)))
        for col in range(cols):
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
    for col, title in enumerate(["input", *maps.keys()]):
        axes[0][col].set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def images_uint8(images: Tensor) -> Tensor:
    """Make sure a batch is uint8 ``[N, 3, H, W]`` on the CPU for drawing."""
    return images.detach().cpu().to(torch.uint8)
