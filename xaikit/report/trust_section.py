"""The card "Which maps can be trusted?" of the report page: one row per method and control,
best faithfulness first, with its verdict against the controls and the sanity checks.

It reads scorecards (:mod:`xaikit.metrics.scorecard`): ``methods`` maps each explained method
to its card, ``controls`` each control that was not asked for as a method (``random``,
``sobel``, ``center``: :attr:`xaikit.explain.Explanation.controls`) to its card. Controls are
shown too, as grey rows: they are what a method must beat. Every name that comes from a plugin
or a data set passes through :func:`xaikit.report.html.esc`; the conclusions are computed from
the cards by :mod:`xaikit.report.verdicts`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from xaikit.metrics.catalogue import METRICS
from xaikit.report import verdicts as v
from xaikit.report.html import Section, esc, table_head
from xaikit.report.score_format import (
    ANSWER_LEVEL,
    Card,
    badge,
    combined,
    duration,
    finite,
    interval_cell,
    interval_level,
    interval_text,
    label,
    name_cell,
)

RANDOMIZATION_PAPER = "Adebayo et al., “Sanity Checks for Saliency Maps”, NeurIPS 2018"
ROAD_PAPER = (
    "Rong et al., “A Consistent and Efficient Evaluation Strategy for Attribution Methods”, "
    "ICML 2022"
)
CONTROL_TEXT: dict[str, str] = {
    "random": "a seeded random map, as smooth as a CAM",
    "sobel": "the edges of the input, no model",
    "center": "a centred Gaussian",
}
"""What each known control is, for the introduction of the table."""


def _line(badge_html: str, text: str) -> str:
    return f'<div class="check">{badge_html} {esc(text)}</div>'


def _answers_cell(card: Card, against: Sequence[str], name: str) -> str:
    """One line per control: does the card beat it on faithfulness (yes / no / undecided)."""
    lines = []
    answers = v.faithfulness_answers(card)
    for control in against:
        answer = answers.get(control)
        if name == control or answer is None:
            lines.append(
                _line(badge("–", "na", "itself" if name == control else "not compared"), control)
            )
            continue
        diff = ((card.get("versus") or {}).get(control) or {}).get(v.FAITHFULNESS_METRIC)
        mean, bounds = interval_text(diff, signed=True)
        tip = (
            f"{label(v.FAITHFULNESS_METRIC)} minus {control}'s on the same images: {mean} {bounds}"
        )
        if answer == "undecided":
            tip += " (the interval contains 0: too few images to tell)"
        lines.append(_line(badge(answer, ANSWER_LEVEL.get(answer, "na"), tip), control))
    return "".join(lines)


def _sanity_cell(card: Card) -> str:
    """One line per sanity check: pass / fail / uncertain, or not run."""
    lines = []
    for check, text in v.SANITY_CHECKS.items():
        verdict = (card.get("verdicts") or {}).get(check)
        if not isinstance(verdict, Mapping) or "verdict" not in verdict:
            lines.append(_line(badge("not run", "na"), text))
            continue
        key = str(verdict.get("metric", ""))
        mean, bounds = interval_text(v.metric(card, key))
        side = "below" if verdict.get("direction") == "below" else "above"
        tip = f"{label(key)} {mean} {bounds}; passes {side} {verdict.get('threshold')}"
        lines.append(_line(badge(str(verdict["verdict"]), str(verdict["verdict"]), tip), text))
    return "".join(lines)


def _cost_cell(card: Card) -> str:
    spi = card.get("seconds_per_image")
    if not finite(spi):
        return '<span class="muted">–</span>'
    ratio = ((card.get("headline") or {}).get(v.RANDOM_CONTROL) or {}).get("cost_ratio")
    below = f'<div class="interval">×{ratio:.3g} random</div>' if finite(ratio) else ""
    return duration(float(spi)) + below


def _rank_cell(name: str, ranks: Mapping[str, int]) -> str:
    if name not in ranks:
        return '<span class="muted">–</span>'
    tied = sum(1 for r in ranks.values() if r == ranks[name]) > 1
    return str(ranks[name]) + ('<div class="interval">tied</div>' if tied else "")


def headline_section(
    methods: Mapping[str, Card], controls: Mapping[str, Card], n_images: int, provenance: str = ""
) -> Section:
    """One row per method and control, best faithfulness first: faithfulness (ROAD combined),
    beats each control on it (yes / no / undecided), the sanity verdicts (pass / fail /
    uncertain), robustness, complexity, cost, the rank (tied where intervals overlap) and one
    verdict sentence."""
    cards, control_set = combined(methods, controls)
    ranks = v.faithfulness_ranks(cards)
    order = v.headline_order(cards, ranks)
    against = v.control_names(cards, list(controls))
    headers = ["rank", "method", f"{label(v.FAITHFULNESS_METRIC)} ↑"]
    groups = [("", 2), ("faithfulness", 1)]
    if against:
        headers.append("on faithfulness")
        groups.append(("beats the controls", 1))
    headers += ["checks", "max-sensitivity ↓", "sparseness ↑", "time / image"]
    groups += [("sanity", 1), ("robustness", 1), ("complexity", 1), ("cost", 1)]
    numeric = [True, False, True, *([False] if against else []), False, True, True, True]
    bodies = []
    for name in order:
        card, is_control = cards[name], name in control_set
        level = v.trust(card)
        mark = {"pass": "✓", "uncertain": "?", "fail": "✗"}[level]
        cells = (
            _rank_cell(name, ranks),
            name_cell(name, is_control),
            interval_cell(v.metric(card, v.FAITHFULNESS_METRIC)),
            *([_answers_cell(card, against, name)] if against else []),
            _sanity_cell(card),
            interval_cell(v.metric(card, "sensitivity_max")),
            interval_cell(v.metric(card, "sparseness")),
            _cost_cell(card),
        )
        row = "".join(
            f'<td class="num">{c}</td>' if numeric[i] else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        sentence = (
            f'<tr class="verdict"><td></td><td colspan="{len(cells) - 1}">'
            f"{badge(mark, level)} {esc(v.verdict_sentence(card, is_control))}</td></tr>"
        )
        klass = ' class="control"' if is_control else ""
        bodies.append(f"<tbody{klass}><tr>{row}</tr>{sentence}</tbody>")
    headline = (
        f'<div class="table-wrap"><table class="headline">'
        f"{table_head(headers, numeric, groups)}{''.join(bodies)}</table></div>"
    )
    present = [c for c in against if c in cards]
    intro = (
        f"<p>Every method scored on the same {n_images} test images, best faithfulness first; "
        f"each number is a mean with its {interval_level(cards)} bootstrap interval. "
    )
    if present:
        described = "; ".join(
            f"<strong>{esc(c)}</strong>"
            + (f" ({esc(CONTROL_TEXT[c])})" if c in CONTROL_TEXT else "")
            for c in present
        )
        intro += (
            f"Grey rows are the controls, maps that know nothing of the model: {described}. "
            "A method is only worth reading where it beats them."
        )
    else:
        intro += (
            "No control was scored (the <code>baselines</code> plugin gives "
            "<code>random</code>, <code>sobel</code> and <code>center</code>)."
        )
    intro += f" {provenance}</p>" if provenance else "</p>"
    body = intro + headline + _headline_legend(cards) + _headline_callouts(methods, control_set)
    return Section("trust", "Which maps can be trusted?", body)


def _headline_legend(cards: Mapping[str, Card]) -> str:
    return (
        '<div class="callout info"><strong>How to read this.</strong> '
        f"<em>Faithfulness</em>: {esc(METRICS[v.FAITHFULNESS_METRIC].description)} "
        "<em>Beats on faithfulness</em>: a paired bootstrap of the method's minus the control's "
        "score over the same images: <em>yes</em> when the whole interval of the difference is on "
        "the better side of 0, <em>no</em> when it is on the worse side, <em>undecided</em> when "
        "it contains 0 (too few images to tell; hover for the difference). <em>Sanity</em>: "
        "<em>pass</em> or <em>fail</em> when the whole interval is on one side of the check's "
        "threshold, <em>uncertain</em> when it straddles it (hover for the interval). "
        f"<em>Rank</em>: 1 + the number of methods whose {esc(label(v.FAITHFULNESS_METRIC))} "
        "interval lies wholly above this one's, so methods whose intervals overlap share a rank. "
        "<em>Time / image</em>: the maps alone, and how many times the random control's "
        "time.</div>"
    )


def _headline_callouts(methods: Mapping[str, Card], control_set: Collection[str]) -> str:
    shown = {n: c for n, c in methods.items() if n not in control_set}
    not_random = [
        n
        for n, c in shown.items()
        if v.faithfulness_answers(c).get(v.RANDOM_CONTROL) in ("no", "undecided")
    ]
    failing = {n: v.checks_with(c, "fail") for n, c in shown.items() if v.fails_sanity(c)}
    out = ""
    if not_random:
        names = ", ".join(f"<strong>{esc(n)}</strong>" for n in not_random)
        out += (
            f'<div class="callout">{names} {"does" if len(not_random) == 1 else "do"} not beat the '
            "random control on faithfulness: removing the pixels "
            f"{'its' if len(not_random) == 1 else 'their'} maps rank first changes the "
            "prediction no more than removing those of a random map of the same smoothness "
            f"({esc(ROAD_PAPER)}).</div>"
        )
    if failing:
        names = ", ".join(
            f"<strong>{esc(n)}</strong> ({esc(', '.join(c))})" for n, c in failing.items()
        )
        one = len(failing) == 1
        out += (
            f'<div class="callout"><span class="badge fail">fails sanity</span> {names} '
            f"{'fails' if one else 'fail'} a sanity check: {'its' if one else 'their'} maps barely "
            "change when the model's weights are re-initialised at random (randomisation, eMPRT) "
            "or when another class is explained (random logit). Such a map shows the image's "
            "structure more than what the model learned: do not read it as an explanation of "
            f"this model ({esc(RANDOMIZATION_PAPER)}).</div>"
        )
    return out
