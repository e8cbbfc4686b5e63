"""The report's reading of scorecards: the headline "Which maps can be trusted?", the verdict
sentences, the badges, the detailed scores and the scorecard charts, on real scorecards of a
tiny model (xaikit.metrics.scorecard) and on copies of them changed one field at a time."""

from __future__ import annotations

import copy
import html as html_lib
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import xaikit
from xaikit.explain import CONTROLS
from xaikit.metrics import METRICS, ScorecardSettings, rank_with_ties, scorecard, verdict
from xaikit.plugins import make_plugin_manager
from xaikit.report import score_charts, score_format, score_sections, trust_section, verdicts
from xaikit.report.method_sections import explanations_section
from xaikit.testing import TinyConvNet

FAST = ScorecardSettings(
    percentiles=(20, 50, 80),
    steps=4,
    infidelity_samples=2,
    sensitivity_samples=2,
    robustness_images=2,
    sanity_images=2,
    n_boot=50,
)
METHODS = ("gradcam", "integrated-gradients")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def real() -> dict[str, dict[str, Any]]:
    """Scorecards of the three controls and two methods on 6 images of a tiny seeded model,
    each method compared with the controls (as ``xaikit explain`` does)."""
    pm = make_plugin_manager()
    missing = [m for m in (*CONTROLS, *METHODS) if m not in xaikit.list_attributions(pm)]
    if missing:
        pytest.skip(f"attribution plugins not installed: {missing}")
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cards: dict[str, dict[str, Any]] = {}
    for name in (*CONTROLS, *METHODS):
        cls = xaikit.get_attribution(name, pm)
        method = cls(model, layer="conv" if cls.uses_layer else None)
        controls = {c: cards[c] for c in CONTROLS if c in cards}
        cards[name] = scorecard(model, method, x, settings=FAST, controls=controls)
        cards[name]["scale"] = method.scale
    return cards


@pytest.fixture
def methods(real) -> dict[str, dict[str, Any]]:
    return copy.deepcopy({m: real[m] for m in METHODS})


@pytest.fixture
def controls(real) -> dict[str, dict[str, Any]]:
    return copy.deepcopy({c: real[c] for c in CONTROLS})


def row_of(body: str, name: str) -> str:
    """The headline rows (figures and verdict sentence) of one method, as HTML."""
    found = re.search(
        rf'<tbody[^>]*><tr><td class="num">(?:(?!</tbody>).)*?<strong>{re.escape(name)}'
        r"</strong>.*?</tbody>",
        body,
        re.DOTALL,
    )
    assert found, f"no headline row of {name}"
    return found.group(0)


def headline(methods, controls) -> str:
    return trust_section.headline_section(methods, controls, 6).body


def set_answers(card: dict, **answers: str) -> None:
    for control, answer in answers.items():
        card["headline"][control]["faithfulness"] = answer


def test_headline_shows_each_cards_answers_and_verdicts(methods, controls):
    body = headline(methods, controls)
    for name, card in {**methods, **controls}.items():
        row = row_of(body, name)
        for control, line in card["headline"].items():
            answer = line["faithfulness"]
            assert f">{answer}</span> {control}</div>" in row, (name, control)
        for check, label in verdicts.SANITY_CHECKS.items():
            shown = card["verdicts"][check]["verdict"] if check in card["verdicts"] else "not run"
            assert f">{shown}</span> {label}</div>" in row, (name, check)
        mean = card["metrics"]["road_combined"]["mean"]
        assert score_format.numbers(mean)[0] in row
    for control in CONTROLS:
        assert f'<strong>{control}</strong> <span class="badge na">control</span>' in body


def test_headline_shows_yes_no_and_undecided(methods, controls):
    set_answers(methods["gradcam"], random="yes", sobel="no", center="undecided")
    row = row_of(headline(methods, controls), "gradcam")
    assert re.search(r'badge pass"[^>]*>yes</span> random</div>', row)
    assert re.search(r'badge fail"[^>]*>no</span> sobel</div>', row)
    assert re.search(r'badge uncertain"[^>]*>undecided</span> center</div>', row)
    assert "Beats random but not sobel (worse) and center (undecided) on faithfulness" in row


def test_an_interval_that_straddles_the_threshold_is_uncertain(methods, controls):
    card = methods["gradcam"]
    threshold = card["verdicts"]["randomization"]["threshold"]
    card["metrics"]["randomization_rho_abs"].update(
        mean=threshold, low=threshold - 0.1, high=threshold + 0.1
    )
    for check, entry in card["verdicts"].items():  # as the scorecard decides, from the interval
        entry["verdict"] = verdict(
            card["metrics"][entry["metric"]], entry["threshold"], entry["direction"]
        )
    for check in ("random_logit", "emprt"):
        card["verdicts"][check]["verdict"] = "pass"
    assert card["verdicts"]["randomization"]["verdict"] == "uncertain"

    row = row_of(headline(methods, controls), "gradcam")
    assert re.search(r'badge uncertain"[^>]*>uncertain</span> randomisation</div>', row)
    assert "sanity uncertain (randomisation)" in row
    grid = explanations_section([], None, list(methods), methods, False).body
    assert (
        '<span class="badge uncertain" title="uncertain: randomisation">sanity uncertain</span>'
        in grid
    )
    detail = score_sections.scores_section(methods, controls, 6).body
    assert 'badge uncertain" title="randomization">uncertain</span>' in detail


def test_a_method_that_does_not_beat_the_random_control_is_said_so(methods, controls):
    set_answers(methods["gradcam"], random="undecided", sobel="yes", center="yes")
    set_answers(methods["integrated-gradients"], random="no", sobel="yes", center="yes")
    body = headline(methods, controls)
    assert "No better than the random control on faithfulness" in row_of(body, "gradcam")
    assert "Worse than the random control on faithfulness" in row_of(body, "integrated-gradients")
    assert (
        "<strong>gradcam</strong>, <strong>integrated-gradients</strong> do not beat the random "
        "control on faithfulness"
    ) in body
    assert 'badge fail">✗</span>' in row_of(body, "gradcam")


def test_a_method_that_beats_every_control_and_passes_sanity_is_trusted(methods, controls):
    card = methods["integrated-gradients"]
    set_answers(card, random="yes", sobel="yes", center="yes")
    for entry in card["verdicts"].values():
        entry["verdict"] = "pass"
    assert (
        verdicts.verdict_sentence(card) == "Beats all controls on faithfulness and passes sanity."
    )
    assert verdicts.trust(card) == "pass"
    row = row_of(headline(methods, controls), "integrated-gradients")
    assert 'badge pass">✓</span> Beats all controls on faithfulness and passes sanity.' in row


@pytest.mark.parametrize(
    "answers, checks, expected",
    [
        (
            {"random": "yes", "sobel": "yes"},
            {"emprt": "fail"},
            "Beats all controls on faithfulness but fails sanity (eMPRT).",
        ),
        (
            {"random": "undecided"},
            {"randomization": "pass"},
            "No better than the random control on faithfulness but passes sanity.",
        ),
        (
            {"random": "no"},
            {"randomization": "fail", "random_logit": "fail"},
            (
                "Worse than the random control on faithfulness and fails sanity "
                "(randomisation, random logit)."
            ),
        ),
        (
            {"sobel": "undecided", "center": "undecided"},
            {},
            (
                "Beats no control on faithfulness: sobel (undecided) and center (undecided); "
                "sanity not checked."
            ),
        ),
        ({}, {"emprt": "uncertain"}, "Sanity uncertain (eMPRT)."),
    ],
)
def test_verdict_sentences_follow_the_card(answers, checks, expected):
    card = {
        "headline": {c: {"faithfulness": a} for c, a in answers.items()},
        "verdicts": {
            c: {"verdict": v, "metric": "x", "threshold": 0.5, "direction": "below"}
            for c, v in checks.items()
        },
    }
    assert verdicts.verdict_sentence(card) == expected
    assert verdicts.verdict_sentence(card, is_control=True).startswith("Control: ")


def test_ranks_tie_where_faithfulness_intervals_overlap(methods, controls):
    for name, (low, high) in {
        "gradcam": (0.10, 0.20),
        "integrated-gradients": (0.15, 0.25),
    }.items():
        methods[name]["metrics"]["road_combined"].update(mean=(low + high) / 2, low=low, high=high)
    best = copy.deepcopy(methods["gradcam"])
    best["metrics"]["road_combined"].update(mean=0.35, low=0.30, high=0.40)
    methods["best"] = best
    for control in CONTROLS:
        controls[control]["metrics"]["road_combined"].update(mean=0.0, low=-0.01, high=0.01)

    ranks = verdicts.faithfulness_ranks({**methods, **controls})
    assert ranks == rank_with_ties(
        {n: c["metrics"]["road_combined"] for n, c in {**methods, **controls}.items()},
        higher_is_better=True,
    )
    assert ranks["best"] == 1 and ranks["gradcam"] == ranks["integrated-gradients"] == 2
    assert all(ranks[c] == 4 for c in CONTROLS)
    body = headline(methods, controls)
    names = re.findall(
        r'<tr><td class="num">[^<]*(?:<div class="interval">tied</div>)?</td>'
        r"<td><strong>([^<]+)</strong>",
        body,
    )
    assert names[0] == "best" and set(names[1:3]) == {"gradcam", "integrated-gradients"}
    assert '<td class="num">1</td><td><strong>best</strong>' in body
    for name in ("gradcam", "integrated-gradients"):
        assert re.search(
            rf'<td class="num">2<div class="interval">tied</div></td><td><strong>{name}<', body
        )


def test_detailed_scores_explain_every_metric_with_its_direction(methods, controls):
    body = score_sections.scores_section(methods, controls, 6).body
    for key, info in METRICS.items():
        arrow = "↑" if info.higher_is_better else "↓"
        assert f"<dt>{html_lib.escape(score_format.label(key))} {arrow}</dt>" in body, key
        assert html_lib.escape(info.description, quote=True) in body, key
    for key in methods["gradcam"]["metrics"]:
        if not key.endswith("_random"):
            assert f'<th class="num">{html_lib.escape(score_format.label(key))} ' in body, key
    reference = methods["gradcam"]["metrics"]["deletion_random"]["mean"]
    assert f'<div class="interval">random {score_format.numbers(reference)[0]}</div>' in body
    gap = methods["integrated-gradients"]["metrics"]["completeness_gap"]
    assert "IG completeness gap ↓" in body and score_format.numbers(gap["mean"])[0] in body
    assert "Time per metric" in body and "Paired differences with the controls" in body


def test_fails_sanity_badge_over_the_grid_and_callout(methods, controls):
    methods["gradcam"]["verdicts"]["emprt"]["verdict"] = "fail"
    for entry in methods["integrated-gradients"]["verdicts"].values():
        entry["verdict"] = "pass"
    grid = explanations_section([], None, list(methods), methods, False).body
    assert grid.count(">fails sanity</span>") == 1
    assert "sanity uncertain" not in grid
    body = headline(methods, controls)
    assert "<strong>gradcam</strong> (eMPRT" in body and "fails a sanity check" in body


def test_names_from_plugins_are_escaped(methods, controls):
    evil, evil_control = "<img src=x onerror=alert(1)>", "<b>ctl</b>"
    methods = {evil: methods["gradcam"]}
    for card in methods.values():
        card["headline"][evil_control] = card["headline"]["center"]
        card["versus"][evil_control] = card["versus"]["center"]
    controls = {**controls, evil_control: controls["center"]}
    for body in (
        headline(methods, controls),
        score_sections.scores_section(methods, controls, 6).body,
        explanations_section([], None, list(methods), methods, False).body,
    ):
        assert "<img" not in body and "<b>" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_scorecard_charts_draw_real_cards(real, tmp_path: Path):
    controls = set(CONTROLS)
    for draw, name in (
        (score_charts.faithfulness_figure, "faithfulness.png"),
        (score_charts.road_curves_figure, "road.png"),
        (score_charts.randomisation_figure, "randomisation.png"),
    ):
        path = draw(real, tmp_path / name, controls)
        assert path is not None and path.read_bytes()[:8] == PNG_MAGIC
        assert draw({}, tmp_path / f"empty-{name}", controls) is None


def test_without_controls_the_headline_says_so_and_still_ranks(methods):
    for card in methods.values():
        card["headline"], card["versus"] = {}, {}
    body = headline(methods, {})
    assert "beats the controls" not in body and "No control was scored" in body
    assert "control</span>" not in body
    for name, card in methods.items():
        assert verdicts.verdict_sentence(card) in row_of(body, name)
    detail = score_sections.scores_section(methods, {}, 6).body
    assert "Paired differences" not in detail and "Time per metric" in detail
