"""`wdscale study relabel`: ok runs stored before the chance criterion, marked not_learned; not_learned
runs that ended below chance (stored under the pass-mean criterion), marked ok again."""

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
    checked = int(before["status"].isin(["ok", "not_learned"]).sum())
    assert f"of {checked} ok and not_learned runs, {len(stuck)} relabelled not_learned" in capsys.readouterr().out
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
    again = relabel_study(tmp_path)
    assert again.not_learned == {} and again.learned == ()


def test_relabel_rewrites_an_export_kept_without_its_store(tmp_path):
    stuck, _ = old_study(tmp_path)
    assert main(["study", "export", str(tmp_path), "--format", "parquet"]) == 0
    (tmp_path / "runs.sqlite").unlink()
    done = relabel_study(tmp_path)
    assert set(done.not_learned) == stuck and done.checked > len(stuck) and done.learned == ()
    df = pd.read_parquet(tmp_path / "runs.parquet")
    assert stuck <= set(df.query("status == 'not_learned'")["run_id"])
    assert df.set_index("run_id").loc[sorted(stuck), "error"].str.contains("chance").all()


def wrongly_not_learned(out):
    """The study with two runs that learned stored as not_learned, as the pass-mean criterion
    stored one-pass runs: their reason the training loss, their validation loss below chance."""
    stuck, runs = old_study(out)
    learned = runs[(runs["status"] == "ok") & (runs["val_loss"] < 0.9 * runs["val_loss"].max())]
    wrong = sorted(learned["run_id"])[:2]
    assert len(wrong) == 2
    why = "final training loss 3.4 is no better than chance (2.3)"
    with sqlite3.connect(out / "runs.sqlite") as db:
        db.executemany("UPDATE runs SET status='not_learned', error=? WHERE run_id=?", [(why, r) for r in wrong])
    return stuck, set(wrong)


def test_relabel_gives_back_ok_to_runs_that_ended_below_chance(tmp_path):
    stuck, wrong = wrongly_not_learned(tmp_path)
    done = relabel_study(tmp_path)
    assert set(done.learned) == wrong and set(done.not_learned) == stuck
    after = load_runs(tmp_path).set_index("run_id")
    assert (after.loc[sorted(wrong), "status"] == "ok").all() and after.loc[sorted(wrong), "error"].isna().all()
    assert relabel_study(tmp_path).learned == ()


def test_relabel_gives_back_ok_in_an_export_kept_without_its_store(tmp_path):
    _, wrong = wrongly_not_learned(tmp_path)
    assert main(["study", "export", str(tmp_path), "--format", "parquet"]) == 0
    (tmp_path / "runs.sqlite").unlink()
    assert set(relabel_study(tmp_path).learned) == wrong
    df = pd.read_parquet(tmp_path / "runs.parquet").set_index("run_id")
    assert (df.loc[sorted(wrong), "status"] == "ok").all() and df.loc[sorted(wrong), "error"].isna().all()
