"""The runner end to end on tiny real studies: store, resume after SIGKILL, diverged and failed runs."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from toy import TINY, TINY_FLAGS
from user_model import fragile_study

from wdscale.study import Study, StudyPlan, make_runs, run_study
from wdscale.study.plan.tasks import get_task
from wdscale.study.run.execution import Execution
from wdscale.study.run.store import Store


def test_tiny_study_stores_every_run_once_and_resume_skips_them(tmp_path):
    plan = StudyPlan(**TINY)
    planned = make_runs(plan, get_task("digits_mlp"))
    s1 = run_study(plan, tmp_path, execution=Execution(workers=2, progress=False))
    assert (s1.planned, s1.already_done, s1.ran) == (len(planned), 0, len(planned))
    with Store(tmp_path / "runs.sqlite") as store:
        df = store.frame()
    assert sorted(df.run_id) == sorted(c.run_id for c in planned)
    assert (
        df.status.isin(["ok", "not_learned"]).all() and (df.steps == 2 * 21).all()
    )  # 1297 samples / 64 per batch → 21 steps
    assert df.val_loss.between(0, 5).all() and df.val_acc.between(0, 1).all()
    s2 = run_study(plan, tmp_path, execution=Execution(workers=2, progress=False))
    assert (s2.already_done, s2.ran) == (len(planned), 0)


def test_batched_and_sequential_give_the_same_results(tmp_path):
    plan = StudyPlan(**{**TINY, "rules": ["decoupled"], "sizes": [8, 16]})
    run_study(plan, tmp_path / "a", execution=Execution(workers=1, batch=True, progress=False))
    run_study(plan, tmp_path / "b", execution=Execution(workers=1, batch=False, progress=False))
    frames = [Store(tmp_path / d / "runs.sqlite").frame().set_index("run_id").sort_index() for d in "ab"]
    assert list(frames[0].index) == list(frames[1].index)
    torch.testing.assert_close(
        torch.tensor(frames[0].val_loss.values), torch.tensor(frames[1].val_loss.values), rtol=1e-4, atol=1e-5
    )


def test_diverging_runs_are_recorded_and_the_study_goes_on(tmp_path):
    plan = StudyPlan(**{**TINY, "rules": ["sum"], "optimizer": "sgd", "settings": {"sum": [1e-4, 1e-3, 1e-2]}})
    plan.lr = 50.0  # far too large for SGD: these runs blow up
    run_study(plan, tmp_path, execution=Execution(workers=1, progress=False))
    df = Store(tmp_path / "runs.sqlite").frame()
    assert len(df) == len(make_runs(plan, get_task("digits_mlp")))
    assert (df.status == "diverged").any()
    assert df[df.status == "diverged"].val_loss.isna().all()


def test_failing_runs_are_recorded_with_their_error_and_the_rest_finish(tmp_path):
    study = fragile_study(tmp_path, execution=Execution(workers=1))
    study.run(progress=False)
    df = study.results()
    failed = df[df.status == "failed"]
    assert set(failed["size"]) == {16} and failed.error.str.contains("boom at width 16").all()
    assert (df[df["size"] == 8].status == "ok").all()


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(str(db), timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_study_then_resume_runs_every_run_exactly_once(tmp_path):
    out = tmp_path / "study"
    args = [
        sys.executable,
        "-m",
        "wdscale.cli",
        "study",
        "run",
        "--out",
        str(out),
        "--task",
        "digits_mlp",
        "--sizes",
        "8,16",
        "--rules",
        "sum,decoupled,mean",
        "--seeds",
        "3",
        "--decades",
        "1",
        "--points-per-decade",
        "2",
        "--epochs",
        "3",
        "--depth",
        "1",
        "--workers",
        "2",
        "--no-batch",
        "--no-progress",
    ]
    proc = subprocess.Popen(args, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _rows(out / "runs.sqlite") < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-study
    proc.wait()
    before = _rows(out / "runs.sqlite")
    plan = StudyPlan.from_dict(__import__("json").loads((out / "plan.json").read_text()))
    planned = make_runs(plan, get_task("digits_mlp"))
    assert 8 <= before < len(planned), "the kill should land mid-study"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{before} already in" in done.stderr  # finished runs were not done again
    with Store(out / "runs.sqlite") as store:
        ids = list(store.frame().run_id)
    assert sorted(ids) == sorted(c.run_id for c in planned)  # every run exactly once


def test_cli_report_and_export(tmp_path, capsys):
    from wdscale.cli import main

    out = str(tmp_path)
    assert (
        main(
            [
                "study",
                "run",
                "--out",
                out,
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    assert main(["study", "report", out]) == 0
    assert (tmp_path / "report.md").read_text().count("sum") >= 2
    assert main(["study", "export", out, "--format", "csv"]) == 0
    assert main(["study", "export", out, "--format", "parquet"]) == 0
    import pandas as pd

    csv, pq = pd.read_csv(tmp_path / "runs.csv"), pd.read_parquet(tmp_path / "runs.parquet")
    assert len(csv) == len(pq) == 12 and set(csv.run_id) == set(pq.run_id)
    # a study kept as its parquet export alone still reports, with the same numbers
    md = (tmp_path / "report.md").read_text()
    (tmp_path / "runs.sqlite").unlink()
    assert main(["study", "report", out]) == 0
    assert (tmp_path / "report.md").read_text() == md
    assert main(["study", "report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["study", "run", "--out", out, "--rules", "sum,nope", "--no-progress"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err


def test_more_samples_than_the_task_has_is_a_plan_error(tmp_path):
    plan = StudyPlan(**{**TINY, "n_train": 5000})
    with pytest.raises(ValueError, match="n_train=5000 at width=8 is more than the 1297 training samples of task"):
        run_study(plan, tmp_path, execution=Execution(workers=1, progress=False))
    assert not (tmp_path / "runs.sqlite").exists()


def test_depth_axis_runs_with_completep(tmp_path):
    plan = StudyPlan(
        task="digits_mlp",
        size_axis="depth",
        sizes=[1, 2],
        rules=["completep"],
        seeds=1,
        decades=1.0,
        points_per_decade=2,
        epochs=1,
        width=16,
    )
    run_study(plan, tmp_path, execution=Execution(workers=1, progress=False))
    df = Store(tmp_path / "runs.sqlite").frame()
    assert len(df) == 6 and df.status.isin(["ok", "not_learned"]).all(), df.error.tolist()
    assert set(df.depth) == {1, 2} and set(df.base_depth) == {1}


def test_cli_runs_a_users_own_model_and_data(tmp_path, capsys):
    from wdscale.cli import main

    common = [
        "study",
        "run",
        "--out",
        str(tmp_path),
        "--model",
        "user_model:make",
        "--data",
        "user_model:load",
        "--sizes",
        "8,32",
        "--rules",
        "sum,mup",
        "--seeds",
        "1",
        "--decades",
        "1",
        "--points-per-decade",
        "2",
        "--epochs",
        "4",
        "--batch-size",
        "50",
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(common) == 2  # no lr: a user's model has no default
    assert "give lr=" in capsys.readouterr().err
    assert main(common + ["--lr", "0.01"]) == 0
    df = Store(tmp_path / "runs.sqlite").frame()
    assert len(df) == 12 and df.status.isin(["ok", "not_learned"]).all() and set(df.task) == {"custom"}
    assert main(["study", "report", str(tmp_path)]) == 0


def test_study_takes_every_plan_field_as_a_keyword_with_the_plans_default():
    import dataclasses
    import inspect

    params = inspect.signature(Study).parameters
    for f in dataclasses.fields(StudyPlan):
        if f.name == "task":
            continue
        assert f.name in params, f"Study() lacks the plan keyword {f.name}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert (
            params[f.name].default == default
            or (params[f.name].default is None and default in ({}, []))
            or (f.name == "rules" and params[f.name].default is None)
        ), f.name


def test_the_driver_loads_a_tasks_data_once_and_every_forked_run_inherits_it(tmp_path, monkeypatch):
    import dataclasses as dc

    from wdscale.study.plan import tasks

    digits = tasks.get_task("digits_mlp")
    loads = tmp_path / "loads"

    def counting_loader(seed, **options):
        with open(loads, "a") as f:
            f.write(f"{os.getpid()}\n")
        return digits.loader(seed, **options)

    monkeypatch.setitem(tasks.TASKS, "digits_mlp", dc.replace(digits, loader=counting_loader))
    monkeypatch.setattr(tasks, "_DATA_CACHE", {})
    plan = StudyPlan(**TINY)
    s = run_study(plan, tmp_path / "study", execution=Execution(workers=2, progress=False, batch=False))
    assert s.ran == len(make_runs(plan, digits)) > 2
    assert loads.read_text().split() == [str(os.getpid())]  # once, in the driver
