"""Drawing attribution maps: display normalisation, overlays on the input, the method grid.

Figures use the Agg backend and are written as PNG.

Text that comes from data (class and method names) is drawn literally: figures are drawn
under :data:`LITERAL_TEXT_RC` (through :func:`literal_text` here, as part of the style of
:mod:`xaikit.report.charts` there), which turns off matplotlib's mathtext
(``text.parse_math``) and TeX (``text.usetex``), so a name like ``$\\frac{$`` or ``a_b^c``
is shown as typed and cannot make the mathtext parser fail; :func:`printable` makes control
characters visible as escapes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from xaikit.atomic import atomic_path  # noqa: E402

LITERAL_TEXT_RC: dict[str, Any] = {"text.parse_math": False, "text.usetex": False}
"""matplotlib settings under which every text is drawn as its characters, never as markup."""


def literal_text() -> AbstractContextManager[Any]:
    """A context (also usable as a decorator) in which matplotlib draws text literally.

    It is :func:`matplotlib.rc_context` with :data:`LITERAL_TEXT_RC`; the caller's settings are
    restored on exit. Create the figure *and* save it inside it: a ``Text`` reads
    ``text.parse_math`` when it is made, and tick labels may be made while saving.
    """
    return matplotlib.rc_context(LITERAL_TEXT_RC)


def printable(text: object) -> str:
    """``str(text)`` with control characters shown as escapes (``"\\x1b"``, ``"\\n"``).

    A font has no glyph for them, so they would be drawn as nothing or as a box.
    """
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" else ch
        for ch in str(text)
    )


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


def overlay(
    image: Tensor, attribution: Tensor, signed: bool = False, alpha: float = 0.55
) -> np.ndarray:
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


@literal_text()
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
    names: Sequence[str] | None = None,
    targets: Sequence[int] | None = None,
) -> Path:
    """Save a grid: one row per image (true and predicted label), the input, then each method.

    Class and method names are drawn literally (see :func:`literal_text`).

    Args:
        images: uint8 ``[N, 3, H, W]``.
        maps: method name -> ``[N, H, W]`` maps for the same images.
        signed: method name -> whether its maps are signed.
        labels, preds: true and predicted class indices.
        classes: class names.
        path: PNG file to write (atomically).
        confidences: predicted-class probabilities, shown in the row label.
        max_rows: at most this many images (rows) are drawn.
        names: a name per image (the user's file), shown instead of a label below 0.
        targets: the class each map explains, shown when it is not the prediction.

    Returns:
        ``path``.
    """
    n = min(len(images), max_rows)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for row in range(n):
        known = labels[row] >= 0
        ok = not known or labels[row] == preds[row]
        conf = f" {confidences[row]:.0%}" if confidences is not None else ""
        ax = axes[row][0]
        ax.imshow(images[row].permute(1, 2, 0).cpu().numpy())
        first = classes[labels[row]] if known else Path(names[row]).name if names else "image"
        text = f"{printable(first)}\n-> {printable(classes[preds[row]])}{conf}"
        if targets is not None and targets[row] != preds[row]:
            text += f"\nmaps: {printable(classes[targets[row]])}"
        ax.set_ylabel(
            text,
            fontsize=7, color="black" if ok else "crimson", rotation=0, ha="right", va="center",
        )
        for col, (name, method_maps) in enumerate(maps.items(), start=1):
            axes[row][col].imshow(overlay(images[row], method_maps[row], signed.get(name, False)))
        for col in range(cols):
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
    for col, title in enumerate(["input", *maps.keys()]):
        axes[0][col].set_title(printable(title), fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

