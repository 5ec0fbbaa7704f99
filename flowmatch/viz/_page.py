"""HTML building blocks of the run report: sections, inline figures, tables, escaped text.

Every piece of text goes through :func:`html.escape`; images become ``data:`` URIs, so a page
made of these blocks loads nothing from the network or the disk.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__: list[str] = []  # private to flowmatch.viz

MIME = {".png": "image/png", ".gif": "image/gif"}
"""The image formats a page embeds, by file suffix."""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1180px; padding: 0 1.2em 2em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.5em; margin: 1em 0 0.2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #ddd; }
nav { margin: 0.6em 0; font-size: 0.92em; }
nav a { margin-right: 0.9em; color: #3461a8; text-decoration: none; }
p.meta, p.note, figcaption, footer { color: #555; font-size: 0.9em; }
code { background: #f3f3f3; padding: 0.05em 0.3em; border-radius: 3px; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e6e6e6; text-align: right; }
th { background: #f6f6f6; }
td.text, th.text { text-align: left; }
details { margin: 0.5em 0; }
summary { cursor: pointer; color: #3461a8; font-size: 0.92em; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0.4em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
footer { margin-top: 2.5em; border-top: 1px solid #ddd; padding-top: 0.5em; }
"""


@dataclass(frozen=True)
class Section:
    """One part of the page: an anchor, a heading, and its HTML (already escaped)."""

    anchor: str
    title: str
    body: str


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def number(value: Any, fmt: str = ".4g") -> str:
    """A number in ``fmt`` (escaped text for anything else: a hand-edited file, None).

    Example:
        >>> number(0.123456, ".3f"), number(float("inf")), number(None), number(3.0, "d")
        ('0.123', 'inf', '-', '3.0')
        >>> number("<b>")
        '&lt;b&gt;'
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return esc("-" if value is None else value)
    if isinstance(value, float) and not math.isfinite(value):
        return esc(value)
    try:
        return esc(format(value, fmt))
    except ValueError:  # e.g. a float where an integer was expected
        return esc(value)


def image(data: bytes, mime: str, alt: str) -> str:
    """An ``<img>`` holding ``data`` as a ``data:`` URI."""
    uri = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{mime};base64,{uri}" alt="{esc(alt)}">'


def figure(data: bytes, mime: str, caption: str) -> str:
    """An image with its caption (also its alternative text)."""
    return f"<figure>{image(data, mime, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def file_figure(path: Path, caption: str) -> str:
    """:func:`figure` of an image file (PNG or GIF); an empty string if there is no file."""
    if not path.is_file():
        return ""
    return figure(path.read_bytes(), MIME[path.suffix.lower()], caption)


def figures(*items: str) -> str:
    """Figures side by side, wrapping on a narrow window."""
    return '<div class="figures">' + "".join(items) + "</div>"


def table(header: Iterable[str], rows: Iterable[Iterable[str]], *, text_columns: int = 1) -> str:
    """A table of cells that are already HTML (use :func:`esc` or :func:`number`).

    Args:
        header: the column names (plain text, escaped here).
        rows: the cells of each row.
        text_columns: how many leading columns hold text (left-aligned); numbers are right-aligned.
    """
    head = "".join(
        f'<th class="text">{esc(h)}</th>' if i < text_columns else f"<th>{esc(h)}</th>"
        for i, h in enumerate(header)
    )
    body = [
        "<tr>"
        + "".join(
            f'<td class="text">{c}</td>' if i < text_columns else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    ]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, meta: str, sections: list[Section], footer: str) -> str:
    """The whole document: a title, a line of facts, links to the sections, them, a footer."""
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{esc(s.anchor)}">\n<h2>{esc(s.title)}</h2>\n{s.body}\n</section>'
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{meta}\n<nav>{nav}</nav>\n{body}\n"
        f"<footer>{footer}</footer>\n</body>\n</html>\n"
    )
