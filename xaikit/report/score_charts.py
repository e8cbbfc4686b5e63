"""Matplotlib charts of the scorecards (:mod:`xaikit.metrics.scorecard`) on the report page.

* :func:`faithfulness_figure` -- ROAD combined, deletion and insertion AUC with intervals;
* :func:`road_curves_figure` -- the mean ROAD MoRF and LeRF curves;
* :func:`randomisation_figure` -- the cascading randomisation, layer by layer.

Each takes ``cards`` (name -> scorecard, methods and controls together) and ``controls`` (the
names among them that are controls, drawn grey). Each draws under
:data:`xaikit.report.charts.CHART_RC` (text from data drawn literally), gives every method its
own style (:func:`~xaikit.report.charts.method_styles`), writes the PNG atomically and returns
its path, or ``None`` when no card has what it draws.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xaikit.attribution.plot import printable
from xaikit.report import charts
from xaikit.report.charts import LEGEND_ROWS, RANDOM_COLOUR, TRAIN_COLOUR, _chart

plt = charts.plt  # pyplot, under the Agg backend that charts selects
Card = Mapping[str, Any]
FAIL_COLOUR = "#a40e26"


def _metric(card: Card, key: str) -> Mapping[str, Any] | None:
    m = (card.get("metrics") or {}).get(key)
    return m if isinstance(m, Mapping) and m.get("mean") is not None else None


def _name(name: str, controls: Collection[str]) -> str:
    return printable(name) + (" (control)" if name in controls else "")


def _styles(names: list[str], controls: Collection[str]) -> dict[str, charts.MethodStyle]:
    return {
        **charts.method_styles([n for n in names if n not in controls]),
        **charts.control_styles([n for n in names if n in controls]),
    }


def _legend(ax: Any, lines: list[Any], labels: list[str]) -> None:
    # handles and labels are given, so a name starting with "_" is listed too
    ax.legend(
        lines,
        labels,
        frameon=False,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        ncols=-(-len(lines) // LEGEND_ROWS),
    )


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


@_chart
def faithfulness_figure(
    cards: Mapping[str, Card], path: Path, controls: Collection[str] = ()
) -> Path | None:
    """ROAD combined (higher is better), deletion AUC (lower) and insertion AUC (higher) of each
    card: dots at the means, bars over the intervals; controls grey; on deletion and insertion a
    grey tick at the method's random reference."""
    panels = [
        (key, title)
        for key, title in (
            ("road_combined", "ROAD combined (higher is better)"),
            ("deletion", "Deletion AUC (lower is better)"),
            ("insertion", "Insertion AUC (higher is better)"),
        )
        if any(_metric(c, key) for c in cards.values())
    ]
    if not panels:
        return None
    names = list(cards)
    y = np.arange(len(names))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(3.4 * len(panels) + 1.6, 0.3 * len(names) + 1.4),
        sharey=True,
        squeeze=False,
    )
    for ax, (key, title) in zip(axes[0], panels):
        for yi, name in zip(y, names):
            m = _metric(cards[name], key)
            if m is None:
                continue
            mean = float(m["mean"])
            low, high = _float(m.get("low")), _float(m.get("high"))
            colour = RANDOM_COLOUR if name in controls else TRAIN_COLOUR
            ax.errorbar(
                [mean],
                [yi],
                xerr=[[max(0.0, mean - low)], [max(0.0, high - mean)]]
                if np.isfinite(low) and np.isfinite(high)
                else None,
                fmt="s" if name in controls else "o",
                color=colour,
                ms=4,
                elinewidth=1.2,
                capsize=2,
            )
            reference = _metric(cards[name], f"{key}_random")
            if reference is not None:
                r = float(reference["mean"])
                ax.plot([r, r], [yi - 0.35, yi + 0.35], color=RANDOM_COLOUR, lw=1.5)
        if key == "road_combined":
            ax.axvline(0.0, color=RANDOM_COLOUR, lw=0.8)
            ax.set_title(title + "\n0: a random map", fontsize=9)
        else:
            ax.set_title(title + "\ngrey tick: a random map", fontsize=9)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(y, [_name(n, controls) for n in names])
    axes[0][0].set_ylim(len(names) - 0.5, -0.5)
    for tick, name in zip(axes[0][0].get_yticklabels(), names):
        if name in controls:
            tick.set_color(RANDOM_COLOUR)
    return charts._save(fig, path)


@_chart
def road_curves_figure(
    cards: Mapping[str, Card], path: Path, controls: Collection[str] = ()
) -> Path | None:
    """The mean ROAD curves of each card: class probability after the most (MoRF) and least
    (LeRF) relevant share of pixels is removed and imputed, per percentile."""
    drawn = {
        n: c["road"]
        for n, c in cards.items()
        if isinstance(c.get("road"), Mapping) and c["road"].get("percentiles")
    }
    if not drawn:
        return None
    names = list(drawn)
    styles = _styles(names, controls)
    columns = -(-len(names) // LEGEND_ROWS)
    fig, axes = plt.subplots(1, 2, figsize=(10 + 2.2 * (columns - 1), 3.4), sharey=True)
    lines = []
    for name, road in drawn.items():
        x = [float(p) for p in road["percentiles"]]
        for ax, key in zip(axes, ("morf_curve", "lerf_curve")):
            (line,) = ax.plot(
                x,
                [_float(p) for p in road.get(key) or [None] * len(x)],
                ms=3,
                lw=1.3,
                **styles[name].plot_kwargs(),
            )
        lines.append(line)
    axes[0].set(
        title="MoRF: most relevant removed first (lower is better)",
        xlabel="% of pixels removed and imputed",
        ylabel="class probability",
    )
    axes[1].set(
        title="LeRF: least relevant removed first (higher is better)",
        xlabel="% of pixels removed and imputed",
    )
    for ax in axes:
        ax.title.set_fontsize(9)
    _legend(axes[1], lines, [_name(n, controls) for n in names])
    return charts._save(fig, path)


def _threshold(card: Card) -> float:
    verdict = (card.get("verdicts") or {}).get("randomization")
    if isinstance(verdict, Mapping) and verdict.get("threshold") is not None:
        return float(verdict["threshold"])
    return float((card.get("settings") or {}).get("sanity_threshold", 0.5))


@_chart
def randomisation_figure(
    cards: Mapping[str, Card], path: Path, controls: Collection[str] = (), max_ticks: int = 24
) -> Path | None:
    """Cascading randomisation (Adebayo et al. 2018): the mean Spearman rho between each card's
    maps on the trained model and on the model with its layers re-initialised one by one from the
    output back, for the raw maps and for their absolute values; the verdict reads the |map| rho
    of the fully random model (bar: its interval), failing in the shaded band."""
    drawn = {
        n: c["randomization"]["rho_by_layer"]
        for n, c in cards.items()
        if isinstance(c.get("randomization"), Mapping) and c["randomization"].get("rho_by_layer")
    }
    if not drawn:
        return None
    names = list(drawn)
    styles = _styles(names, controls)
    columns = -(-len(names) // LEGEND_ROWS)
    fig, axes = plt.subplots(1, 2, figsize=(10 + 2.2 * (columns - 1), 3.8), sharey=True)
    layers: list[str] = []
    lines, labels = [], []
    threshold = _threshold(cards[names[0]])
    for name, cascade in drawn.items():
        full = cards[name]["randomization"].get("cascade")
        if not isinstance(full, list):  # a card from before thinned cascades: every step
            full = [step.get("layer") for step in cascade]
        if len(full) > len(layers):
            layers = [str(layer) for layer in full]
        # a method too expensive for every step compares a few (their 1-based "step")
        x = np.array([0] + [int(step.get("step", i)) for i, step in enumerate(cascade, start=1)])
        for ax, key in zip(axes, ("rho", "rho_abs")):
            (line,) = ax.plot(
                x,
                [1.0] + [_float((step.get(key) or {}).get("mean")) for step in cascade],
                ms=3,
                lw=1.3,
                **styles[name].plot_kwargs(),
            )
        last = cascade[-1].get("rho_abs") or {}
        if last.get("low") is not None and last.get("high") is not None:
            axes[1].plot(
                [x[-1], x[-1]],
                [last["low"], last["high"]],
                color=styles[name].colour,
                lw=2.5,
                alpha=0.6,
            )
        lines.append(line)
        verdict = ((cards[name].get("verdicts") or {}).get("randomization") or {}).get("verdict")
        suffix = {"fail": " (fails)", "uncertain": " (uncertain)"}.get(str(verdict), "")
        labels.append(_name(name, controls) + suffix)
    axes[1].axhspan(threshold, 1.05, color=FAIL_COLOUR, alpha=0.07, lw=0)
    ticks_labels = ["trained", *(printable(layer) for layer in layers)]
    step = max(1, -(-len(ticks_labels) // max_ticks))
    ticks = list(range(0, len(ticks_labels), step))
    for ax, title in zip(
        axes,
        ("Spearman rho of the maps", f"Spearman rho of |maps| (shaded: fails, >= {threshold:g})"),
    ):
        ax.axhline(0.0, color=RANDOM_COLOUR, lw=0.8)
        ax.set_xticks(
            ticks,
            [ticks_labels[t] for t in ticks],
            rotation=50,
            ha="right",
            rotation_mode="anchor",
            fontsize=7,
        )
        ax.set(ylim=(-1.05, 1.05), xlabel="randomised down to layer")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("Spearman rho")
    _legend(axes[1], lines, labels)
    return charts._save(fig, path)
