"""The HTML page of ``xaikit report``: one self-contained file in one light theme.

Images are embedded as base64 ``data:`` URIs; the page loads nothing else (no CDN, no web
fonts, no script). Every text that comes from data goes through :func:`esc`
(``html.escape`` with quotes), so a class name like ``<script>`` is shown, never run.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STYLE = """
:root {
  --bg: #f5f6f8; --card: #ffffff; --text: #1f2328; --muted: #59636e; --line: #e1e4e8;
  --accent: #2563eb; --accent-soft: #eef3fe; --good: #116329; --good-bg: #dafbe1;
  --bad: #a40e26; --bad-bg: #ffebe9; --warn-bg: #fff8c5; --radius: 10px;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
.container { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
header.hero { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 24px 28px; }
header.hero h1 { margin: 0 0 4px; font-size: 1.7rem; line-height: 1.25; letter-spacing: -0.01em; }
header.hero .subtitle { color: var(--muted); margin: 0 0 18px; overflow-wrap: anywhere; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.stat { background: var(--accent-soft); border-radius: 8px; padding: 10px 14px; }
.stat .value { font-size: 1.35rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.stat .label {
  color: var(--muted);
  font-size: 0.8rem;
  text-transform: uppercase;
  letter-spacing: 0.04em;
}
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 14px 28px; margin: 20px 0; }
nav.toc h2 {
  font-size: 0.8rem;
  text-transform: uppercase;
  letter-spacing: 0.06em;
  color: var(--muted);
  margin: 0 0 6px; }
nav.toc ol { margin: 0; padding-left: 1.3em; columns: 2 220px; column-gap: 32px; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 22px 28px 26px; margin: 20px 0; }
section.card > h2 {
  margin: 0 0 14px;
  font-size: 1.3rem;
  padding-bottom: 8px;
  border-bottom: 1px solid var(--line);
}
section.card h3 { font-size: 1.02rem; margin: 22px 0 8px; }
p { margin: 0.4em 0 0.8em; }
.muted, .note { color: var(--muted); }
.note { font-size: 0.88rem; }
code { font: 0.88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f0f2f5; padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
dl.facts {
  display: grid;
  grid-template-columns: minmax(120px, max-content) 1fr;
  gap: 6px 20px;
  margin: 0;
}
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.eval { display: grid; grid-template-columns: minmax(0, 1fr); gap: 0 32px; }
@media (min-width: 1000px) { .eval { grid-template-columns: minmax(0, 5fr) minmax(0, 6fr); } }
figure.matrix img { margin: 0 auto; }
.eval td:first-child { overflow-wrap: anywhere; min-width: 7em; }
.cols {
  display: grid;
  grid-template-columns: repeat(auto-fit, minmax(min(320px, 100%), 1fr));
  gap: 8px 32px;
}
.table-wrap {
  overflow-x: auto;
  margin: 8px 0 12px;
  border: 1px solid var(--line);
  border-radius: 8px;
}
.table-wrap.fit { display: inline-block; max-width: 100%; vertical-align: top; }
table {
  border-collapse: collapse;
  width: 100%;
  font-size: 0.9rem;
  font-variant-numeric: tabular-nums;
}
th, td {
  padding: 6px 12px;
  text-align: left;
  border-bottom: 1px solid var(--line);
  vertical-align: top;
}
th { background: #f0f2f5; font-weight: 600; white-space: nowrap; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.total td { font-weight: 600; background: #f0f2f5; }
.interval { color: var(--muted); font-size: 0.8em; }
table.xgrid { width: auto; }
table.xgrid th, table.xgrid td { padding: 6px 8px; text-align: center; vertical-align: middle; }
table.xgrid td.label { text-align: right; font-size: 0.82rem; line-height: 1.3; min-width: 130px; }
table.xgrid img {
  width: 88px;
  height: 88px;
  image-rendering: pixelated;
  border-radius: 4px;
  display: block;
  margin: 0 auto;
}
table.xgrid .true { color: var(--good); font-weight: 600; }
table.xgrid .pred { color: var(--bad); font-weight: 600; }
figure { margin: 10px 0 18px; }
figure img { display: block; max-width: 100%; height: auto; border-radius: 6px; }
figure.center img { margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.86rem; margin-top: 6px; }
details { margin: 8px 0; }
details > summary { cursor: pointer; color: var(--accent); font-weight: 550; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 0.78rem;
  font-weight: 650; white-space: nowrap; }
.badge.pass { background: var(--good-bg); color: var(--good); }
.badge.fail { background: var(--bad-bg); color: var(--bad); }
.badge.na { background: #eef0f3; color: var(--muted); }
.callout { border-left: 4px solid var(--bad); background: var(--bad-bg); padding: 10px 14px;
  border-radius: 0 8px 8px 0; margin: 10px 0; }
.callout.info { border-left-color: var(--accent); background: var(--accent-soft); }
.gallery {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(min(200px, 100%), 1fr));
  gap: 14px;
}
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: #fcfcfd; }
.tile .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 6px; }
.tile img {
  width: 100%;
  height: auto;
  image-rendering: pixelated;
  border-radius: 4px;
  display: block;
}
.tile .caption { font-size: 0.84rem; margin-top: 6px; line-height: 1.35; }
.tile .true { color: var(--good); font-weight: 600; }
.tile .pred { color: var(--bad); font-weight: 600; }
footer { color: var(--muted); font-size: 0.82rem; text-align: center; margin-top: 28px; }
@media (max-width: 640px) {
  .container { padding: 12px 10px 32px; }
  header.hero, section.card, nav.toc { padding: 16px; }
  dl.facts { grid-template-columns: 1fr; gap: 0 0; }
  dl.facts dd { margin-bottom: 6px; }
}
"""


CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page may load nothing from anywhere and run no script: only its inline style and
``data:`` images."""


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


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    footer: Sequence[str] | None = None,
) -> str:
    """A responsive table. Cells are HTML (escape data before); ``numeric`` right-aligns columns."""
    numeric = list(numeric or [False] * len(headers))

    def cells(values: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="num">{v}</{tag}>' if numeric[i] else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    head = f"<thead><tr>{cells([esc(h) for h in headers], 'th')}</tr></thead>"
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    foot = f'<tr class="total">{cells(footer, "td")}</tr>' if footer else ""
    return f'<div class="table-wrap"><table>{head}<tbody>{body}{foot}</tbody></table></div>'


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

    Args:
        title, subtitle: Plain text (escaped here).
        stats: ``(label, value)`` plain-text pairs shown as tiles under the title.
        sections: The cards, in order; the table of contents links to each.
        footer: HTML of the footer line.
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
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<div class="container">
<header class="hero">
<h1>{esc(title)}</h1>
<p class="subtitle">{esc(subtitle)}</p>
<div class="stats">{tiles}</div>
</header>
<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>{toc}</ol></nav>
{cards}
<footer>{footer}</footer>
</div>
</body>
</html>
"""
