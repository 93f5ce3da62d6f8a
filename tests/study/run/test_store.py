import dataclasses
import math

import pytest

from wdscale.study.plan.config import RunConfig, RunResult
from wdscale.study.run.store import Store


def config(seed=0, setting=0.1):
    return RunConfig(
        task="t",
        size_axis="width",
        size=32,
        width=32,
        depth=2,
        n_train=100,
        batch_size=10,
        base_width=32,
        base_depth=2,
        rule="sum",
        setting=setting,
        optimizer="sgd",
        lr=0.1,
        epochs=2,
        seed=seed,
    )


def test_a_run_is_stored_once_and_read_back(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        c = config()
        r = RunResult(
            c.run_id,
            "ok",
            train_loss=0.5,
            val_loss=0.7,
            best_val_loss=0.6,
            val_acc=0.8,
            best_val_acc=0.81,
            steps=20,
            wall_time=1.0,
            history=[0.9, 0.7],
        )
        assert store.add(c, r)
        assert not store.add(c, RunResult(c.run_id, "ok", val_loss=123.0))  # never twice
        d = RunResult(config(seed=1).run_id, "diverged", val_loss=math.inf, history=[math.nan])
        assert store.add(config(seed=1), d)
    with Store(tmp_path / "s.sqlite") as store:  # survives reopening
        df = store.frame()
        assert len(df) == 2 and len(store.done_ids()) == 2
        row = df[df.seed == 0].iloc[0]
        assert (row.val_loss, row.history, row.width) == (0.7, [0.9, 0.7], 32)
        div = df[df.seed == 1].iloc[0]
        assert div.status == "diverged" and div.val_loss == math.inf and math.isnan(div.val_acc)
        assert store.done_ids(["diverged"]) == {config(seed=1).run_id}


def test_result_must_match_its_config(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(AssertionError, match="does not belong"):  # a bug, not bad input
            store.add(config(), RunResult("abc", "ok"))


def test_run_id_depends_on_every_field():
    assert config().run_id == config().run_id
    assert config(seed=1).run_id != config().run_id
    assert config(setting=0.2).run_id != config().run_id
    assert RunConfig.from_dict(config().to_dict()) == config()


def test_a_store_made_from_an_export_holds_the_same_runs(tmp_path):
    import pandas as pd

    from wdscale.errors import WdscaleError
    from wdscale.study.run.store import load_runs, store_from_export

    configs = [config(seed=s, setting=x) for s in (0, 1) for x in (0.1, 1.0)]
    src = tmp_path / "src"
    src.mkdir()
    with Store(src / "runs.sqlite") as store:
        for i, c in enumerate(configs[:3]):  # the fourth run was never trained
            status = "diverged" if i == 2 else "ok"
            store.add(c, RunResult(c.run_id, status, val_loss=1.0 + i if i < 2 else math.nan, history=[2.0, math.nan],
                                   wall_time=0.5, path="batched-bmm", threads=1, n_params=123, steps=7,
                                   cpu_time=0.25 if i else math.nan))  # fmt: skip
        exported = store.frame()
    dst = tmp_path / "dst"
    dst.mkdir()
    exported.to_parquet(dst / "runs.parquet")
    assert store_from_export(dst, configs, {"task": "toy"}) == 3
    again = load_runs(dst)  # read from the new store now
    cols = ["run_id", "status", "val_loss", "wall_time", "path", "threads", "n_params", "steps", "setting", "seed",
            "cpu_time"]  # fmt: skip
    pd.testing.assert_frame_equal(again[cols], exported[cols])
    assert list(again["history"][0]) == [2.0, None]
    assert Store(dst / "runs.sqlite", readonly=True).plan() == {"task": "toy"}
    with pytest.raises(WdscaleError, match="already has a store"):
        store_from_export(dst, configs, {})
    (tmp_path / "other").mkdir()
    exported.to_parquet(tmp_path / "other" / "runs.parquet")
    with pytest.raises(WdscaleError, match="not runs of its plan"):
        store_from_export(tmp_path / "other", configs[:1], {})


def test_an_empty_store_file_reads_as_a_study_with_no_runs_and_a_run_makes_it(tmp_path, capsys):
    """`touch runs.sqlite`, or a driver killed while creating it (issue 21, item 1): every reader says
    so in one line, and `study run` makes the store in it (was: no such table, a traceback)."""
    from toy import TINY_FLAGS

    from wdscale.cli import main

    (tmp_path / "runs.sqlite").touch()
    assert main(["study", "status", str(tmp_path)]) == 0
    for argv in (["study", "report"], ["study", "export"], ["advise"]):
        extra = ["--target-width", "64"] if argv == ["advise"] else []
        assert main([*argv, str(tmp_path), *extra]) == 2
        assert "has no finished runs yet" in capsys.readouterr().err
    assert main(["study", "run", "--out", str(tmp_path), *TINY_FLAGS]) == 0
    assert len(Store(tmp_path / "runs.sqlite", readonly=True).frame()) == 12


WRITER = """
import sys
from wdscale.study.plan.config import RunConfig, RunResult
from wdscale.study.run.store import Store
base = dict(task="t", size_axis="width", size=32, width=32, depth=2, n_train=100, batch_size=10, base_width=32,
            base_depth=2, rule="sum", optimizer="sgd", lr=0.1, epochs=2, seed=0)
with Store(sys.argv[1]) as store:
    print("ready", flush=True)
    for job in range(10**6):
        configs = [RunConfig(setting=job + k / 1000, **base) for k in range(200)]
        store.add_job(configs, [RunResult(c.run_id, "ok", val_loss=1.0) for c in configs])
"""


@pytest.mark.parametrize("delay", [0.2, 0.45, 0.7])
def test_a_job_is_stored_whole_or_not_at_all_when_the_writer_is_killed_mid_write(tmp_path, delay):
    # jobs of 200 runs written back to back, the writer SIGKILLed at some moment: the store holds
    # a whole number of jobs, never part of one
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(path, readonly=True) as store:
        n = len(store.done_ids())
    assert n > 0 and n % 200 == 0, n


def test_a_run_with_task_options_exports_to_parquet_and_reads_back(tmp_path):
    """A one-pass study's runs carry task options ((key, value) pairs of a string and a number),
    which parquet cannot hold as a list of mixed types: the export writes them as JSON text and
    reading it gives the store's pairs back (was: pyarrow's ArrowTypeError, no export)."""
    from wdscale.study.run.store import load_runs, write_export

    c = dataclasses.replace(config(), task_options=(("n_pool", 100_000),))
    with Store(tmp_path / "runs.sqlite") as store:
        store.add(c, RunResult(c.run_id, "ok", val_loss=1.5, history=[1.5], wall_time=0.5, threads=1, n_params=9))
        frame = store.frame()
    dst = tmp_path / "export"
    dst.mkdir()
    write_export(frame, dst / "runs.parquet")
    back = load_runs(dst)
    assert back["task_options"].iloc[0] == frame["task_options"].iloc[0] == [["n_pool", 100_000]]
    assert back["val_loss"].iloc[0] == 1.5
