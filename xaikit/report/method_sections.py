"""The cards of the report page about the attribution maps: the misclassified gallery and the
maps side by side (the scores are in :mod:`xaikit.report.score_sections`).

Every value that comes from a run or a plugin (class and method names, scale texts) passes
through :func:`xaikit.report.html.esc`. A method that fails a sanity check of its scorecard
(randomisation, random logit, eMPRT), or whose check is uncertain, is marked with a badge over
its column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaikit.report.html import Section, esc, img_tag, table
from xaikit.report.sections import value_html
from xaikit.report.verdicts import checks_with, sanity_status


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


def sanity_badge(card: Mapping[str, Any]) -> str:
    """``<br>`` and a badge "fails sanity" or "sanity uncertain" (naming the checks in its
    tooltip) when the card's sanity verdicts say so; else nothing."""
    status = sanity_status(card)
    if status not in ("fail", "uncertain"):
        return ""
    checks = ", ".join(checks_with(card, status))
    text = "fails sanity" if status == "fail" else "sanity uncertain"
    return (f'<br><span class="badge {status}" title="{esc(status)}: {esc(checks)}">{text}</span>'
            f'<div class="interval">{esc(checks)}</div>')


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
        f"<th>{esc(m)}{sanity_badge(method_info.get(m, {}))}</th>" for m in methods
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
