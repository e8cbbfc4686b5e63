"""The card "Detailed scores" of the report page: every metric of the scorecards with its
interval and direction, grouped in tables, the verdict badges, the figures, one sentence per
metric, the paired differences with the controls and the time per metric.

It reads the same ``methods`` and ``controls`` scorecards as
:func:`xaikit.report.trust_section.headline_section`, in the same order (best faithfulness
first). Every name that comes from a plugin or a data set passes through
:func:`xaikit.report.html.esc`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from xaikit.metrics.catalogue import METRICS
from xaikit.report import verdicts as v
from xaikit.report.html import Section, esc, figure, table
from xaikit.report.score_format import (
    Card,
    arrow,
    badge,
    card_settings,
    combined,
    duration,
    finite,
    interval_cell,
    interval_level,
    interval_text,
    label,
    name_cell,
    numbers,
)

DETAIL_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Faithfulness: ROAD", ("road_morf", "road_lerf", "road_combined")),
    (
        "Faithfulness: deletion, insertion and fidelity",
        ("deletion", "insertion", "infidelity", "completeness_gap"),
    ),
    ("Robustness and complexity", ("sensitivity_max", "sparseness", "complexity")),
    ("Sanity", ("randomization_rho", "randomization_rho_abs", "random_logit_rho", "emprt")),
)
"""The tables of the detailed scores; a metric of the catalogue in none of them gets its own
table (the ``*_random`` references are shown beside their metric)."""
SECONDS_LABELS: dict[str, str] = {
    "road": "ROAD",
    "deletion_insertion": "deletion, insertion",
    "sensitivity_max": "max-sensitivity",
    "randomization": "randomisation",
    "random_logit": "random logit",
    "emprt": "eMPRT",
    "completeness_gap": "IG gap",
}
"""Column headings of the time per metric group (``card["seconds"]``); others by their key."""


def _detail_tables(cards: Mapping[str, Card]) -> list[tuple[str, list[str]]]:
    """``(title, metric keys)`` of each detailed table, only metrics some card has."""

    def present(keys: Sequence[str]) -> list[str]:
        return [k for k in keys if any(v.metric(c, k) is not None for c in cards.values())]

    listed = {k for _title, keys in DETAIL_TABLES for k in keys}
    others = [k for k in METRICS if k not in listed and not k.endswith("_random")]
    out = [(title, present(keys)) for title, keys in DETAIL_TABLES]
    out.append(("Other scores", present(others)))
    return [(title, keys) for title, keys in out if keys]


def _detail_cell(card: Card, key: str) -> str:
    extra = ""
    reference = v.metric(card, f"{key}_random")
    if reference is not None:
        extra += f'<div class="interval">random {numbers(reference["mean"])[0]}</div>'
    for name, verdict in (card.get("verdicts") or {}).items():
        if isinstance(verdict, Mapping) and verdict.get("metric") == key and "verdict" in verdict:
            extra += f"<div>{badge(str(verdict['verdict']), str(verdict['verdict']), name)}</div>"
    return interval_cell(v.metric(card, key), extra)


def _criterion_table(
    cards: Mapping[str, Card],
    order: Sequence[str],
    control_set: Collection[str],
    keys: Sequence[str],
) -> str:
    rows = [
        (name_cell(n, n in control_set), *(_detail_cell(cards[n], k) for k in keys)) for n in order
    ]
    return table(
        ["method", *(f"{label(k)} {arrow(k)}" for k in keys)],
        rows,
        numeric=[False, *[True] * len(keys)],
        row_classes=["control" if n in control_set else "" for n in order],
        css_class="scores",
    )


def _glossary() -> str:
    items = "".join(
        f"<dt>{esc(label(key))} {arrow(key)}</dt><dd>{esc(info.description)} "
        f'<span class="muted">({esc(info.criterion)}; {esc(info.reference)})</span></dd>'
        for key, info in METRICS.items()
    )
    return f'<h3>What each score means</h3><dl class="facts glossary">{items}</dl>'


def _versus_table(cards: Mapping[str, Card], order: Sequence[str], against: Sequence[str]) -> str:
    rows = []
    for name in order:
        versus = cards[name].get("versus") or {}
        cells = []
        for control in against:
            diff = (versus.get(control) or {}).get(v.FAITHFULNESS_METRIC)
            mean, bounds = interval_text(diff, signed=True)
            answer = str(diff.get("answer")) if diff else ""
            cells.append(
                f'{mean}<div class="interval">{bounds} {esc(answer)}</div>'
                if diff
                else '<span class="muted">–</span>'
            )
        rows.append((f"<strong>{esc(name)}</strong>", *cells))
    return table(
        ["method", *(f"minus {c}" for c in against)], rows, numeric=[False, *[True] * len(against)]
    )


def _seconds_table(cards: Mapping[str, Card], order: Sequence[str]) -> str:
    """Seconds of each metric group (``card["seconds"]``) per card, the total last."""
    keys = list(dict.fromkeys(k for c in cards.values() for k in (c.get("seconds") or {})))
    if "total" in keys:
        keys = [k for k in keys if k != "total"] + ["total"]
    rows = []
    for name in order:
        seconds = cards[name].get("seconds") or {}
        rows.append(
            (
                f"<strong>{esc(name)}</strong>",
                *(duration(float(seconds[k])) if finite(seconds.get(k)) else "–" for k in keys),
            )
        )
    headers = ["method", *(SECONDS_LABELS.get(k, k.replace("_", " ")) for k in keys)]
    return table(headers, rows, numeric=[False, *[True] * len(keys)], css_class="scores compact")


def scores_section(
    methods: Mapping[str, Card],
    controls: Mapping[str, Card],
    n_images: int,
    figures: Mapping[str, Path | None] | None = None,
    provenance: str = "",
) -> Section:
    """Every metric of the catalogue with its interval and direction, grouped by criterion, the
    deletion/insertion random reference beside, the verdict badges, one sentence per metric,
    the figures (``"faithfulness"``, ``"road"``, ``"randomisation"``), the paired differences
    with the controls and the time per metric."""
    figures = figures or {}
    cards, control_set = combined(methods, controls)
    ranks = v.faithfulness_ranks(cards)
    order = v.headline_order(cards, ranks)
    s = card_settings(cards)
    sanity_n = {int((c.get("randomization") or {}).get("n_images", 0)) for c in cards.values()} - {
        0
    }
    robust_n = {int(m["n"]) for c in cards.values() if (m := v.metric(c, "sensitivity_max"))}
    thinned = [
        f"{esc(name)} at {len(r['rho_by_layer'])} of {len(r['cascade'])} layers"
        for name, c in cards.items()
        if isinstance(r := c.get("randomization"), Mapping)
        and isinstance(r.get("cascade"), list) and isinstance(r.get("rho_by_layer"), list)
        and len(r["rho_by_layer"]) < len(r["cascade"])
    ]
    thinned_note = (
        " The evaluation budget compares the maps of the most expensive methods at evenly "
        f"spaced cascade steps only, ending at the fully random model: {'; '.join(thinned)}."
        if thinned else ""
    )
    parts = [
        (
            f"<p>Every score of the scorecard over the same {n_images} test images "
            "(max-sensitivity "
            f"on {', '.join(map(str, sorted(robust_n))) or '–'}, the randomisation cascade on "
            f"{', '.join(map(str, sorted(sanity_n))) or '–'}), as a mean with its "
            f"{interval_level(cards)} bootstrap interval ({esc(s.get('n_boot', '?'))} resamples); "
            "↑ higher is better, ↓ lower is better. Under deletion and insertion: the same area "
            "for a "
            "random map at the method's resolution. Badges: the verdict read from that score's "
            f"interval.{thinned_note} {provenance}</p>"
        )
    ]
    for title, keys in _detail_tables(cards):
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(_criterion_table(cards, order, control_set, keys))
        if "road_combined" in keys:
            parts.append(
                _figure(
                    figures.get("road"),
                    "ROAD MoRF and LeRF curves of each method",
                    "Class probability as a growing share of pixels is removed and "
                    "imputed, most relevant first (MoRF: lower is better) and least "
                    "relevant first (LeRF: higher is better); means over the images.",
                )
            )
        if "deletion" in keys or "insertion" in keys:
            parts.append(
                _figure(
                    figures.get("faithfulness"),
                    "ROAD combined, deletion and insertion AUC of each method",
                    "Dots: means; bars: intervals; grey: the controls and, on "
                    "deletion and insertion, each method's random reference.",
                )
            )
        if "randomization_rho_abs" in keys:
            parts.append(
                _figure(
                    figures.get("randomisation"),
                    "Spearman rho of each method's maps as the model's layers are randomised",
                    "Each line starts at 1 (the trained model against itself) and follows the rank "
                    "correlation as layers are re-initialised from the output back; the verdict "
                    "reads "
                    "the |map| correlation of the fully random model (bars: its interval).",
                )
            )
    parts.append(_glossary())
    against = v.control_names(cards, list(controls))
    if against:
        parts.append(
            "<details><summary>Paired differences with the controls "
            f"({esc(label(v.FAITHFULNESS_METRIC))})"
            "</summary>"
            + _versus_table(cards, order, against)
            + '<p class="note">Mean over the same images of the method\'s score minus the '
            "control's, its paired-bootstrap interval and the answer it gives.</p></details>"
        )
    parts.append(
        "<details><summary>Time per metric</summary>"
        + _seconds_table(cards, order)
        + '<p class="note">Wall time of each metric group over all images '
        "(<em>maps</em>: the maps themselves).</p></details>"
    )
    return Section("scores", "Detailed scores", "".join(parts))


def _figure(png: Path | None, alt: str, caption: str) -> str:
    return figure(png, alt, caption) if png else ""
