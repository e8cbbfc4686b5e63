"""The cards of the report page about the attribution methods: the misclassified gallery, the
maps side by side, and their faithfulness and sanity scores.

Every value that comes from a run or a plugin (class and method names, scale texts) passes
through :func:`xaikit.report.html.esc`. A method that fails the cascading randomisation check
(Adebayo et al. 2018) is marked with a badge wherever it appears, and explained once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaikit.report.html import Section, esc, figure, img_tag, table
from xaikit.report.sections import value_html

RANDOMIZATION_PAPER = "Adebayo et al., “Sanity Checks for Saliency Maps”, NeurIPS 2018"


@dataclass(frozen=True)
class GalleryItem:
    """One misclassified test image: its index, classes, confidence and two PNGs."""

    test_id: int
    true_class: str
    predicted_class: str
    confidence: float
    input_png: bytes
    overlay_png: bytes | None


@dataclass(frozen=True)
class GridRow:
    """One explained test image: its index, classes, confidence, the input PNG and one overlay
    PNG per method."""

    test_id: int
    true_class: str
    predicted_class: str
    confidence: float
    input_png: bytes
    map_pngs: Mapping[str, bytes]


def gallery_section(
    items: Sequence[GalleryItem], method: str | None, total_wrong: int, figure_png: Path | None
) -> Section:
    """Misclassified test images, each with the overlay of ``method`` for the predicted class."""
    if total_wrong == 0:
        return Section(
            "misclassified",
            "Misclassified images",
            "<p>The model classifies every test image correctly.</p>",
        )
    tiles = []
    for item in items:
        images = img_tag(item.input_png, f"misclassified test image {item.test_id}")
        if item.overlay_png is not None:
            images += img_tag(
                item.overlay_png, f"{method} map of misclassified test image {item.test_id}"
            )
        tiles.append(
            f'<div class="tile"><div class="pair">{images}</div><div class="caption">'
            f'#{item.test_id}: <span class="true">{esc(item.true_class)}</span> → '
            f'<span class="pred">{esc(item.predicted_class)}</span> '
            f"({item.confidence:.0%})</div></div>"
        )
    how = (
        f"Left: the image; right: its <strong>{esc(method)}</strong> map for the predicted class, "
        f"over the image (jet colours, red = most evidence)."
        if method
        else "No CAM method is registered."
    )
    body = (
        f"<p>{len(items)} of {total_wrong:,} misclassified test images: true class → predicted "
        "class "
        f'(confidence). {how}</p><div class="gallery">{"".join(tiles)}</div>'
    )
    if figure_png:
        body += f'<p class="note">The same gallery as a figure: <code>{esc(figure_png)}</code></p>'
    return Section("misclassified", "Misclassified images", body)


def explanations_section(
    rows: Sequence[GridRow],
    grid_png: Path | None,
    methods: Sequence[str],
    method_info: Mapping[str, Mapping[str, Any]],
    misclassified_only: bool,
    skipped: Mapping[str, str] | None = None,
) -> Section:
    """The methods side by side on the same images (an HTML grid), what each map means, and
    the methods that were skipped because they cannot explain this model (with the reason)."""
    which = "misclassified test images" if misclassified_only else "test images"
    head = "<th>image</th><th>input</th>" + "".join(
        f"<th>{esc(m)}"
        + (
            '<br><span class="badge fail">fails sanity</span>'
            if fails_sanity(method_info.get(m, {}))
            else ""
        )
        + "</th>"
        for m in methods
    )
    body_rows = []
    for row in rows:
        wrong = row.true_class != row.predicted_class
        label = (
            f'<span class="true">{esc(row.true_class)}</span><br>→ '
            f'<span class="{"pred" if wrong else "true"}">{esc(row.predicted_class)}</span><br>'
            f'<span class="muted">{row.confidence:.0%} · #{row.test_id}</span>'
        )
        cells = "".join(
            f"<td>{img_tag(row.map_pngs[m], f'{m} map of test image {row.test_id}')}</td>"
            for m in methods
        )
        body_rows.append(
            f'<tr><td class="label">{label}</td>'
            f"<td>{img_tag(row.input_png, f'test image {row.test_id}')}</td>{cells}</tr>"
        )
    grid = (
        f'<div class="table-wrap fit"><table class="xgrid"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body_rows)}</tbody></table></div>"
    )
    info_rows = [
        (
            f"<strong>{esc(m)}</strong>",
            value_html(method_info.get(m, {}).get("layer")),
            "signed" if method_info.get(m, {}).get("signed") else "≥ 0",
            value_html(method_info.get(m, {}).get("scale")),
        )
        for m in methods
    ]
    body = (
        f"<p>{len(methods)} methods on the same {len(rows)} {which}, each explaining the "
        "predicted class "
        "(true → predicted, confidence; red: wrong). Non-negative maps: jet colours (blue low, "
        "red high); "
        f"signed maps: blue negative, red positive, faded where near 0.</p>{grid}"
    )
    if grid_png:
        body += f'<p class="note">The same grid as a figure: <code>{esc(grid_png)}</code></p>'
    body += "<h3>What each map is</h3>" + table(
        ["method", "layer", "sign", "scale of the map"], info_rows
    )
    if skipped:
        items = "".join(f"<li><strong>{esc(m)}</strong>: {esc(why)}</li>" for m, why in skipped.items())
        body += (
            '<div class="callout info"><strong>Skipped</strong>: these methods cannot explain '
            f"this model and are left out of the page.<ul>{items}</ul></div>"
        )
    return Section("explanations", "Explanations side by side", body)


def _stacked(
    score: Mapping[str, float] | None, random: Mapping[str, float] | None = None, digits: int = 3
) -> str:
    """A table cell: the mean, its interval below, and the random map's mean below that."""
    if not score:
        return "–"
    cell = (
        f'{score["mean"]:.{digits}f}<div class="interval">'
        f"[{score['low']:.{digits}f}, {score['high']:.{digits}f}]</div>"
    )
    if random:
        cell += f'<div class="interval">random {random["mean"]:.{digits}f}</div>'
    return cell


def fails_sanity(score: Mapping[str, Any]) -> bool:
    """Whether a method's score dict records a failed randomisation check."""
    rnd = score.get("randomization")
    return isinstance(rnd, Mapping) and not rnd.get("passes", True)


def _sanity_cell(score: Mapping[str, Any]) -> tuple[str, str]:
    rnd = score.get("randomization")
    if not rnd:
        return "–", '<span class="badge na">not run</span>'
    badge = (
        '<span class="badge pass">passes</span>'
        if rnd.get("passes")
        else '<span class="badge fail">fails sanity check</span>'
    )
    return _stacked(rnd.get("rho_final"), digits=2), badge


def scores_section(
    scores: Mapping[str, Mapping[str, Any]],
    faithfulness_png: Path | None,
    randomisation_png: Path | None,
    n_images: int,
    provenance: str,
) -> Section:
    """Faithfulness (deletion/insertion AUC vs a random map), sanity (randomisation rho),
    IG completeness gap and seconds per image of each method; failing methods flagged."""
    rows = []
    callouts: list[str] = []
    failing: list[str] = []
    for name, s in scores.items():
        rho, badge = _sanity_cell(s)
        rows.append(
            (
                f"<strong>{esc(name)}</strong>",
                _stacked(s.get("deletion"), s.get("deletion_random")),
                _stacked(s.get("insertion"), s.get("insertion_random")),
                rho,
                badge,
                _stacked(s.get("completeness_gap")),
                f"{s['seconds_per_image']:.4f}" if "seconds_per_image" in s else "–",
            )
        )
        if fails_sanity(s):
            failing.append(
                f"<strong>{esc(name)}</strong> (mean |ρ| = "
                f"{float(s['randomization'].get('mean_abs_rho_final', float('nan'))):.2f})"
            )
    if failing:
        threshold = float(
            next(
                s["randomization"].get("threshold", 0.5) for s in scores.values() if fails_sanity(s)
            )
        )
        callouts.append(
            f'<div class="callout"><span class="badge fail">fails sanity check</span> '
            f"{', '.join(failing)} {'fails' if len(failing) == 1 else 'fail'} the randomisation "
            "check "
            f"(mean |ρ| ≥ threshold {threshold:.2f}). After every layer of the model is "
            "re-initialised at "
            f"random (cascading, from the output back), {'its' if len(failing) == 1 else 'their'} "
            "maps still "
            "rank pixels much like the trained model's maps. A map that barely depends on the "
            "learned weights "
            "shows the image's structure more than what the model learned: do not read it as an "
            "explanation "
            f"of this model ({esc(RANDOMIZATION_PAPER)}).</div>"
        )
    headers = [
        "method",
        "deletion AUC ↓",
        "insertion AUC ↑",
        "randomisation ρ",
        "sanity",
        "IG gap (logits)",
        "s / image",
    ]
    body = (
        f"<p>Scores over the same {n_images} test images; each is a mean with its 95% bootstrap "
        "interval "
        f"in brackets. {provenance}</p>"
        + table(headers, rows, numeric=[False, True, True, True, False, True, True])
        + "".join(callouts)
        + (
            figure(
                faithfulness_png, "deletion and insertion AUC of each method against a random map"
            )
            if faithfulness_png
            else ""
        )
        + (
            figure(
                randomisation_png,
                "Spearman rho of each method's maps as the model's layers are randomised",
                "Each line starts at 1 (the trained model against itself) and follows the rank "
                "correlation "
                "as layers are re-initialised from the output back.",
            )
            if randomisation_png
            else ""
        )
        + '<div class="callout info"><strong>How to read this.</strong> <em>Deletion</em>: the '
        "predicted "
        "class's probability while the pixels the map ranks highest are removed first; a faithful "
        "map "
        "makes it fall fast (low area). <em>Insertion</em>: the probability while those pixels "
        "are put back "
        "into a blank image first (high area is good). <em>random</em> is the same area for a "
        "random map: "
        "a method should beat it. <em>Randomisation ρ</em>: Spearman correlation between the maps "
        "of the "
        "trained and of a fully randomised model; near 0 is what a method that depends on the "
        "learned "
        "weights shows. <em>IG completeness gap</em>: how far integrated-gradients maps are from "
        "summing to "
        "f(x) − f(baseline). <em>s / image</em>: wall time of the maps alone.</div>"
    )
    return Section("scores", "Faithfulness and sanity", body)
