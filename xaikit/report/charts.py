"""Matplotlib charts of ``xaikit report``: training curves, the LR schedule, the confusion
matrix and the misclassified gallery (Agg backend, PNG); the charts of the scorecards are in
:mod:`xaikit.report.score_charts`, drawn the same way.

Every function draws one figure, writes it atomically and returns the path. Each runs under
:data:`CHART_RC`, set for the call only (the caller's matplotlib settings are left alone): the
house style plus :data:`xaikit.attribution.plot.LITERAL_TEXT_RC`, so text that comes from data
(class, method and layer names) is drawn literally, never parsed as mathtext or TeX.
Every method gets its own line style (:func:`method_styles`), however many there are; the
controls are grey (:func:`control_styles`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from xaikit.atomic import atomic_path
from xaikit.attribution.plot import LITERAL_TEXT_RC, overlay, printable
from xaikit.specs import Recipe

TRAIN_COLOUR = "#2563eb"
TEST_COLOUR = "#ea580c"
RANDOM_COLOUR = "#6b7280"
DPI = 120

CHART_RC: dict[str, Any] = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    **LITERAL_TEXT_RC,
}
"""matplotlib settings of every chart: the house style, and text drawn literally."""

METHOD_COLOURS: tuple[str, ...] = tuple(
    matplotlib.colors.to_hex(c)
    for c in (*plt.get_cmap("tab20").colors[0::2], *plt.get_cmap("tab20").colors[1::2])
)
"""tab20 reordered: its ten strong colours (tab10's) first, then their ten light shades."""
METHOD_LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
METHOD_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v")
METHODS_PER_STYLE = 10
"""How many methods share a (line style, marker) pair before the next pair is taken."""
LEGEND_ROWS = 16
"""At most this many methods a legend column; each further column widens the figure."""

_Chart = TypeVar("_Chart", bound=Callable[..., Any])


@dataclass(frozen=True)
class MethodStyle:
    """How one method's line is drawn."""

    colour: str
    linestyle: str
    marker: str

    def plot_kwargs(self) -> dict[str, str]:
        """Keyword arguments of ``Axes.plot`` for this style."""
        return {"color": self.colour, "linestyle": self.linestyle, "marker": self.marker}


def method_styles(names: Sequence[str]) -> dict[str, MethodStyle]:
    """A distinct (colour, line style, marker) for every method, by position.

    Method ``i`` takes colour ``i mod 20`` of :data:`METHOD_COLOURS` (the first ten are tab10's,
    so up to ten methods look like a plain matplotlib plot: solid lines, round markers) and, for
    ``j = i // 10``, line style ``j mod 4`` and marker ``j mod 5``. The colour fixes ``i mod 10``
    and the pair fixes ``j mod lcm(4, 5) = j mod 20``, so together they fix ``i mod 200``: up to
    200 methods all look different (styles repeat after that). Each further ten methods change
    both the dashes and the marker, so a light shade never stands in for a different method alone.

    Args:
        names: Method names in legend order; a repeated name keeps its first style.

    Returns:
        Name -> style, in the order of ``names``.
    """
    styles: dict[str, MethodStyle] = {}
    for i, name in enumerate(dict.fromkeys(names)):
        j = i // METHODS_PER_STYLE
        styles[name] = MethodStyle(
            METHOD_COLOURS[i % len(METHOD_COLOURS)],
            METHOD_LINESTYLES[j % len(METHOD_LINESTYLES)],
            METHOD_MARKERS[j % len(METHOD_MARKERS)],
        )
    return styles


CONTROL_COLOURS: tuple[str, ...] = ("#6b7280", "#9ca3af", "#374151")
"""Greys of the controls (random, sobel, center...): drawn apart from every method's colour."""
CONTROL_MARKERS: tuple[str, ...] = ("x", "+", "*", "1", "2")


def control_styles(names: Sequence[str]) -> dict[str, MethodStyle]:
    """A grey, dotted, distinct style for every control (by position), apart from the methods'."""
    return {
        name: MethodStyle(CONTROL_COLOURS[i % len(CONTROL_COLOURS)], ":",
                          CONTROL_MARKERS[i % len(CONTROL_MARKERS)])
        for i, name in enumerate(dict.fromkeys(names))
    }


def _chart(draw: _Chart) -> _Chart:
    """Run a chart function under :data:`CHART_RC`, from its first figure to its saved PNG."""
    return matplotlib.rc_context(CHART_RC)(draw)


def _save(fig: Any, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as a PNG (atomically), close it; return ``path``."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)


@_chart
def training_curves(history: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Two panels over epochs: train and test loss, train and test accuracy."""
    epochs = [int(h["epoch"]) for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key, label, colour in (
        ("train", "train", TRAIN_COLOUR),
        ("test", "validation (test)", TEST_COLOUR),
    ):
        loss_ax.plot(
            epochs, [h[f"{key}_loss"] for h in history], "o-", ms=3, color=colour, label=label
        )
        acc_ax.plot(
            epochs, [h[f"{key}_acc"] for h in history], "o-", ms=3, color=colour, label=label
        )
    if any("test_acc_tta" in h for h in history):
        acc_ax.plot(
            epochs,
            [h.get("test_acc_tta", np.nan) for h in history],
            "s--",
            ms=3,
            color=TEST_COLOUR,
            alpha=0.6,
            label="test, TTA",
        )
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    acc_ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    for ax in (loss_ax, acc_ax):
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.legend(frameon=False)
    return _save(fig, path)


def one_cycle_lrs(recipe: Mapping[str, Any], num_train: int) -> tuple[np.ndarray, np.ndarray]:
    """The LR of every optimizer step of the run's one-cycle schedule, rebuilt from its recipe.

    Uses the trainer's own ``build_scheduler`` on a dummy optimizer, so the curve is the one
    training followed. Returns ``(epoch_position, lr)``: step ``s`` sits at ``(s + 1) / steps``.
    """
    from xaikit.schedule import build_scheduler, steps_per_epoch

    r = Recipe.from_dict(dict(recipe))
    steps = steps_per_epoch(int(num_train), r.batch_size)
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=r.max_lr / r.div_factor, momentum=r.momentum)
    scheduler = build_scheduler(optimizer, r, steps)
    lrs = []
    for _ in range(r.epochs * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    positions = (np.arange(len(lrs)) + 1) / steps
    return positions, np.asarray(lrs)


@_chart
def lr_schedule(
    history: Sequence[Mapping[str, Any]],
    recipe: Mapping[str, Any] | None,
    num_train: int | None,
    path: Path,
) -> Path:
    """The one-cycle LR per step (when the recipe and train-set size are known) and the LR
    recorded at the end of each epoch."""
    fig, ax = plt.subplots(figsize=(9, 2.8))
    if recipe and num_train:
        positions, lrs = one_cycle_lrs(recipe, num_train)
        ax.plot(positions, lrs, color=TRAIN_COLOUR, lw=1.5, label="one-cycle schedule (per step)")
    if history:
        ax.plot(
            [h["epoch"] for h in history],
            [h["lr"] for h in history],
            "o",
            ms=4,
            color=TEST_COLOUR,
            label="LR at end of epoch (history)",
        )
    ax.set(title="Learning rate", xlabel="epoch", ylabel="learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.legend(frameon=False)
    return _save(fig, path)


@_chart
def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path
) -> Path:
    """Counts per (true, predicted) class; colour = share of the true class (row-normalised)."""
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.4 * k + 2.4)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.grid(False)
    labels = [printable(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=10)
    ax.set_yticks(range(k), labels, fontsize=10)
    ax.set_xlabel("predicted class", fontsize=11)
    ax.set_ylabel("true class", fontsize=11)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=10,
                        color="white" if share[i, j] > 0.5 else "#1f2328",
                    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return _save(fig, path)


@_chart
def misclassified_figure(
    images: Tensor,
    maps: Tensor | None,
    labels: Sequence[int],
    preds: Sequence[int],
    confidences: Sequence[float],
    classes: Sequence[str],
    path: Path,
    method: str = "gradcam",
    columns: int = 4,
) -> Path:
    """A grid of misclassified images, each as (input, ``method`` overlay) with its label."""
    n = len(images)
    per_item = 2 if maps is not None else 1
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(
        rows, columns * per_item, figsize=(1.5 * columns * per_item, 1.9 * rows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, columns)
        ax = axes[row][col * per_item]
        ax.imshow(images[i].permute(1, 2, 0).cpu().numpy())
        ax.set_title(
            f"{printable(classes[labels[i]])}\n-> {printable(classes[preds[i]])} "
            f"{confidences[i]:.0%}",
            fontsize=7,
            color="crimson",
        )
        if maps is not None:
            axes[row][col * per_item + 1].imshow(np.clip(overlay(images[i], maps[i]), 0.0, 1.0))
            axes[row][col * per_item + 1].set_title(printable(method), fontsize=7)
    return _save(fig, path)
