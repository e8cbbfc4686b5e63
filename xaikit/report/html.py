"""The HTML page of ``xaikit report``: one self-contained file in one light theme.

Images are embedded as base64 ``data:`` URIs; the page loads nothing else (no CDN, no web
fonts, no script). Every text that comes from data goes through :func:`esc`
(``html.escape`` with quotes), so a class name like ``<script>`` is shown, never run.

The style sheet and the page skeleton are package data, ``templates/style.css`` and
``templates/page.html``, read with :mod:`importlib.resources`. The skeleton is a
:class:`string.Template` filled with :meth:`~string.Template.substitute` (a missing key is an
error, never a blank), and every value put into it is HTML built and escaped here.
"""

from __future__ import annotations

import base64
import functools
import html
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

TEMPLATES_PACKAGE = "xaikit.report"
"""The package whose ``templates/`` folder holds ``style.css`` and ``page.html``."""

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page may load nothing from anywhere and run no script: only its inline style and
``data:`` images."""


@functools.cache
def template_text(name: str) -> str:
    """The text of ``templates/<name>`` shipped in the package (read once, then cached).

    Args:
        name: File name inside ``xaikit/report/templates``, e.g. ``"style.css"``.

    Raises:
        FileNotFoundError: The file is not installed (the package data was left out).
    """
    return (resources.files(TEMPLATES_PACKAGE) / "templates" / name).read_text(encoding="utf-8")


def page_style() -> str:
    """The page's CSS, from ``templates/style.css``; it is inlined in a ``<style>`` element.

    Raises:
        ValueError: The sheet would close its ``<style>`` element early.
    """
    css = template_text("style.css")
    if "</style" in css.lower():
        raise ValueError("templates/style.css must not contain '</style'")
    return css


def _attribute(value: str) -> str:
    """Escape ``&``, ``<``, ``>`` and ``"`` for a double-quoted attribute (``'`` stays readable)."""
    return html.escape(value, quote=False).replace('"', "&quot;")


def esc(value: Any) -> str:
    """HTML-escape any value's ``str`` (``&``, ``<``, ``>``, ``"`` and ``'``)."""
    return html.escape(str(value), quote=True)


def png_data_uri(png: bytes | Path) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes or of a PNG file."""
    data = Path(png).read_bytes() if isinstance(png, Path) else png
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img_tag(png: bytes | Path, alt: str, css_class: str = "") -> str:
    """An ``<img>`` with the PNG embedded; ``alt`` is escaped."""
    klass = f' class="{esc(css_class)}"' if css_class else ""
    return f'<img src="{png_data_uri(png)}" alt="{esc(alt)}"{klass}>'


def figure(png: Path, alt: str, caption: str = "", css_class: str = "") -> str:
    """A ``<figure>`` of an embedded PNG; ``caption`` is HTML (escape its data first)."""
    klass = f' class="{esc(css_class)}"' if css_class else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure{klass}>{img_tag(png, alt)}{cap}</figure>"


def table_head(
    headers: Sequence[str],
    numeric: Sequence[bool] | None = None,
    groups: Sequence[tuple[str, int]] | None = None,
) -> str:
    """The ``<thead>`` of a table: plain-text ``headers`` (escaped here), right-aligned where
    ``numeric``, under an optional row of ``(plain-text label, columns spanned)`` ``groups``
    (an empty label leaves its columns ungrouped)."""
    numeric = list(numeric or [False] * len(headers))
    top = ""
    if groups:
        top = "<tr>" + "".join(
            f'<th colspan="{int(span)}" class="{"group" if label else "blank"}">{esc(label)}</th>'
            for label, span in groups
        ) + "</tr>"
    cells = "".join(
        f'<th class="num">{esc(h)}</th>' if numeric[i] else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    return f"<thead>{top}<tr>{cells}</tr></thead>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    footer: Sequence[str] | None = None,
    row_classes: Sequence[str] | None = None,
    css_class: str = "",
) -> str:
    """A responsive table. Cells are HTML (escape data before); ``numeric`` right-aligns columns.

    Args:
        headers: Plain-text column headings (escaped here).
        rows: HTML cells, one sequence a row.
        numeric: Per column, whether it is right-aligned.
        footer: HTML cells of a closing total row.
        row_classes: A CSS class per row (``""`` for none).
        css_class: A CSS class of the ``<table>``.
    """
    numeric = list(numeric or [False] * len(headers))

    def cells(values: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="num">{v}</{tag}>' if numeric[i] else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    rows = list(rows)
    klasses = list(row_classes or [""] * len(rows))
    body = "".join(
        (f'<tr class="{esc(k)}">' if k else "<tr>") + f"{cells(r, 'td')}</tr>"
        for r, k in zip(rows, klasses)
    )
    foot = f'<tr class="total">{cells(footer, "td")}</tr>' if footer else ""
    head = table_head(headers, numeric)
    klass = f' class="{esc(css_class)}"' if css_class else ""
    return f'<div class="table-wrap"><table{klass}>{head}<tbody>{body}{foot}</tbody></table></div>'


@dataclass(frozen=True)
class Section:
    """One card of the page: anchor id, heading (plain text) and body (HTML)."""

    anchor: str
    title: str
    body: str


def render_page(
    title: str,
    subtitle: str,
    stats: Sequence[tuple[str, str]],
    sections: Sequence[Section],
    footer: str = "",
) -> str:
    """The whole page: header with key numbers, table of contents, one card per section.

    The skeleton is ``templates/page.html`` with the CSS of ``templates/style.css`` inlined.

    Args:
        title: Plain text (escaped here), the ``<title>`` and the heading.
        subtitle: Plain text (escaped here) under the heading.
        stats: ``(label, value)`` plain-text pairs shown as tiles under the title.
        sections: The cards, in order; the table of contents links to each.
        footer: HTML of the footer line.

    Returns:
        The HTML document.

    Raises:
        KeyError: The template names a placeholder that is not filled here.
    """
    tiles = "".join(
        f'<div class="stat"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for label, value in stats
    )
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
    cards = "\n".join(
        f'<section class="card" id="{esc(s.anchor)}">\n'
        f"<h2>{esc(s.title)}</h2>\n{s.body}\n</section>"
        for s in sections
    )
    page = string.Template(template_text("page.html"))
    return page.substitute(
        content_security_policy=_attribute(CONTENT_SECURITY_POLICY),
        style=page_style(),
        title=esc(title),
        subtitle=esc(subtitle),
        tiles=tiles,
        toc=toc,
        cards=cards,
        footer=footer,
    )
