"""Runs trained elsewhere: a table of runs imported into a study directory (`wdscale study import`)
gets a report and advice; bad rows are refused by line with nothing written; a re-import adds nothing."""

import csv
import math
import os

import pandas as pd
import pytest

from wdscale.cli import main
from wdscale.errors import WdscaleError
from wdscale.study.run.external import Fixed, import_runs
from wdscale.study.run.store import load_runs

SIZES = (64, 256, 1024)
# the optimum λ* = 0.01 at width 64, ∝ width^-1/2: 0.0025 at 1024, 0.00125 at 4096
SLOPE = -0.5


def optimum(size):
    return 0.01 * (size / 64) ** SLOPE


def sweep_rows():
    """2 seeds × the same 7 settings (0.01 × 2^k) at every size, each size's optimum inside; the
    loss a parabola in log λ about the optimum, seed 1 a little worse."""
    rows = []
    for size in SIZES:
        for k in range(-4, 3):
            wd = 0.01 * 2.0**k
            for seed in (0, 1):
                loss = 1 + 0.1 * math.log10(wd / optimum(size)) ** 2 + 0.01 * seed
                rows.append(
                    {"size": size, "lr": 1e-3, "weight_decay": wd, "seed": seed, "val_loss": loss, "steps": 500}
                )
    return rows


def write_csv(path, rows, fields=None):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields or list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_an_imported_sweep_gets_a_report_and_advice_that_finds_its_law(tmp_path, capsys):
    table = write_csv(tmp_path / "results.csv", sweep_rows())
    out = tmp_path / "study"
    assert main(["study", "import", str(out), str(table), "--rule", "decoupled"]) == 0
    assert "42 of 42 runs imported" in capsys.readouterr().out
    runs = load_runs(out)
    assert len(runs) == 42
    assert set(runs["path"]) == {"external"} and set(runs["task"]) == {"external"}
    assert set(runs["status"]) == {"ok"}
    assert (runs["width"] == runs["size"]).all() and set(runs["base_width"]) == {64}

    assert main(["study", "report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "λ\\* = 0.0025" in report  # the measured optimum at width 1024
    assert " 0 epochs" not in report  # epochs not known: not said

    capsys.readouterr()
    assert main(["study", "advise", str(out), "--target-width", "4096"]) == 0
    advice = capsys.readouterr().out
    # the law fitted on the imported optima: λ* ∝ width^-0.5, 0.01 × (4096/64)^-0.5 at the target
    assert f"predicted λ* = {optimum(4096):.3g}" in advice
    assert "width^-0.5" in advice
    # the optimizer call for the target says the lr the runs trained at, and no data facts: the
    # table did not say the runs' samples, batch size or epochs (stored 0: not known)
    assert "recommended" in advice and 'wdscale.optimizer(model, "adamw", rule="decoupled", lr=0.001' in advice
    assert "DataFacts" not in advice


def test_a_reimport_adds_nothing_and_another_rule_joins_the_same_study(tmp_path, capsys):
    table = write_csv(tmp_path / "results.csv", sweep_rows())
    out = tmp_path / "study"
    first = import_runs(out, table, Fixed(rule="decoupled"))
    again = import_runs(out, table, Fixed(rule="decoupled"))
    assert (first.added, again.added, again.rows) == (42, 0, 42)
    assert len(load_runs(out)) == 42
    # another rule's sweep (here the same numbers): new runs of that rule, one plan holding both
    other = import_runs(out, table, Fixed(rule="sum"))
    assert other.added == 42
    runs = load_runs(out)
    assert sorted(runs["rule"].unique()) == ["decoupled", "sum"]
    assert main(["study", "report", str(out)]) == 0


def test_a_table_that_says_another_loss_for_a_stored_run_is_refused(tmp_path):
    rows = sweep_rows()
    out = tmp_path / "study"
    import_runs(out, write_csv(tmp_path / "a.csv", rows), Fixed(rule="decoupled"))
    rows[3]["val_loss"] = 9.0
    with pytest.raises(WdscaleError, match=r"line 5: val_loss 9\.0, stored"):
        import_runs(out, write_csv(tmp_path / "b.csv", rows), Fixed(rule="decoupled"))
    assert float(load_runs(out)["val_loss"].max()) < 2


def test_malformed_rows_are_refused_by_line_and_nothing_is_written(tmp_path, capsys):
    rows = sweep_rows()
    rows[0]["lr"] = "fast"  # line 2 (the header is line 1)
    rows[2]["seed"] = "1.5"  # line 4
    rows[4]["weight_decay"] = "-0.1"  # line 6
    rows[5]["val_loss"] = ""  # line 7
    rows[6]["size"] = "inf"  # line 8
    table = write_csv(tmp_path / "results.csv", rows)
    out = tmp_path / "study"
    assert main(["study", "import", str(out), str(table), "--rule", "decoupled"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line
    assert "5 bad row(s), nothing imported" in err
    for line, what in ((2, "lr 'fast'"), (4, "seed '1.5'"), (6, "weight_decay '-0.1'"), (7, "val_loss (empty)"),
                       (8, "size 'inf'")):  # fmt: skip
        assert f"line {line}: {what}" in err
    assert not out.exists()

    # into a directory that holds imported runs already: nothing more written there either
    import_runs(out, write_csv(tmp_path / "good.csv", sweep_rows()[:10]), Fixed(rule="decoupled"))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(WdscaleError, match="line 2"):
        import_runs(out, table, Fixed(rule="decoupled"))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert len(load_runs(out)) == 10


def test_a_diverged_run_is_kept_as_diverged_and_a_repeated_row_is_refused(tmp_path):
    rows = sweep_rows()
    rows[0]["val_loss"] = "nan"
    rows[1]["val_loss"] = "inf"
    out = tmp_path / "study"
    import_runs(out, write_csv(tmp_path / "a.csv", rows), Fixed(rule="decoupled"))
    runs = load_runs(out)
    assert (runs["status"] == "diverged").sum() == 2

    rows = sweep_rows()
    rows.append(dict(rows[0]))  # line 44 repeats line 2's run
    with pytest.raises(WdscaleError, match="line 44: the same run as line 2"):
        import_runs(tmp_path / "other", write_csv(tmp_path / "b.csv", rows), Fixed(rule="decoupled"))
    assert not (tmp_path / "other").exists()


def test_missing_columns_and_bad_declarations_are_one_clear_error(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "seed"} for r in sweep_rows()]
    with pytest.raises(WdscaleError, match="lacks the column.*seed"):
        import_runs(tmp_path / "s", write_csv(tmp_path / "a.csv", rows), Fixed(rule="decoupled"))
    table = write_csv(tmp_path / "b.csv", sweep_rows())
    with pytest.raises(WdscaleError, match="unknown rule 'nope'"):
        import_runs(tmp_path / "s", table, Fixed(rule="nope"))
    with pytest.raises(WdscaleError, match="takes a timescale"):  # a τ-rule's column named weight_decay
        import_runs(tmp_path / "s", table, Fixed(rule="timescale"))
    with pytest.raises(WdscaleError, match="built-in task"):
        import_runs(tmp_path / "s", table, Fixed(rule="decoupled", task="mnist1d_mlp"))
    with pytest.raises(WdscaleError, match="size axis is width"):
        import_runs(tmp_path / "s", table, Fixed(rule="decoupled", width=128))
    with pytest.raises(WdscaleError, match="not a file"):
        import_runs(tmp_path / "s", tmp_path / "missing.csv", Fixed(rule="decoupled"))
    # a directory of another study's size axis
    import_runs(tmp_path / "s", table, Fixed(rule="decoupled"))
    with pytest.raises(WdscaleError, match="size_axis 'width', not 'depth'"):
        import_runs(tmp_path / "s", table, Fixed(rule="decoupled", size_axis="depth"))
    assert not os.path.exists(tmp_path / "s" / "report.md")


def test_a_parquet_table_names_its_bad_rows_by_row(tmp_path):
    df = pd.DataFrame(sweep_rows()).rename(columns={"weight_decay": "setting"})
    df.to_parquet(tmp_path / "ok.parquet", index=False)
    done = import_runs(tmp_path / "s", tmp_path / "ok.parquet", Fixed(rule="mup", size_axis="depth", width=128))
    assert done.added == 42
    runs = load_runs(tmp_path / "s")
    assert (runs["depth"] == runs["size"]).all() and set(runs["width"]) == {128}
    df.loc[3, "lr"] = -1.0
    df.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(WdscaleError, match=r"row 4: lr -1\.0 is not"):
        import_runs(tmp_path / "t", tmp_path / "bad.parquet", Fixed(rule="mup"))
