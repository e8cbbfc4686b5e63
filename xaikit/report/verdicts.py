"""What the report concludes from scorecards (:mod:`xaikit.metrics.scorecard`), as plain text.

No HTML here: the page (:mod:`xaikit.report.score_sections`) escapes and lays out what these
functions return. Everything is read from the cards, nothing is hard-coded per method:

* :func:`sanity_verdicts` -- ``pass`` / ``fail`` / ``uncertain`` of each sanity check, from the
  card's ``"verdicts"`` (an interval that straddles the threshold is ``uncertain``);
* :func:`faithfulness_answers` -- does the method beat each control on faithfulness (``yes`` /
  ``no`` / ``undecided``), from the card's ``"headline"``;
* :func:`faithfulness_ranks` -- ranks by the faithfulness score, tied where intervals overlap
  (:func:`xaikit.metrics.statistics.rank_with_ties`);
* :func:`verdict_sentence` and :func:`trust` -- one sentence and one of ``pass`` / ``uncertain``
  / ``fail`` per method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from xaikit.explain import CONTROLS
from xaikit.metrics.catalogue import CRITERIA
from xaikit.metrics.statistics import rank_with_ties

Card = Mapping[str, Any]
Level = Literal["pass", "uncertain", "fail"]

FAITHFULNESS_METRIC = CRITERIA["faithfulness"]
"""The per-image score that ranks methods and decides "beats a control" (ROAD combined)."""
RANDOM_CONTROL = "random"
SANITY_CHECKS: dict[str, str] = {
    "randomization": "randomisation",
    "random_logit": "random logit",
    "emprt": "eMPRT",
}
"""Verdict names of the sanity checks in a card's ``"verdicts"``, with their labels."""


def metric(card: Card, key: str) -> Mapping[str, Any] | None:
    """The card's ``{"mean", "low", "high", ...}`` of ``key``; ``None`` if absent or not finite."""
    m = (card.get("metrics") or {}).get(key)
    if not isinstance(m, Mapping) or m.get("mean") is None:
        return None
    return m


def control_names(cards: Mapping[str, Card], controls: Sequence[str] = ()) -> list[str]:
    """The controls the cards were compared with: the known ones (``random``, ``sobel``,
    ``center``) first, then any other, in order of appearance; ``controls`` are included."""
    seen = dict.fromkeys(controls)
    for card in cards.values():
        seen.update(dict.fromkeys(card.get("headline") or {}))
    return [c for c in CONTROLS if c in seen] + [c for c in seen if c not in CONTROLS]


def sanity_verdicts(card: Card) -> dict[str, str]:
    """Check label -> ``"pass"`` / ``"fail"`` / ``"uncertain"``, for the card's sanity checks."""
    verdicts = card.get("verdicts") or {}
    return {
        label: str(verdicts[name]["verdict"])
        for name, label in SANITY_CHECKS.items()
        if isinstance(verdicts.get(name), Mapping) and "verdict" in verdicts[name]
    }


def sanity_status(card: Card) -> Level | None:
    """``"fail"`` if any sanity check fails, else ``"uncertain"`` if any is uncertain, else
    ``"pass"``; ``None`` when no check was run."""
    found = set(sanity_verdicts(card).values())
    if not found:
        return None
    return "fail" if "fail" in found else "uncertain" if "uncertain" in found else "pass"


def checks_with(card: Card, verdict: str) -> list[str]:
    """Labels of the sanity checks with this verdict."""
    return [label for label, v in sanity_verdicts(card).items() if v == verdict]


def fails_sanity(card: Card) -> bool:
    """Whether any sanity check of the card fails (its whole interval on the failing side)."""
    return sanity_status(card) == "fail"


def faithfulness_answers(card: Card) -> dict[str, str]:
    """Control -> ``"yes"`` / ``"no"`` / ``"undecided"``: does the card beat it on faithfulness."""
    return {
        control: str(line["faithfulness"])
        for control, line in (card.get("headline") or {}).items()
        if isinstance(line, Mapping) and line.get("faithfulness")
    }


def faithfulness_ranks(cards: Mapping[str, Card]) -> dict[str, int]:
    """Rank of each card with a faithfulness interval; overlapping intervals share a rank."""
    intervals = {}
    for name, card in cards.items():
        m = metric(card, FAITHFULNESS_METRIC)
        if m is not None and m.get("low") is not None and m.get("high") is not None:
            intervals[name] = m
    return rank_with_ties(intervals, higher_is_better=True) if intervals else {}


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def faithfulness_clause(card: Card, is_control: bool = False) -> tuple[str, int] | None:
    """The faithfulness part of the verdict and its polarity (1 good, 0 mixed, -1 bad)."""
    answers = faithfulness_answers(card)
    if not answers:
        return None
    random = answers.get(RANDOM_CONTROL)
    if random == "no":
        return "worse than the random control on faithfulness", -1
    if random == "undecided":
        return "no better than the random control on faithfulness", -1
    beaten = [c for c, a in answers.items() if a == "yes"]
    if len(beaten) == len(answers):
        if len(answers) == 1:
            return f"beats the {beaten[0]} control on faithfulness", 1
        return f"beats {'the other' if is_control else 'all'} controls on faithfulness", 1
    missed = [
        f"{c} ({'worse' if a == 'no' else 'undecided'})" for c, a in answers.items() if a != "yes"
    ]
    if not beaten:
        return f"beats no control on faithfulness: {_join(missed)}", -1
    return f"beats {_join(beaten)} but not {_join(missed)} on faithfulness", 0


def sanity_clause(card: Card) -> tuple[str, int]:
    """The sanity part of the verdict and its polarity (1 good, 0 uncertain, -1 bad)."""
    status = sanity_status(card)
    if status is None:
        return "sanity not checked", 0
    if status == "fail":
        return f"fails sanity ({', '.join(checks_with(card, 'fail'))})", -1
    if status == "uncertain":
        return f"sanity uncertain ({', '.join(checks_with(card, 'uncertain'))})", 0
    return "passes sanity", 1


def verdict_sentence(card: Card, is_control: bool = False) -> str:
    """One sentence on whether the card's maps can be trusted, e.g. "Beats all controls on
    faithfulness and passes sanity." or "No better than the random control on faithfulness but
    passes sanity." (plain text: escape it for HTML)."""
    sanity, s_sign = sanity_clause(card)
    faith = faithfulness_clause(card, is_control)
    if faith is None:
        text = sanity
    else:
        f_text, f_sign = faith
        glue = " and " if f_sign == s_sign != 0 else " but " if f_sign * s_sign < 0 else "; "
        text = f_text + glue + sanity
    if is_control:
        return f"Control: {text}."
    return text[0].upper() + text[1:] + "."


def trust(card: Card) -> Level:
    """``"pass"``: beats every control on faithfulness and passes every sanity check;
    ``"fail"``: fails a sanity check, or no better than the random control; else ``"uncertain"``."""
    faith = faithfulness_clause(card)
    status = sanity_status(card)
    if status == "fail" or (
        faith is not None and faith[1] < 0 and RANDOM_CONTROL in faithfulness_answers(card)
    ):
        return "fail"
    if faith is not None and faith[1] > 0 and status == "pass":
        return "pass"
    return "uncertain"


def headline_order(cards: Mapping[str, Card], ranks: Mapping[str, int]) -> list[str]:
    """Names by faithfulness rank, then by the faithfulness mean (best first); unranked last,
    in their order."""
    position = {name: i for i, name in enumerate(cards)}

    def key(name: str) -> tuple[int, float, int]:
        m = metric(cards[name], FAITHFULNESS_METRIC)
        mean = float(m["mean"]) if m is not None else 0.0
        return (ranks.get(name, len(cards) + 1), -mean, position[name])

    return sorted(cards, key=key)
