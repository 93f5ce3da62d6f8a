"""`wdscale study relabel`: ok runs stored before the chance criterion, marked not_learned."""

import sqlite3

import pandas as pd
from toy import TINY

from wdscale.cli import main
from wdscale.study import StudyPlan, run_study
from wdscale.study.run.execution import Execution
from wdscale.study.run.relabel import relabel_study
from wdscale.study.run.store import load_runs


def old_study(out):
    """A study whose decay pins some runs at chance, stored as an old store would have them: ok."""
    plan = StudyPlan(**{**TINY, "rules": ["decoupled"], "settings": {"decoupled": [1e-3, 1e-1, 300.0]}})
    run_study(plan, out, execution=Execution(workers=1, progress=False))
    runs = load_runs(out)
    # the runs judged by chance (the first batch's loss, the other test, is not stored)
    stuck = set(runs[runs["error"].fillna("").str.contains("chance")]["run_id"])
    assert len(stuck) >= 2
    with sqlite3.connect(out / "runs.sqlite") as db:
        db.executemany("UPDATE runs SET status='ok', error=NULL WHERE run_id=?", [(r,) for r in stuck])
    return stuck, load_runs(out)


def test_relabel_marks_in_the_store_and_its_export_what_the_loop_now_marks(tmp_path, capsys):
    stuck, before = old_study(tmp_path)
    assert main(["study", "export", str(tmp_path), "--format", "parquet"]) == 0
    assert main(["study", "relabel", str(tmp_path)]) == 0
    n_ok = int((before["status"] == "ok").sum())
    assert f"{len(stuck)} of {n_ok} ok runs relabelled" in capsys.readouterr().out
    after = load_runs(tmp_path)
    assert (
        set(after.query("status == 'not_learned'")["run_id"]) - set(before.query("status == 'not_learned'")["run_id"])
        == stuck
    )
    exported = pd.read_parquet(tmp_path / "runs.parquet")
    assert exported.set_index("run_id")["status"].equals(after.set_index("run_id")["status"])
    # only status and error change; running it again changes nothing
    cols = ["run_id", "train_loss", "val_loss", "history"]
    assert after[cols].sort_values("run_id").astype(str).equals(before[cols].sort_values("run_id").astype(str))
    assert relabel_study(tmp_path)[1] == {}


def test_relabel_rewrites_an_export_kept_without_its_store(tmp_path):
    stuck, _ = old_study(tmp_path)
    assert main(["study", "export", str(tmp_path), "--format", "parquet"]) == 0
    (tmp_path / "runs.sqlite").unlink()
    n_ok, reasons = relabel_study(tmp_path)
    assert set(reasons) == stuck and n_ok > len(stuck)
    df = pd.read_parquet(tmp_path / "runs.parquet")
    assert stuck <= set(df.query("status == 'not_learned'")["run_id"])
    assert df.set_index("run_id").loc[sorted(stuck), "error"].str.contains("chance").all()
