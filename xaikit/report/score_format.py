"""Formatting shared by the scorecard cards of the report page: metric labels and direction
arrows (from :data:`xaikit.metrics.catalogue.METRICS`), numbers with their intervals, badges,
durations, and which cards are controls.

Every function returns HTML with the data escaped by :func:`xaikit.report.html.esc`, or plain
text where its docstring says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xaikit.explain import CONTROLS
from xaikit.metrics.catalogue import METRICS
from xaikit.report.html import esc

Card = Mapping[str, Any]

METRIC_LABELS: dict[str, str] = {
    "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF",
    "road_combined": "ROAD combined",
    "deletion": "deletion AUC",
    "insertion": "insertion AUC",
    "deletion_random": "deletion AUC, random map",
    "insertion_random": "insertion AUC, random map",
    "infidelity": "infidelity",
    "completeness_gap": "IG completeness gap",
    "sensitivity_max": "max-sensitivity",
    "sparseness": "sparseness",
    "complexity": "complexity",
    "randomization_rho": "randomisation ρ",
    "randomization_rho_abs": "randomisation ρ of |map|",
    "random_logit_rho": "random-logit ρ",
    "emprt": "eMPRT",
}
"""Short column headings; a metric of the catalogue not listed here is shown by its key."""
ANSWER_LEVEL = {"yes": "pass", "no": "fail", "undecided": "uncertain"}
"""The badge colour of each answer against a control."""


def label(key: str) -> str:
    """The column heading of a metric (plain text)."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


def arrow(key: str) -> str:
    """``↑`` when higher is better, ``↓`` when lower is better (from the catalogue)."""
    info = METRICS.get(key)
    return "" if info is None else "↑" if info.higher_is_better else "↓"


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (``None`` is not)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def numbers(*values: float) -> list[str]:
    """The values with one format: three decimals, or three significant digits in scientific
    notation when all are below 0.01 in magnitude (infidelity, tiny differences)."""
    largest = max((abs(x) for x in values if finite(x)), default=0.0)
    if largest == 0.0 or largest >= 0.01:
        return [f"{x:.3f}" if finite(x) else "–" for x in values]
    return [f"{x:.2e}" if finite(x) else "–" for x in values]


def interval_text(m: Mapping[str, Any] | None, signed: bool = False) -> tuple[str, str]:
    """``("0.123", "[0.100, 0.150]")`` of a ``{"mean", "low", "high"}``; dashes where missing."""
    if not m or not finite(m.get("mean")):
        return "–", ""
    mean, low, high = numbers(m["mean"], m.get("low"), m.get("high"))
    if signed and m["mean"] > 0:
        mean = "+" + mean
    return mean, f"[{low}, {high}]" if finite(m.get("low")) else ""


def interval_cell(m: Mapping[str, Any] | None, extra: str = "") -> str:
    """A table cell: the mean, its interval below, then ``extra`` (HTML)."""
    mean, bounds = interval_text(m)
    if mean == "–":
        return '<span class="muted">–</span>' + extra
    return f'{mean}<div class="interval">{bounds}</div>{extra}'


def badge(text: str, level: str, title: str = "") -> str:
    """A coloured pill: ``level`` is pass / fail / uncertain / na; ``title`` a tooltip (text)."""
    tip = f' title="{esc(title)}"' if title else ""
    return f'<span class="badge {esc(level)}"{tip}>{esc(text)}</span>'


def duration(seconds: float) -> str:
    """``0.00042`` -> ``"420 µs"``, ``0.012`` -> ``"12.0 ms"``, ``3.2`` -> ``"3.20 s"``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def combined(
    methods: Mapping[str, Card], controls: Mapping[str, Card]
) -> tuple[dict[str, Card], set[str]]:
    """Every card to show (methods, then the controls not among them) and the control names
    (the ``controls`` and any method that is one of :data:`xaikit.explain.CONTROLS`)."""
    cards = {**methods, **{c: card for c, card in controls.items() if c not in methods}}
    return cards, set(controls) | (set(CONTROLS) & set(methods))


def name_cell(name: str, is_control: bool) -> str:
    """The method's name in bold, with a grey "control" pill for a control."""
    tag = ' <span class="badge na">control</span>' if is_control else ""
    return f"<strong>{esc(name)}</strong>{tag}"


def card_settings(cards: Mapping[str, Card]) -> Mapping[str, Any]:
    """The scorecard settings of the first card (every card of a page has the same)."""
    return next((c.get("settings") or {} for c in cards.values()), {})


def interval_level(cards: Mapping[str, Card]) -> str:
    """``"95%"``: the level of the cards' intervals (from their settings' ``alpha``)."""
    alpha = card_settings(cards).get("alpha", 0.05)
    return f"{1 - float(alpha):.0%}"
