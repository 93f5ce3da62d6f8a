"""Numbers in findings.md's prose (and the README's answer) tied to the generated tables.

A sentence's number is written as a reference to the table cell it restates:

    lost <!--ref joint_data_frontier | lr and setting; per_sample | gap-->47.7 % [7.2, 57.3]<!--/ref-->

BLOCK (a `<!-- begin:BLOCK -->` table of findings.md) | ROW (`;`-separated pieces, all in one row's
cells, in one row only) | COLUMN (a piece of one header, `#k` after it: from the cell's k-th number).
The text between the markers is the cell's numbers, each rounded to as many decimals as the text
shows (so a sentence may say 48 % where the table says 47.7 %); an interval end's Monte Carlo
range printed beside it ("70 ± 20") is not one of them. `summarize.py` rewrites every
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
# an interval end's Monte Carlo range printed beside it ("70 ± 20"): not a value a sentence restates
MARGIN = re.compile(r"\s?±\s?\d+(?:\.\d+)?")
# a number written as a bound: "> 0", an interval's lower end above 0 that its digit rounds to 0
BOUNDED = re.compile(rf"(?:> )?(?:{NUMBER.pattern})")


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
    """The numbers in a text, each with the decimals it is written to (an end's "± range" left out)."""
    out = []
    for m in NUMBER.finditer(MARGIN.sub("", text)):
        s = m.group().replace("−", "-").replace(",", "")
        mantissa = s.split("e")[0]
        out.append((float(s), len(mantissa.split(".")[1]) if "." in mantissa else 0))
    return out


def bounds(text: str) -> list[bool]:
    """Per number of `numbers(text)`: whether it is written as a bound ("> 0")."""
    text = MARGIN.sub("", text)
    return [text[max(0, m.start() - 2) : m.start()] == "> " for m in NUMBER.finditer(text)]


def resolve(spec: str, found: dict[str, list[Table]]) -> tuple[list[float], str]:
    """The numbers a reference points at, from its cell on; ValueError naming what does not resolve."""
    values, cell = resolve_written(spec, found)
    return [v for v, _ in values], cell


def resolve_written(spec: str, found: dict[str, list[Table]]) -> tuple[list[tuple[float, int]], str]:
    """As `resolve`, each number with the decimals its cell prints it to."""
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
    return numbers(hits[0])[start - 1 :], hits[0]


def check_refs(doc: str, found: dict[str, list[Table]]) -> list[str]:
    """What disagrees: each reference whose text is not its cell's numbers at the text's precision,
    states a number to more decimals than its cell prints (a precision the table does not have),
    or writes a bound ("> 0") as a number or a number as a bound."""
    problems = []
    for m in REF.finditer(doc):
        spec, text = m.group("spec"), m.group("text")
        try:
            values, cell = resolve_written(spec, found)
        except ValueError as e:
            problems.append(str(e))
            continue
        said = numbers(text)
        if not said or len(said) > len(values):
            problems.append(f"{text!r} ({spec}): {len(said)} numbers, the cell {cell!r} has {len(values)}")
            continue
        for (v, d), (truth, shown) in zip(said, values):
            if abs(v - truth) > 0.5 * 10.0**-d + 1e-9:
                problems.append(f"{text!r} says {v:g} where its table says {cell!r} ({spec})")
                break
            if d > shown:
                problems.append(f"{text!r} says {v:g} to {d} decimals where its table prints {cell!r} ({spec})")
                break
        else:
            if bounds(text) != bounds(cell)[len(bounds(cell)) - len(values) :][: len(said)]:
                problems.append(f"{text!r} and its table's {cell!r} differ in a bound '> 0' ({spec})")
    return problems


def fill_refs(doc: str, found: dict[str, list[Table]]) -> str:
    """Every reference's numbers rewritten from its cell, each to the decimals the text shows but
    never to more than the cell prints, and a bound ("> 0") where the cell has one."""

    def one(m: re.Match) -> str:
        spec, text = m.group("spec"), m.group("text")
        values, cell = resolve_written(spec, found)
        it = zip(values, bounds(cell)[len(bounds(cell)) - len(values) :])

        def sub(n: re.Match) -> str:
            try:
                (truth, shown), bound = next(it)
            except StopIteration:
                raise ValueError(f"reference {spec!r}: {text!r} has more numbers than its cell {cell!r}") from None
            number = n.group().removeprefix("> ")
            if "," in number:
                return f"{round(truth):,}"
            mantissa = number.split("e")[0]
            decimals = min(len(mantissa.split(".")[1]) if "." in mantissa else 0, shown)
            return "> " * bound + f"{truth:.{decimals}f}".replace("-", "−")

        return f"<!--ref {spec}-->{BOUNDED.sub(sub, MARGIN.sub('', text))}<!--/ref-->"

    return REF.sub(one, doc)


# what a measurement looks like in prose: a decimal, a percent, a factor (×2.6), an exponent
# (^0.33), a count grouped in thousands, a count of runs, core-seconds or minutes, and either end
# of a range of those ("15–17 %"), and a tally ("33 of 46")
MEASURED = re.compile(
    r"×\d+(?:[.,]\d+)*|\^[−-]?\d[\d.]*|[−-]?\d[\d,]*\.\d+(?:\s?%)?|\d{1,3}(?:,\d{3})+|\d+\s?%"
    r"|\d+(?=(?:\s?[–-]\s?\d+)?\s?(?:%|runs?\b|core-s|core-seconds|min\b))"
    r"|\d+ of (?:the )?\d+\b"
)
# a configuration, not a measurement: the number straight after the setting it names
# (lr 0.01, momentum 0.9, batch 128, width 1024, cosine to 10 %, warmup (5 %), lrs 0.003–0.3)
CONFIGURED = re.compile(r"(?:(?:\blrs?|momentum|batch|width|depth|n_train|context|cosine to)[\s-]|warmup \(|–\s?)$")


def bare_numbers(prose: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Measured-looking numbers (`MEASURED`) in prose outside a reference, a generated block, a
    heading, code and links, unless they configure the runs (`CONFIGURED`: the number right after
    the setting it names; a range's second end counts as its first does) or are in `allowed`, the
    method's own constants the prose may state (the 90 % of an interval, a published exponent)."""
    text = BLOCK.sub("", REF.sub("", prose))
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"^#.*$", "", text, flags=re.M)
    out = []
    last_configured = -1
    for m in MEASURED.finditer(text):
        before = text[max(0, m.start() - 12) : m.start()]
        if CONFIGURED.search(before) and not (before.rstrip().endswith("–") and last_configured < 0):
            last_configured = m.end()
            continue
        last_configured = -1
        if m.group().strip() not in allowed:
            out.append(m.group())
    return out
