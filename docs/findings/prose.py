"""Numbers in findings.md's prose (and the README's answer) tied to the generated tables.

A sentence's number is written as a reference to the table cell it restates:

    lost <!--ref joint_data_frontier | lr and setting; per_sample | gap-->47.7 % [7.2, 57.3]<!--/ref-->

BLOCK (a `<!-- begin:BLOCK -->` table of findings.md) | ROW (`;`-separated pieces, all in one row's
cells, in one row only) | COLUMN (a piece of one header, `#k` after it: from the cell's k-th number).
The text between the markers is the cell's numbers, each rounded to as many decimals as the text
shows (so a sentence may say 48 % where the table says 47.7 %). `summarize.py` rewrites every
reference from the tables it has just generated (`fill_refs`); tests/test_findings.py checks them
(`check_refs`) and that the prose of the covered sections holds no measured number outside a
reference or a generated block (`bare_numbers`). No wdscale import: the test reads text only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REF = re.compile(r"<!--ref (?P<spec>[^>]*?)-->(?P<text>.*?)<!--/ref-->", re.S)
BLOCK = re.compile(r"<!-- begin:(?P<name>[\w-]+) -->\n(?P<body>.*?)\n<!-- end:(?P=name) -->", re.S)
# a number as the tables print it: −1.25, 4.8e+12, 1,550 (a minus sign or a hyphen)
NUMBER = re.compile(r"(?<![\w.])[−-]?\d{1,3}(?:,\d{3})+(?![\d])|(?<![\w.])[−-]?\d+(?:\.\d+)?(?:e[+−-]?\d+)?(?![\w])")


@dataclass(frozen=True)
class Table:
    """One generated markdown table: its header cells and its rows' cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _cells(line: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in line.strip().strip("|").split("|"))


def tables(doc: str) -> dict[str, list[Table]]:
    """Every generated block's tables (a block may hold several, one after another)."""
    out: dict[str, list[Table]] = {}
    for m in BLOCK.finditer(doc):
        found, lines = [], [ln for ln in m.group("body").splitlines()]
        i = 0
        while i < len(lines):
            if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
                header, i = _cells(lines[i]), i + 2
                rows = []
                while i < len(lines) and lines[i].startswith("|"):
                    rows.append(_cells(lines[i]))
                    i += 1
                found.append(Table(header, tuple(rows)))
            else:
                i += 1
        out[m.group("name")] = found
    return out


def numbers(text: str) -> list[tuple[float, int]]:
    """The numbers in a text, each with the decimals it is written to."""
    out = []
    for m in NUMBER.finditer(text):
        s = m.group().replace("−", "-").replace(",", "")
        mantissa = s.split("e")[0]
        out.append((float(s), len(mantissa.split(".")[1]) if "." in mantissa else 0))
    return out


def resolve(spec: str, found: dict[str, list[Table]]) -> tuple[list[float], str]:
    """The numbers a reference points at, from its cell on; ValueError naming what does not resolve."""
    parts = [p.strip() for p in spec.split("|")]
    if len(parts) != 3:
        raise ValueError(f"reference {spec!r}: want 'BLOCK | ROW | COLUMN'")
    block, row, column = parts
    start = 1
    if "#" in column:
        column, k = column.rsplit("#", 1)
        column, start = column.strip(), int(k)
    if block not in found:
        raise ValueError(f"reference {spec!r}: no generated block {block!r}")
    pieces = [p.strip() for p in row.split(";") if p.strip()]
    hits = []
    for t in found[block]:
        cols = [j for j, h in enumerate(t.header) if column in h]
        for r in t.rows:
            if cols and all(any(p in c for c in r) for p in pieces):
                hits.append(r[cols[0]])
    if len(hits) != 1:
        raise ValueError(f"reference {spec!r}: {len(hits)} cells match (want one)")
    values = [v for v, _ in numbers(hits[0])][start - 1 :]
    return values, hits[0]


def check_refs(doc: str, found: dict[str, list[Table]]) -> list[str]:
    """What disagrees: each reference whose text is not its cell's numbers at the text's precision."""
    problems = []
    for m in REF.finditer(doc):
        spec, text = m.group("spec"), m.group("text")
        try:
            values, cell = resolve(spec, found)
        except ValueError as e:
            problems.append(str(e))
            continue
        said = numbers(text)
        if not said or len(said) > len(values):
            problems.append(f"{text!r} ({spec}): {len(said)} numbers, the cell {cell!r} has {len(values)}")
            continue
        for (v, d), truth in zip(said, values):
            if abs(v - truth) > 0.5 * 10.0**-d + 1e-9:
                problems.append(f"{text!r} says {v:g} where its table says {cell!r} ({spec})")
                break
    return problems


def fill_refs(doc: str, found: dict[str, list[Table]]) -> str:
    """Every reference's numbers rewritten from its cell, each to the decimals the text shows."""

    def one(m: re.Match) -> str:
        spec, text = m.group("spec"), m.group("text")
        values, _ = resolve(spec, found)
        it = iter(values)

        def sub(n: re.Match) -> str:
            truth = next(it)
            if "," in n.group():
                return f"{round(truth):,}"
            mantissa = n.group().split("e")[0]
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            return f"{truth:.{decimals}f}".replace("-", "−")

        return f"<!--ref {spec}-->{NUMBER.sub(sub, text)}<!--/ref-->"

    return REF.sub(one, doc)


def bare_numbers(prose: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Measured-looking numbers (decimals, thousands, percents, ×factors) in prose outside a
    reference, a generated block, code and links; `allowed` holds the design constants the prose
    may state (the 90 % of an interval, a published exponent)."""
    text = BLOCK.sub("", REF.sub("", prose))
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    out = []
    for m in re.finditer(
        r"×\d[\d.,]*|[−-]?\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?\s?%|\^[−-]?\d[\d.]*|\d+–\d+\s?%", text
    ):
        if m.group().strip() not in allowed:
            out.append(m.group())
    return out
