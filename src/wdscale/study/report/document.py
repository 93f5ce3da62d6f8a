"""A report as a list of blocks (heading, paragraph, bullets, table, figure), rendered to markdown
and to HTML from the same list, so the two can never disagree."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple


@dataclass(frozen=True)
class Table:
    header: tuple
    rows: tuple  # of tuples of str


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the report
    alt: str
    caption: str = ""


Block = Union[Heading, Paragraph, Bullets, Table, Figure]


def _md_text(s: str) -> str:
    # "λ* … λ*" would otherwise turn into emphasis.
    return s.replace("\\", "\\\\").replace("*", "\\*")


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md_text(b.text)}")
        elif isinstance(b, Paragraph):
            out.append(_md_text(b.text))
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_text(i)}" for i in b.items))
        elif isinstance(b, Table):
            cell = lambda c: _md_text(str(c)).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(cell(h) for h in b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            fig = f"![{b.alt}]({b.src})"
            out.append(fig + (f"\n\n*{_md_text(b.caption)}*" if b.caption else ""))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _html_text(s: str) -> str:
    """Escaped text, its `code` spans as <code> (markdown's backticks are no markup in HTML)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(s))


def to_html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    t = _html_text
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{t(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{t(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{t(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{t(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{t(str(c))}</td>" for c in r) + "</tr>" for r in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Figure):
            cap = f"<figcaption>{t(b.caption)}</figcaption>" if b.caption else ""
            out.append(f'<figure><img src="{e(b.src)}" alt="{e(b.alt)}">{cap}</figure>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(out) + "\n</body>\n</html>\n"
    )
