"""One self-contained HTML page from chapters of tables, figures and prose.

A chapter is a value (:class:`Chapter`) built by a function that reads result records (``to_dict()``
output) and nothing else. Figures are embedded as base64 PNG, so the page has no external files.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aicompute.fileio import atomic_write_text

__all__ = ["Chapter", "table_html", "png_html", "render_report", "write_report", "fmt"]


@dataclass
class Chapter:
    """A titled section: HTML blocks (tables, figures, paragraphs) in order."""

    title: str
    blocks: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")

    def text(self, paragraph: str) -> "Chapter":
        self.blocks.append(f"<p>{html.escape(paragraph)}</p>")
        return self

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> "Chapter":
        self.blocks.append(table_html(columns, rows, caption))
        return self

    def figure(self, png: bytes, caption: str = "") -> "Chapter":
        self.blocks.append(png_html(png, caption))
        return self


def fmt(value: Any) -> str:
    """A table cell: integers with thousands separators, floats to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return "×".join(str(v) for v in value)
    return str(value)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    """Numbers align right, text left."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"<td{' class=num' if numeric else ''}>{html.escape(fmt(value))}</td>"


def png_html(png: bytes, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">{cap}</figure>'


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f2f2f2}td.num{text-align:right}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}nav li{margin:.2em 0}.meta{color:#666;font-size:.85em}
"""


def render_report(title: str, chapters: Sequence[Chapter], meta: dict[str, Any] | None = None) -> str:
    """The whole page as a string."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta_line = " · ".join(f"{k}: {v}" for k, v in (meta or {}).items())
    toc = "".join(f'<li><a href="#{c.anchor}">{html.escape(c.title)}</a></li>' for c in chapters)
    sections = "".join(
        f'<section id="{c.anchor}"><h2>{html.escape(c.title)}</h2>{"".join(c.blocks)}</section>'
        for c in chapters
    )
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class=meta>generated {stamp}{" · " + html.escape(meta_line) if meta_line else ""}</p>'
        f"<nav><ol>{toc}</ol></nav>{sections}</body></html>"
    )


def write_report(path: str | os.PathLike, title: str, chapters: Sequence[Chapter], **meta: Any) -> Path:
    """Render and write atomically."""
    return atomic_write_text(path, render_report(title, chapters, meta))
