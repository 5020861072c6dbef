"""Pieces every HTML page of the reports shares: style, escaping, tables, notes, images.

Every piece of text goes through ``esc``: scenario names, error codes and target
names come from files a user wrote.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MISSING = "—"

CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.meta { color: #555; margin-top: 0; }
.tables { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
table { border-collapse: collapse; } caption { text-align: left; font-weight: 600; }
th, td { padding: 0.2rem 0.8rem 0.2rem 0; text-align: left; border-bottom: 1px solid #e4e4e4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-style: italic; }
.ok { color: #007a4d; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.95rem; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Marked:
    """A cell value with a CSS class, for the one result a reader must not miss."""

    text: str
    css: str


Row = tuple[str | Marked, ...]


def table(caption: str, rows: Iterable[Row], head: tuple[str, ...] = ()) -> str:
    """A table of rows whose first cell is a label and the rest right-aligned values."""
    head_row = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(
        f"<tr><th>{esc(label)}</th>{''.join(cell(v) for v in values)}</tr>"
        for label, *values in rows
    )
    head_html = f"<tr>{head_row}</tr>" if head else ""
    return f"<table><caption>{esc(caption)}</caption>{head_html}{body}</table>"


def cell(value: str | Marked) -> str:
    if isinstance(value, Marked):
        return f'<td class="num {esc(value.css)}">{esc(value.text)}</td>'
    return f'<td class="num">{esc(value)}</td>'


def tables(*parts: str) -> str:
    return f'<div class="tables">{"".join(parts)}</div>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def figure(name: str, path: Path, caption: str) -> str:
    """A PNG embedded as a ``data:`` URI, so the page survives being sent on its own."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure id="{esc(name)}">'
        f'<img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, body: Iterable[str]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        *body,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def format_rmb(amount_fen: int) -> str:
    """Integer fen as RMB with two decimals, ``123456`` -> ``¥1,234.56``; no float on the way."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"


def pct(share: float | None) -> str:
    return MISSING if share is None else f"{share * 100:.1f}%"


def count(n: int | float | None) -> str:
    return MISSING if n is None else f"{int(n):,}"


def number(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"
