"""report.write_report writes a readable, self-consistent report: md, html and PNGs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wdscale.study.analysis.study_analysis import analyze
from wdscale.study.report.study_report import (
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = 10 ** np.arange(-5, 0 + 1e-9, 0.5)


def small_study() -> pd.DataFrame:
    """Two λ-rules (one drifting, one flat), one τ-rule whose optimum leaves the grid,
    a diverged tail and one failed run; 3 sizes × 11 settings × 2 seeds."""
    r = np.random.default_rng(1)
    rules = {"indep": ("lambda", 1e-3, 1.0), "flat": ("lambda", 3e-3, 0.0), "tau_rule": ("tau", 3e-2, 3.0)}
    rows = []
    for rule, (name, c, k) in rules.items():
        for size in (16, 32, 64):
            for s in GRID:
                for seed in (0, 1):
                    d2 = (np.log(s) - np.log(c * (size / 16) ** k)) ** 2
                    rows.append(
                        dict(
                            task="toy",
                            optimizer="sgd",
                            rule=rule,
                            size_axis="width",
                            size=size,
                            setting=float(s),
                            setting_name=name,
                            seed=seed,
                            status="ok",
                            val_loss=1 + 0.05 * d2 + 0.003 * r.standard_normal(),
                            val_acc=0.9 - 0.01 * d2,
                            wall_time=3.0,
                            steps=10,
                            batch_size=4,
                        )
                    )
    df = pd.DataFrame(rows)
    tail = (df["rule"] == "flat") & (df["setting"] >= 0.3)
    df.loc[tail, ["status", "val_loss"]] = ["diverged", np.nan]
    df.loc[0, "status"] = "failed"
    return df


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple:
    runs = small_study()
    out = tmp_path_factory.mktemp("report") / "nested" / "dir"  # created on demand
    files = write_report(runs, out, title="toy study", analysis=analyze(runs, n_boot=500))
    return runs, out, files


def test_writes_all_files(report):
    _, out, files = report
    assert files["md"] == out / "report.md" and files["html"] == out / "report.html"
    pngs = {k for k in files if k.endswith(".png")}
    # one loss-vs-setting figure per series, one drift figure per (task, optimizer, axis)
    assert pngs == {
        "figures/curves_toy_sgd_flat_width.png",
        "figures/curves_toy_sgd_indep_width.png",
        "figures/curves_toy_sgd_tau_rule_width.png",
        "figures/drift_toy_sgd_width.png",
    }
    for rel, path in files.items():
        assert path.is_file() and path.stat().st_size > 0
        if rel.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_MAGIC
            assert path.stat().st_size > 10_000  # a real plot, not an empty canvas


def test_markdown_content(report):
    runs, out, _ = report
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# toy study")
    for rule in ("indep", "flat", "tau_rule"):
        assert f"| toy | sgd | width | {rule} |" in md  # verdict row and per-size rows
        assert len(re.findall(rf"\| {rule} \| (16|32|64) \|", md)) == 3
    assert ("Runs: 198 — 185 ok, 0 did not learn and 12 diverged (counted as infinite loss), 1 failed (excluded)") in md
    assert "Seeds: 2 (0, 1)" in md and "16, 32, 64" in md
    assert "Total wall time: 9 min 54 s" in md
    assert "transfers" in md and "grows with width" in md
    assert "inconclusive: optimum at grid edge" in md and "EDGE" in md
    assert "τ\\*" in md  # τ-rules talk about τ*, escaped for markdown
    assert "## How to read this" in md
    # it ends with the advice for 4× and 16× the largest width, predictions
    advice = md[md.index("## Advice for the next sizes") :]
    assert "| width 256 | indep | λ " in advice and "| width 1024 | flat | λ " in advice
    assert "PREDICTION" in advice and "more than 4× beyond" in advice and "Recommended at width 256" in advice
    # indep's λ* doubles per doubling of width from 1e-3 at 16: 1.6e-2 at 256, well inside its interval
    row = next(line for line in advice.splitlines() if line.startswith("| width 256 | indep |"))
    pred, lo, hi = map(float, re.findall(r"λ ([\d.e+-]+) \[([\d.e+-]+), ([\d.e+-]+)\]", row)[0])
    assert lo <= 1.6e-2 <= hi and pred == pytest.approx(1.6e-2, rel=0.3)
    # measured regret with its interval and the detectable threshold; fitted columns say so
    assert "| transfer regret, measured [90% CI] | detectable regret | noise (seed s.e.m.) |" in md
    assert "| drift exponent (fit) |" in md and "| optimum (fit) | best loss (trained) |" in md
    assert "| 0.0% [0.0%, 0.0%] |" in md  # flat: the same grid point at both ends
    assert "-0.00" not in md
    assert "with 3 seeds a setting's mean takes only 10 distinct values" in md
    # cost of finding λ: 11 proxy runs of 3 s + one target run, vs 11 target runs (one seed)
    assert "| toy | sgd | indep | width 16 → 64 | 11 |" in md and "| 36 / 33 | ×0.9 |" in md
    assert "saved (params × samples)" not in md  # a toy task's parameter count is unknown
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file()


def test_the_report_opens_with_its_answer_and_reads_before_its_numbers(report):
    _, out, _ = report
    md = (out / "report.md").read_text(encoding="utf-8")
    # two plain sentences right under the title: which rule, how sure, why
    opening = md.split("\n\n")[1]
    assert opening.startswith("Use flat") and ("Sure: " in opening or "Not sure" in opening)
    assert "90 % interval" in opening
    # the glossary comes before the first table of numbers, not at the end
    assert md.index("## How to read this") < md.index("## Verdict per rule") < md.index("## Advice for the next sizes")
    # one value per number: the flat rule's regret interval as its verdict words print it, in the table and
    # the opening (the table once printed 2 decimals and the words 1, from another bootstrap stream)
    row = next(line for line in md.splitlines() if line.startswith("| toy | sgd | width | indep |"))
    interval = re.search(r"(\d+\.\d%) \[(\d+\.\d%), (\d+\.\d%)\]", row)
    assert interval and f"transfer regret {interval[1]} [{interval[2]}, {interval[3]}]" in row


def test_ties_in_the_recommendation_are_said_in_the_report():
    from wdscale.study.analysis.advise import Advice
    from wdscale.study.report.study_report import _opening

    advice = Advice((), "width", 256, "sum", True, "sum: a tie within seed noise on measured transfer regret", "", "")
    table = pd.DataFrame({"rule": ["sum", "mup"], "regret": [0.0, 0.0], "regret_lo": [0.0, 0.0],
                          "regret_hi": [0.01, 0.02]})  # fmt: skip
    text = _opening(advice, table).text
    assert text.startswith("Use sum: of the 2 rules tried") and "Sure: a tie within seed noise" in text
    assert _opening(None, None).text.startswith("No rule can be recommended from this study yet.")


def test_html_is_standalone_and_images_resolve(report):
    _, out, files = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "</html>" in page
    assert page.count("<table>") == 4 and "<th>verdict</th>" in page  # verdicts, optima, cost, advice
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 4
    for src in srcs:
        assert not Path(src).is_absolute() and (out / src).is_file()
    assert "<td>tau_rule</td>" in page
    text = re.sub(r"<style>.*</style>", "", page, flags=re.S)
    assert "`" not in text  # no markdown in the HTML: `wdscale advise` is <code>wdscale advise</code>
    assert "<code>wdscale advise DIR" in page


def test_no_cost_table_on_the_batch_size_axis(tmp_path):
    runs = small_study().assign(size_axis="batch_size")
    write_report(runs, tmp_path, analysis=analyze(runs, n_boot=10))
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Verdict per rule" in md and "Cost of finding the setting" not in md


def test_runs_analysis_itself_when_not_given(tmp_path):
    runs = small_study()
    files = write_report(runs[runs["rule"] != "tau_rule"], tmp_path)
    assert files["md"] == tmp_path / "report.md" and files["md"].is_file()
    assert "figures/drift_toy_sgd_width.png" in files


def test_renderers_share_one_content():
    blocks = [
        Heading("T <1>", 1),
        Paragraph("λ* and λ* | x"),
        Bullets(("a", "b")),
        Table(("h1", "h2"), (("x|y", "1"),)),
        Figure("figures/a.png", "alt", "cap"),
    ]
    md = to_markdown(blocks)
    assert md.splitlines()[0] == "# T <1>"
    assert "λ\\* and λ\\* | x" in md and "- a\n- b" in md
    assert "| x\\|y | 1 |" in md and "![alt](figures/a.png)" in md
    page = to_html(blocks, "T")
    assert "<h1>T &lt;1&gt;</h1>" in page and "<li>a</li>" in page
    assert "<td>x|y</td>" in page and '<img src="figures/a.png" alt="alt">' in page


def test_report_and_advise_survive_failed_and_stepless_runs(tmp_path):
    """Failed runs that leave a size too few settings, and `ok` runs of 0 steps (stored before such
    runs failed) under a cosine schedule: the report and advise read the rest, saying what was left out."""
    from wdscale.study.analysis.advise import advise

    runs = small_study().assign(schedule="cosine", warmup=0.1, final_lr=0.1, decay_fraction=0.2, n_params=100)
    # every setting but two failed for `indep` at width 32
    runs.loc[(runs["rule"] == "indep") & (runs["size"] == 32) & (runs["setting"] > 5e-5), "status"] = "failed"
    runs.loc[runs["rule"] == "flat", "steps"] = 0  # a loop that never stepped, stored ok by older code
    runs = runs[runs["rule"] != "tau_rule"]
    write_report(runs, tmp_path, title="t")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (
        "left out, too few settings after failed runs: indep at width 32 (2 of its settings left by failed runs)" in md
    )
    assert "optimizer steps (median run)" in md
    assert "indep" in str(advise(runs, 256))


def test_an_interval_end_is_printed_to_the_digit_its_monte_carlo_margin_leaves():
    from wdscale.study.report.study_report import end_decimals, interval_end_text

    # a unit of the last digit at least four margins: another panel's median lands within it
    assert [end_decimals(m, 2) for m in (0.0, np.nan, 0.0025, 0.003, 0.025, 0.03, 0.25, 2.0, 20.0)] == [
        2, 2, 2, 1, 1, 0, 0, -1, -2,
    ]  # fmt: skip
    assert interval_end_text(0.4151, 0.0, 2) == "0.42"
    assert interval_end_text(-1.1073, 0.07, 2) == "−1"
    assert interval_end_text(8.9546, 0.2, 1) == "9"
    assert interval_end_text(8.9546, 0.001, 1, 100) == "895"
    assert interval_end_text(8.9546, 0.2, 1, 100) == "900"
    # a digit coarser than the end itself: a lower end above 0 under every stream reads "> 0", any
    # other end told from 0 keeps its leading digit and says the streams' range
    assert interval_end_text(0.0013, 0.0006, 1, 100, lower=True) == "> 0"
    assert interval_end_text(0.70, 0.078, 1, 100) == "70 ± 20"
    assert interval_end_text(8.36, 0.275, 1, 100) == "840 ± 60"
    assert interval_end_text(0.30, 0.045, 1, 100, lower=True) == "> 0"
    assert interval_end_text(-0.001, 0.0004, 1, 100, lower=True) == "−0.10 ± 0.08"
    assert interval_end_text(0.0013, 0.0013, 1, 100, lower=True) == "0"  # some stream may read 0
    assert interval_end_text(-0.0002, 0.0, 1, 100) == "0.0"
    assert interval_end_text(np.inf, 0.0, 1) == "–"
