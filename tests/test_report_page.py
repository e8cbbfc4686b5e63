"""The report page template and style as package data, figures that draw data text literally,
one distinct line style per method and grey controls."""

from __future__ import annotations

import re
from dataclasses import astuple
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import torch

from xaikit.attribution.plot import explanation_grid, literal_text, printable
from xaikit.report import charts, html, score_charts
from xaikit.report.html import Section, render_page

EVIL_TITLE = "</title><script>alert(1)</script>"
EVIL_CLASSES = ["$\\frac{$", "a_b^c", "[/oops]", "\x1b[31mred"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _packaged(name: str) -> str:
    return (resources.files("xaikit.report") / "templates" / name).read_text(encoding="utf-8")


def _render(title: str = EVIL_TITLE) -> str:
    return render_page(
        title=title,
        subtitle="sub & title",
        stats=[("accuracy", "91.00%"), ("<b>label</b>", "$5")],
        sections=[Section("run", "The <run>", "<p>body</p>"), Section("scores", "Scores", "")],
        footer="xaikit report &middot; <code>figures</code>",
    )


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_templates_are_package_data():
    for name in ("style.css", "page.html"):
        assert (resources.files("xaikit.report") / "templates" / name).is_file()
    assert not hasattr(html, "STYLE")  # the CSS lives in the file only


def test_page_inlines_the_css_file_and_escapes_data_text():
    page = _render()
    assert f"<style>\n{_packaged('style.css')}</style>" in page
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")
    assert "<script" not in page.lower()
    assert page.count("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # title, h1
    assert "<title>&lt;/title&gt;" in page
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert policy and policy.group(1) == html.CONTENT_SECURITY_POLICY
    assert '<div class="label">&lt;b&gt;label&lt;/b&gt;</div>' in page
    assert '<li><a href="#run">The &lt;run&gt;</a></li>' in page
    card = '<section class="card" id="run">\n<h2>The &lt;run&gt;</h2>\n<p>body</p>\n</section>'
    assert card in page
    assert "<footer>xaikit report &middot; <code>figures</code></footer>" in page
    assert "$5" in page  # a "$" in a value is text, not a placeholder


def test_a_placeholder_the_page_does_not_fill_is_an_error(monkeypatch):
    texts = {"page.html": "<title>$title</title>$unknown", "style.css": ""}
    monkeypatch.setattr(html, "template_text", texts.__getitem__)
    with pytest.raises(KeyError, match="unknown"):
        _render("t")


def test_a_style_sheet_that_closes_its_element_is_refused(monkeypatch):
    texts = {"page.html": _packaged("page.html"), "style.css": "p {}</style><script>x()"}
    monkeypatch.setattr(html, "template_text", texts.__getitem__)
    with pytest.raises(ValueError, match="</style"):
        _render("t")


def test_printable_shows_control_characters_as_escapes():
    assert printable("\x1b[31mred") == "\\x1b[31mred"
    assert printable("a\nb\tc") == "a\\nb\\tc"
    assert printable("$\\frac{$ ü") == "$\\frac{$ ü"


@pytest.fixture
def captured(monkeypatch) -> list[Any]:
    """Every figure that ``charts`` saves, kept open for inspection, closed after the test."""
    figures: list[Any] = []
    save = charts._save

    def keep(fig: Any, path: Path) -> Path:
        figures.append(fig)
        fig.tight_layout()
        fig.canvas.draw()  # lays out every text: mathtext would be parsed here
        with monkeypatch.context() as m:
            m.setattr(charts.plt, "close", lambda *_: None)
            return save(fig, path)

    monkeypatch.setattr(charts, "_save", keep)
    yield figures
    for fig in figures:
        matplotlib.pyplot.close(fig)


def test_figures_draw_class_names_literally(tmp_path, captured):
    torch.manual_seed(0)
    k = len(EVIL_CLASSES)
    images = torch.randint(0, 256, (k, 3, 8, 8), dtype=torch.uint8)
    maps = torch.rand(k, 8, 8)
    labels, preds = list(range(k)), [(i + 1) % k for i in range(k)]
    before = dict(matplotlib.rcParams)

    matrix = charts.confusion_matrix_figure(
        torch.eye(k, dtype=torch.int64).tolist(), EVIL_CLASSES, tmp_path / "matrix.png"
    )
    gallery = charts.misclassified_figure(
        images, maps, labels, preds, [0.5] * k, EVIL_CLASSES, tmp_path / "gallery.png",
        method="$x_{$",
    )
    grid = explanation_grid(
        images, {"$\\frac{$": maps, "a_b^c": -maps}, {"a_b^c": True}, labels, preds,
        EVIL_CLASSES, tmp_path / "grid.png", confidences=[0.5] * k,
    )

    assert all(_is_png(p) for p in (matrix, gallery, grid))
    shown = [printable(c) for c in EVIL_CLASSES]
    matrix_axes = captured[0].axes[0]
    for ticks in (matrix_axes.get_xticklabels(), matrix_axes.get_yticklabels()):
        assert [t.get_text() for t in ticks] == shown
        assert not any(t.get_parse_math() for t in ticks)
    titles = [ax.get_title() for ax in captured[1].axes]
    assert f"{shown[0]}\n-> {shown[1]} 50%" in titles and "$x_{$" in titles
    assert dict(matplotlib.rcParams) == before  # the caller's settings are left alone


def test_every_method_gets_its_own_style():
    names = [f"method-{i}" for i in range(40)]
    styles = charts.method_styles(names)
    assert list(styles) == names
    triples = {(s.colour, s.linestyle, s.marker) for s in styles.values()}
    assert len(triples) == 40
    many = charts.method_styles([str(i) for i in range(200)])
    assert len({astuple(s) for s in many.values()}) == 200
    tab10 = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    assert [s.colour for s in list(styles.values())[:10]] == tab10
    assert {(s.linestyle, s.marker) for s in list(styles.values())[:10]} == {("-", "o")}
    assert charts.method_styles(["a", "b", "a"]) == charts.method_styles(["a", "b"])


def _interval(mean: float, width: float = 0.05) -> dict[str, float]:
    return {"mean": mean, "low": mean - width, "high": mean + width, "n": 4}


def _cascade_card(i: int, layers: list[str]) -> dict[str, Any]:
    """The parts of a scorecard that the randomisation chart reads."""
    steps = [{"layer": layer, "rho": _interval(0.9 - 0.2 * k), "rho_abs": _interval(0.95 - 0.2 * k)}
             for k, layer in enumerate(layers)]
    return {
        "randomization": {"layers": layers, "n_images": 4, "rho_by_layer": steps},
        "verdicts": {"randomization": {"verdict": "fail" if i % 2 else "pass",
                                       "metric": "randomization_rho_abs", "threshold": 0.5,
                                       "direction": "below"}},
    }


def test_randomisation_chart_of_25_methods_has_25_distinct_lines(tmp_path, captured):
    names = [f"m{i}" for i in range(24)] + ["_private$\\frac{$"]
    cards = {n: _cascade_card(i, EVIL_CLASSES) for i, n in enumerate(names)}
    cards["random"] = _cascade_card(1, EVIL_CLASSES)

    path = score_charts.randomisation_figure(cards, tmp_path / "randomisation.png", {"random"})

    assert path is not None and _is_png(path)
    raw, absolute = captured[0].axes[:2]
    lines = absolute.get_legend().get_lines()
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(lines) == len(styles) == 26
    legend = [t.get_text() for t in absolute.get_legend().get_texts()]
    assert legend[24] == "_private$\\frac{$"  # listed although it starts with "_", not parsed
    assert legend[1] == "m1 (fails)" and legend[0] == "m0"
    assert legend[-1] == "random (control) (fails)"
    assert lines[-1].get_color() in charts.CONTROL_COLOURS  # the control is grey
    assert lines[-1].get_color() not in {ln.get_color() for ln in lines[:-1]}
    for ax in (raw, absolute):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["trained", *(printable(c) for c in EVIL_CLASSES)]
    assert [line.get_ydata()[1] for line in absolute.get_lines()[:1]] == [pytest.approx(0.95)]


def test_faithfulness_chart_draws_method_names_literally_and_controls_grey(tmp_path, captured):
    names = ["$\\frac{$", "a_b^c", "\x1b[31mred", "random"]
    cards = {n: {"metrics": {"road_combined": _interval(0.1), "deletion": _interval(0.4),
                             "insertion": _interval(0.6), "deletion_random": _interval(0.45)}}
             for n in names}

    path = score_charts.faithfulness_figure(cards, tmp_path / "faithfulness.png", {"random"})
    assert _is_png(path)
    axes = captured[0].axes
    assert [ax.get_title().splitlines()[0] for ax in axes] == [
        "ROAD combined (higher is better)", "Deletion AUC (lower is better)",
        "Insertion AUC (higher is better)"]
    ticks = axes[0].get_yticklabels()
    assert [t.get_text() for t in ticks] == [printable(n) for n in names[:3]] + ["random (control)"]
    assert matplotlib.colors.to_hex(ticks[-1].get_color()) == charts.RANDOM_COLOUR
    assert score_charts.faithfulness_figure({"x": {"metrics": {}}}, tmp_path / "none.png") is None


def test_road_curves_give_every_method_and_control_its_own_line(tmp_path, captured):
    names = [f"method-{i}" for i in range(12)]
    road = {"percentiles": [10.0, 50.0, 90.0], "morf_curve": [0.5, 0.3, None],
            "lerf_curve": [0.6, 0.7, 0.8]}
    cards = {n: {"road": road} for n in [*names, "random", "sobel", "center"]}

    controls = {"random", "sobel", "center"}
    path = score_charts.road_curves_figure(cards, tmp_path / "road.png", controls)

    assert path is not None and _is_png(path)
    morf, lerf = captured[0].axes[:2]
    lines = lerf.get_legend().get_lines()
    assert len({(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}) == 15
    assert {ln.get_color() for ln in lines[-3:]} <= set(charts.CONTROL_COLOURS)
    assert [t.get_text() for t in lerf.get_legend().get_texts()][-3:] == [
        "random (control)", "sobel (control)", "center (control)"]
    assert len(morf.get_lines()) == 15


def test_literal_text_turns_off_mathtext_for_its_block_only():
    assert matplotlib.rcParams["text.parse_math"]
    with literal_text():
        assert not matplotlib.rcParams["text.parse_math"]
        assert not matplotlib.rcParams["text.usetex"]
    assert matplotlib.rcParams["text.parse_math"]
