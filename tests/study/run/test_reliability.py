"""What wdscale promises a demanding user (docs/reliability.md): a run's numbers follow from its
config, one store holds one plan and one driver, runs that did not learn are marked, workers die
with their driver, and bad input or a damaged store gives one clear error and changes nothing."""

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from toy import TINY, TINY_FLAGS
from user_model import load

from wdscale.cli import main
from wdscale.study import Study, StudyPlan, make_runs, run_study
from wdscale.study.plan.tasks import get_task
from wdscale.study.run import jobs
from wdscale.study.run.execution import Execution
from wdscale.study.run.runner import study_lock
from wdscale.study.run.store import Store

TESTS = Path(__file__).parents[1]


def frame(out: Path):
    with Store(out / "runs.sqlite", readonly=True) as store:
        return store.frame().set_index("run_id").sort_index()


def digest(directory: Path) -> dict[str, str]:
    """Every file's hash, but the driver's lock file (it holds only who runs the study) and the
    sidecar files SQLite makes for any reader of a WAL database (the WAL must stay empty)."""
    wal = directory / "runs.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    return {
        p.name: hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != ".wdscale.lock" and not p.name.endswith(("-shm", "-wal"))
    }


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "study"
    run_study(StudyPlan(**TINY), out, execution=Execution(workers=1, progress=False))
    return out


def cli(*argv: str) -> int:
    return main(list(argv))


# -- 1, 2: a run's numbers follow from its config -----------------------------------------------------


def test_worker_count_and_the_drivers_threads_do_not_change_a_runs_numbers(tmp_path):
    plan = StudyPlan(**TINY)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the driver's own setting must not reach the in-process runs
    try:
        run_study(plan, tmp_path / "one", execution=Execution(workers=1, progress=False))
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    run_study(plan, tmp_path / "two", execution=Execution(workers=2, progress=False))
    a, b = frame(tmp_path / "one"), frame(tmp_path / "two")
    assert list(a.index) == list(b.index) and len(a) == 24
    assert (a.threads == 1).all() and (b.threads == 1).all()
    assert a.path.tolist() == b.path.tolist() and set(a.path) == {"batched-bmm"}
    assert a.status.tolist() == b.status.tolist()
    assert a.val_loss.tolist() == pytest.approx(b.val_loss.tolist(), rel=1e-9)


def test_a_study_resumed_after_losing_jobs_re_forms_them_with_the_same_numbers(tmp_path, monkeypatch):
    # jobs of at most 4 runs: each group of 6 is cut into 4 + 2 in plan order, whatever the workers
    monkeypatch.setattr(jobs, "MAX_RUNS_PER_JOB", 4)
    plan = StudyPlan(**TINY)
    run_study(plan, tmp_path / "once", execution=Execution(workers=2, progress=False))
    run_study(plan, tmp_path / "resumed", execution=Execution(workers=1, progress=False))
    # a kill loses the jobs in flight, whole (a job's runs are stored together): drop two of them
    cut, _ = jobs.cut_jobs(make_runs(plan, get_task("digits_mlp")), jobs.Source("digits_mlp"), device="cpu", batch=True)
    assert sorted(len(j.configs) for j in cut) == [2] * 4 + [4] * 4
    lost = [c.run_id for j in (cut[0], cut[-1]) for c in j.configs]
    with Store(tmp_path / "resumed" / "runs.sqlite") as store:
        assert store.forget(lost) == 6
    summary = run_study(plan, tmp_path / "resumed", execution=Execution(workers=2, progress=False))
    assert summary.ran == 6
    a, b = frame(tmp_path / "resumed"), frame(tmp_path / "once")
    assert list(a.index) == list(b.index) and a.path.tolist() == b.path.tolist()
    assert a.val_loss.tolist() == pytest.approx(b.val_loss.tolist(), rel=1e-9)


def test_the_path_is_chosen_by_rule_and_no_batch_is_recorded(tmp_path):
    plan = StudyPlan(**{**TINY, "rules": ["decoupled"], "seeds": 1})
    run_study(plan, tmp_path, execution=Execution(workers=1, batch=False, progress=False))
    assert set(frame(tmp_path).path) == {"sequential"}


# -- 3, 4: one store, one plan, one driver ------------------------------------------------------------


def test_reusing_out_with_another_plan_is_refused_and_nothing_is_mixed(tiny_study, tmp_path, capsys):
    out = tmp_path / "study"
    shutil.copytree(tiny_study, out)
    before = digest(out)
    with pytest.raises(ValueError, match=r"holds 24 run\(s\) of another plan \(.*epochs 2 there, 3 here"):
        run_study(StudyPlan(**{**TINY, "epochs": 3}), out, execution=Execution(workers=1, progress=False))
    assert digest(out) == before  # plan.json untouched, no run added
    assert cli("study", "status", str(out)) == 0
    assert capsys.readouterr().out.startswith("24 of 24 runs stored")


def test_a_second_driver_on_the_same_study_is_refused(tmp_path):
    with study_lock(tmp_path):
        with pytest.raises(ValueError, match="another `wdscale study run` .*pid"):
            run_study(StudyPlan(**TINY), tmp_path, execution=Execution(workers=1, progress=False))
    assert not (tmp_path / "runs.sqlite").exists()


def test_two_drivers_started_together_train_every_run_once(tmp_path):
    # 20 epochs: the first driver to take the lock still holds it when the second one asks
    cmd = [sys.executable, "-m", "wdscale", "study", "run", "--out", str(tmp_path), *TINY_FLAGS, "--epochs", "20"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], errs
    assert any("another `wdscale study run`" in e for e in errs)
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone() == (12, 12)


# -- 5: no silent wrong results ----------------------------------------------------------------------


def test_a_batch_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size=500 is larger than n_train=300 at width=8"):
        run_study(
            StudyPlan(**{**TINY, "batch_size": 500, "n_train": 300}), tmp_path, execution=Execution(progress=False)
        )
    assert not tmp_path.joinpath("plan.json").exists()


def test_runs_that_do_not_learn_are_marked_and_counted_in_the_report(tmp_path):
    plan = StudyPlan(**{**TINY, "rules": ["sum"], "sizes": [8, 16], "seeds": 1, "lr": 1e6})
    run_study(plan, tmp_path, execution=Execution(workers=1, progress=False))
    df = frame(tmp_path)
    learned = df[df.status == "ok"]
    assert (df.status != "failed").all() and len(learned) < len(df)
    stuck = df[df.status == "not_learned"]
    assert stuck.error.str.contains("not below|no better than chance").all()
    assert stuck.train_loss.notna().all()  # the numbers are kept
    assert cli("study", "report", str(tmp_path)) == 0
    md = (tmp_path / "report.md").read_text()
    assert f"{len(stuck)} did not learn" in md


# -- 6: workers die with their driver -----------------------------------------------------------------


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_workers_die_with_their_driver(tmp_path, sig):
    cmd = [
        sys.executable,
        "-m",
        "wdscale",
        "study",
        "run",
        "--out",
        str(tmp_path),
        "--task",
        "digits_mlp",
        "--sizes",
        "64,128",
        "--rules",
        "sum",
        "--seeds",
        "4",
        "--epochs",
        "200",
        "--depth",
        "2",
        "--no-batch",
        "--workers",
        "2",
        "--no-progress",
    ]
    # a shell running this suite in the background starts it with SIGINT ignored, which the driver
    # would inherit (and rightly keep): give it the default disposition, as a terminal would
    driver = subprocess.Popen(
        cmd, stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [p for p in children(driver.pid) if alive(p)]
        assert len(workers) >= 2, "the study's workers did not start"
        time.sleep(1.0)
        driver.send_signal(sig)
        driver.wait(timeout=30)
        deadline = time.time() + 15
        while time.time() < deadline and any(alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(alive(p) for p in workers), f"orphaned workers after {sig.name}"
    finally:
        if driver.poll() is None:
            driver.kill()


# -- 7: one clear error, and nothing written ----------------------------------------------------------


def test_read_only_studies_report_export_and_status_without_writing(tiny_study, tmp_path, monkeypatch, capsys):
    out = tmp_path / "study"
    shutil.copytree(tiny_study, out)
    before = digest(out)
    real_access = os.access
    # tests run as root, for whom chmod does not stop a write: make the study directory look read-only
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, **kw: (
            False
            if (mode & os.W_OK and Path(p).resolve().is_relative_to(out.resolve()))
            else real_access(p, mode, **kw)
        ),
    )
    assert cli("study", "status", str(out)) == 0
    assert "24 of 24 runs stored" in capsys.readouterr().out
    assert cli("study", "report", str(out)) == 2
    assert "give --to DIR elsewhere" in capsys.readouterr().err
    assert cli("study", "report", str(out), "--to", str(tmp_path / "rep")) == 0
    assert (tmp_path / "rep" / "report.md").exists()
    assert cli("study", "export", str(out), "--to", str(tmp_path / "runs.csv")) == 0
    assert cli("study", "run", "--out", str(out), "--preset", "quick") == 2
    assert "not writable" in capsys.readouterr().err
    assert digest(out) == before


@pytest.mark.parametrize("content", [b"this is not a database" * 100, "foreign", "damaged"])
def test_a_garbage_foreign_or_damaged_store_is_refused_and_left_untouched(tiny_study, tmp_path, capsys, content):
    out = tmp_path / "study"
    out.mkdir()
    store = out / "runs.sqlite"
    if content == "foreign":
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
    elif content == "damaged":
        shutil.copy(tiny_study / "runs.sqlite", store)
        data = bytearray(store.read_bytes())
        data[8192:12288] = b"\xab" * 4096
        store.write_bytes(bytes(data))
    else:
        store.write_bytes(content)
    before = digest(out)
    args = TINY_FLAGS
    assert cli("study", "run", "--out", str(out), *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (
        "not a wdscale store" in err or "not a usable wdscale store" in err or "is damaged" in err
    ), err
    for command in ("status", "report", "export"):
        assert cli("study", command, str(out)) == 2, command
        assert "wdscale store" in capsys.readouterr().err or "damaged" in err
    assert digest(out) == before


def test_a_model_whose_output_does_not_fit_the_classes_is_refused_up_front(tmp_path):
    def wrong(width):
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 7))

    study = Study(wrong, load, out=tmp_path, sizes=[8, 16], rules=["sum"], seeds=1, lr=1e-2, epochs=1, batch_size=50)
    with pytest.raises(ValueError, match=r"returns \(2, 7\) .* 10 classes needs logits of shape \(2, 10\)"):
        study.run(progress=False)
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_data_loader_that_raises_is_one_clear_error():
    def broken():
        raise FileNotFoundError("no such file: data.npz")

    with pytest.raises(ValueError, match="the data loader 'broken' failed: FileNotFoundError: no such file"):
        Study(lambda w: nn.Linear(4, 2), broken, sizes=[8, 16], lr=1e-2, epochs=1, batch_size=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_device_cuda_without_cuda_is_refused_before_anything_is_written(tmp_path, capsys):
    assert cli("study", "run", "--out", str(tmp_path / "s"), "--preset", "quick", "--device", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert cli("study", "run", "--out", str(tmp_path / "s"), "--preset", "quick", "--device", "tpu") == 2
    assert "not a torch device" in capsys.readouterr().err or "cpu or cuda" in capsys.readouterr().err


def test_out_that_is_a_file_and_a_malformed_config_are_one_clear_error(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli("study", "run", "--out", str(f), "--preset", "quick") == 2
    assert "is a file" in capsys.readouterr().err
    bad_yaml = tmp_path / "plan.yaml"
    bad_yaml.write_text("sizes: [8, 16\nrules: sum\n")
    assert cli("study", "run", "--out", str(tmp_path / "s"), "--config", str(bad_yaml)) == 2
    err = capsys.readouterr().err
    assert "plan.yaml" in err and "not valid YAML" in err and err.count("\n") == 1
    bad_toml = tmp_path / "plan.toml"
    bad_toml.write_text("sizes = [8, 16\n")
    assert cli("study", "run", "--out", str(tmp_path / "s"), "--config", str(bad_toml)) == 2
    err = capsys.readouterr().err
    assert "plan.toml" in err and "not valid TOML" in err


def test_export_of_a_study_with_no_runs_is_an_error(tmp_path, capsys):
    Store(tmp_path / "runs.sqlite").close()
    assert cli("study", "export", str(tmp_path)) == 2
    assert "no finished runs" in capsys.readouterr().err


# -- 8: small things -----------------------------------------------------------------------------------


def test_python_m_wdscale_and_version():
    done = subprocess.run([sys.executable, "-m", "wdscale", "--version"], capture_output=True, text=True, timeout=60)
    import wdscale

    assert done.returncode == 0 and done.stdout.strip() == f"wdscale {wdscale.__version__}"


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--workers", "0"], "expected a whole number ≥ 1, got '0'"),
        (["--workers", "-3"], "expected a whole number ≥ 1, got '-3'"),
        (["--threads", "0"], "expected a whole number ≥ 1"),
        (
            ["--optimizer", "sgd", "--momentum", "-5"],
            "momentum=-5.0 is not allowed: momentum must be a number in [0, 1)",
        ),
        (["--sizes", "-8,16"], "sizes=-8 is not allowed: sizes must be a positive integer"),
    ],
)
def test_bad_flags_are_one_clear_error_before_any_run(tmp_path, capsys, flags, message):
    code = None
    try:
        code = cli("study", "run", "--out", str(tmp_path / "s"), "--preset", "quick", *flags)
    except SystemExit as e:  # argparse's own errors exit 2 with a usage line
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs.sqlite").exists()


def test_a_comma_separated_sizes_string_in_a_config_file(tmp_path):
    cfg = tmp_path / "plan.toml"
    cfg.write_text('task = "digits_mlp"\nsizes = "8,16"\nrules = "sum, decoupled"\n')
    from wdscale.study.plan.study_plan import load_plan_file

    plan = StudyPlan.from_dict(load_plan_file(cfg))
    assert plan.sizes == [8, 16] and plan.rules == ["sum", "decoupled"]


def test_study_run_help_describes_every_flag_and_preset():
    from wdscale.cli import build_parser
    from wdscale.study.plan.study_plan import PRESETS

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["study"]._subparsers._group_actions[0].choices["run"]
    undocumented = [a.dest for a in run._actions if not a.help]
    assert undocumented == []
    text = run.format_help()
    for name in PRESETS:
        assert f"{name}:" in text


def test_a_model_that_fits_the_data_only_at_the_smallest_size_is_refused_before_any_run(tmp_path):
    class WrongWhenWide(nn.Module):  # the same parameters at every width (the rules' check passes), but
        def __init__(self, width):  # from width 16 on it drops 3 of the 10 classes from its output
            super().__init__()
            self.width = width
            self.net = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

        def forward(self, x):
            return self.net(x)[:, : 10 if self.width < 16 else 7]

    study = Study(
        WrongWhenWide, load, out=tmp_path, sizes=[8, 16], rules=["sum"], seeds=1, lr=1e-2, epochs=1, batch_size=50
    )
    with pytest.raises(ValueError, match=r"at width=16"):
        study.run(progress=False)
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_model_that_fails_on_the_data_at_a_larger_depth_only_is_refused_before_any_run(tmp_path):
    class Deep(nn.Module):
        def __init__(self, width, depth):
            super().__init__()
            self.depth = depth
            self.net = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
            self.gains = nn.Parameter(torch.ones(depth))  # the model changes with its depth

        def forward(self, x):
            if self.depth >= 4:
                raise RuntimeError("blocks beyond 3 need a longer input")
            return self.net(x)

    study = Study(Deep, load, out=tmp_path, size_axis="depth", sizes=[1, 4], width=8, rules=["sum"], seeds=1,
                  lr=1e-2, epochs=1, batch_size=50)  # fmt: skip
    with pytest.raises(ValueError, match=r"the model at depth=4 fails on the data's inputs"):
        study.run(progress=False)
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_worker_killed_mid_study_is_replaced_and_its_runs_are_trained_once(tmp_path, capsys):
    # the first model built at width 32 in a worker kills its own process (as the OOM killer would);
    # that job runs once more in a fresh process, and every run is stored once, none failed
    flag = tmp_path / "killed-once"

    def fragile(width):
        if width == 32 and os.getpid() != driver and not flag.exists():
            flag.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    driver = os.getpid()
    study = Study(fragile, load, out=tmp_path / "s", sizes=[8, 32], rules=["sum", "decoupled"], seeds=2, lr=1e-2,
                  epochs=1, batch_size=50, decades=1.0, points_per_decade=2,
                  execution=Execution(workers=2, batch=False, progress=False))  # fmt: skip
    study.run()
    df = study.results()
    err = capsys.readouterr().err
    assert flag.exists() and "ended without a result (killed by SIGKILL" in err and "once more" in err
    assert len(df) == len(study.runs()) and df["run_id"].is_unique and (df["status"] != "failed").all()


def test_runs_that_kill_every_process_at_every_size_stop_the_study_with_one_clear_error(tmp_path):
    def deadly(width):
        if os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    driver = os.getpid()
    study = Study(deadly, load, out=tmp_path / "s", sizes=[8, 32], rules=["sum"], seeds=1, lr=1e-2, epochs=1,
                  batch_size=50, decades=1.0, points_per_decade=4,
                  execution=Execution(workers=2, batch=False, progress=False))  # fmt: skip
    # its first runs all died alike, or six jobs in a row died: either way one clear stop, saying why
    with pytest.raises(ValueError, match="(all failed the same way: its process died twice|6 different jobs in a row)"):
        study.run()
    done = study.results()  # stored failed, with the cause, before the stop
    assert len(done) < len(study.runs()) and (done["status"] == "failed").all()


def test_deleting_the_lock_file_does_not_let_a_second_driver_in(tmp_path):
    from wdscale.errors import WdscaleError

    with study_lock(tmp_path):
        (tmp_path / ".wdscale.lock").unlink()
        with pytest.raises(WdscaleError, match="another `wdscale study run`"):
            with study_lock(tmp_path):
                pass
    with study_lock(tmp_path):  # released: the next driver gets it
        pass


def _bad(name):
    x, y, xv, yv = load()
    return {
        "x_val has 40 features": (x, y, xv[:, :40], yv),
        "y_val is 2-D": (x, y, xv, yv[:, None]),
        "a label of -1": (x, torch.where(torch.arange(len(y)) == 3, -1, y), xv, yv),
        "NaN inputs": (x.clone().index_fill_(0, torch.tensor([5]), float("nan")), y, xv, yv),
        "no training samples": (x[:0], y[:0], xv, yv),
    }[name]


@pytest.mark.parametrize(
    "name, message",
    [
        ("x_val has 40 features", r"x_val's samples have shape \(40,\), x_train's \(64,\)"),
        ("y_val is 2-D", r"y_val's samples have shape \(1,\), y_train's \(\)"),
        ("a label of -1", r"y_train holds labels -1\.\.9; with 10 classes they must lie in 0\.\.9"),
        ("NaN inputs", r"x_train holds NaN or infinite values \(in 1 of its samples\)"),
        ("no training samples", r"the data has 0 training and 100 validation samples"),
    ],
)
def test_bad_data_is_one_clear_error_before_any_run(tmp_path, name, message):
    # each of these once ended with every run stored failed (or diverged, for NaN inputs), exit 0
    with pytest.raises(ValueError, match=message):
        Study(make_model, lambda: _bad(name), out=tmp_path, sizes=[8, 16], rules=["sum"], seeds=1, lr=1e-2,
              epochs=1, batch_size=50).run(progress=False)  # fmt: skip
    assert not (tmp_path / "runs.sqlite").exists()


def make_model(width):
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def test_an_export_missing_a_column_a_store_needs_is_refused(tmp_path, capsys):
    import pandas as pd

    study = Study(make_model, load, out=tmp_path / "s", sizes=[8, 16], rules=["sum"], seeds=1, lr=1e-2, epochs=1,
                  batch_size=50, decades=1.0, points_per_decade=2)  # fmt: skip
    study.run(progress=False)
    assert main(["study", "export", str(tmp_path / "s"), "--format", "parquet"]) == 0
    kept = tmp_path / "kept"
    kept.mkdir()
    capsys.readouterr()
    pd.read_parquet(tmp_path / "s" / "runs.parquet").drop(columns=["val_loss"]).to_parquet(kept / "runs.parquet")
    for command in (["study", "report", str(kept)], ["study", "status", str(kept)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "lacks the column(s) val_loss that a study's runs need" in err and err.count("\n") == 1


# -- issue 31: no user's code can end, hang or fool a study ---------------------------------------------


def _die(how: str) -> None:
    if how == "sigkill":  # as the out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "os_exit":
        os._exit(1)
    elif how == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif how == "sys_exit":
        sys.exit(0)
    elif how == "hang":
        time.sleep(300)


def _dying_training(run) -> float:
    """A user's training that dies (or hangs) at width 16 and trains a few steps elsewhere."""
    if run.config.width == 16:
        _die(os.environ["WDSCALE_TEST_DEATH"])
    x, y, xv, yv = load()
    for i in range(0, 300, 50):
        loss = nn.functional.cross_entropy(run.model(x[i : i + 50]), y[i : i + 50])
        run.optimizer.zero_grad()
        loss.backward()
        run.optimizer.step()
    with torch.no_grad():
        return float(nn.functional.cross_entropy(run.model(xv), yv))


def _dying_study(out, workers, **execution):
    from user_model import make

    return Study(make, train_fn=_dying_training, out=out, sizes=[8, 16], rules=["decoupled"], seeds=1,
                 settings={"decoupled": [0.01, 0.1, 1.0]}, lr=1e-2, epochs=1, batch_size=50, n_train=300,
                 execution=Execution(workers=workers, progress=False, **execution))  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    "how, cause",
    [
        ("sigkill", "killed by SIGKILL — out of memory?"),
        ("os_exit", "exit status 1"),
        ("segfault", "killed by SIGSEGV — a segmentation fault"),
        ("sys_exit", "sys.exit(0) inside the run's code"),
    ],
)
def test_a_function_whose_process_dies_at_one_size_fails_that_size_alone_and_resumes_the_same(
    tmp_path, monkeypatch, capsys, workers, how, cause
):
    monkeypatch.setenv("WDSCALE_TEST_DEATH", how)
    study = _dying_study(tmp_path / "s", workers)
    summary = study.run()  # returns: the study is not ended by its runs (sys.exit included)
    df = study.results().set_index("run_id").sort_index()
    assert summary.ran == len(df) == 6
    assert (df.loc[df["size"] == 8, "status"] == "ok").all()
    dead = df[df["size"] == 16]
    assert (dead["status"] == "failed").all() and dead["error"].str.contains(cause, regex=False).all()
    assert "running it once more in a fresh process" in capsys.readouterr().err  # retried once first
    again = _dying_study(tmp_path / "s", workers)
    assert again.run().ran == 0  # resumes to the same state: the failed runs stay stored
    assert again.results().set_index("run_id").sort_index()["status"].tolist() == df["status"].tolist()


def test_a_function_that_hangs_is_stopped_at_the_run_timeout_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("WDSCALE_TEST_DEATH", "hang")
    started = time.monotonic()
    study = _dying_study(tmp_path / "s", 2, run_timeout=2)
    study.run()
    df = study.results()
    assert time.monotonic() - started < 120
    assert (df.loc[df["size"] == 8, "status"] == "ok").all()
    hung = df[df["size"] == 16]
    assert len(hung) == 3 and hung["error"].str.startswith("timed out after 2 s").all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "sig, to_group, after",
    [
        (signal.SIGINT, True, 0.2),
        (signal.SIGTERM, False, 1.0),
        (signal.SIGINT, False, 2.0),
        (signal.SIGTERM, True, 3.0),
    ],
)
def test_a_stop_signal_ends_a_batched_study_within_seconds_with_exit_130_and_no_orphan(tmp_path, sig, to_group, after):
    cmd = [sys.executable, "-m", "wdscale", "study", "run", "--out", str(tmp_path), "--task", "digits_mlp",
           "--sizes", "16,32", "--rules", "sum,decoupled", "--seeds", "4", "--epochs", "400", "--workers", "2",
           "--no-progress"]  # fmt: skip
    driver = subprocess.Popen(
        cmd,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a terminal's job: the signal can go to the whole group
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and not workers:
            time.sleep(0.05)
            workers = [p for p in children(driver.pid) if alive(p)]
        assert workers, "the study's runs did not start"
        time.sleep(after)
        seen = [p for p in children(driver.pid) if alive(p)] + workers
        sent = time.monotonic()
        os.killpg(driver.pid, sig) if to_group else driver.send_signal(sig)
        assert driver.wait(timeout=30) == 130
        assert time.monotonic() - sent < 5, "the driver took more than 5 s to stop"
        deadline = time.time() + 10
        while time.time() < deadline and any(alive(p) for p in seen):
            time.sleep(0.1)
        assert not any(alive(p) for p in seen), f"orphaned run processes after {sig.name}"
    finally:
        if driver.poll() is None:
            driver.kill()


def test_the_report_names_the_first_failed_run_its_cause_and_its_log(tmp_path):
    from user_model import fragile_study

    study = fragile_study(tmp_path / "s", execution=Execution(workers=1, progress=False))
    study.run()
    failed = study.results().query("status == 'failed'")
    assert len(failed) == 3 and failed["error"].str.contains("boom at width 16").all()
    first = failed.iloc[0]
    assert (tmp_path / "s" / "logs" / f"{first.run_id}.log").is_file()
    study.report()
    text = (tmp_path / "s" / "report.md").read_text()
    assert "First failed run: sum width=16" in text and "boom at width 16" in text and "logs/" in text


# -- issue 31: every number bounded, a tune flag the tune does not use refused ---------------------------

TUNE = "tune --task digits_mlp --rules sum --decades 1 --points-per-decade 2 --epochs 1 --depth 1 --no-progress".split()
RUN = ["study", "run", *TINY_FLAGS]


@pytest.mark.parametrize(
    "argv, message",
    [
        # each of these once crashed (rc -11), raised a traceback or hung past 90 s
        ([*RUN, "--threads", "10000"], "threads must be a whole number from 1 to"),
        (["study", "refine", "{out}", "--threads", "10000"], "threads must be a whole number from 1 to"),
        ([*RUN, "--size-axis", "depth", "--sizes", "1,2", "--width", "1000000000000"], "parameters, more than the"),
        ([*RUN, "--lr-decades", "1e308"], "lr_decades=1e+308 is not allowed: a grid spans at most 30 decades"),
        ([*RUN, "--extend", "sum=1e308"], "a grid spans at most 30 decades"),
        ([*RUN, "--epochs", "1000000000000"], "optimizer steps (1,000,000,000,000 epochs of"),
        ([*TUNE, "--target-width", "1000000000000"], "parameters, more than the"),
        ([*TUNE, "--target-width", "64", "--search", "tpe", "--budget", "1e308"], "budget=1e+308 is not allowed"),
        ([*TUNE, "--target-width", "64", "--search", "tpe", "--sampler-seeds", "1000000000000"], "from 1 to 1000"),
        # accepted and ignored before
        ([*TUNE, "--target-width", "64", "--seeds", "0"], "--seeds is not used by `wdscale tune`"),
        ([*TUNE, "--target-width", "64", "--seeds", "1000000000"], "--seeds is not used by `wdscale tune`"),
        ([*TUNE, "--target-width", "64", "--sampler-seeds", "3"], "--sampler-seeds is not used by --search ladder"),
        ([*TUNE, "--target-width", "64", "--search", "tpe", "--target-seeds", "2"], "not used by --search tpe"),
    ],
    ids=["threads", "refine-threads", "width", "lr-decades", "extend", "epochs", "tune-target", "tpe-budget",
         "sampler-seeds", "tune-seeds-0", "tune-seeds-1e9", "ladder-sampler-seeds", "tpe-target-seeds"],
)  # fmt: skip
def test_a_number_past_its_bound_or_an_unused_tune_flag_is_one_line_before_any_run(tmp_path, capsys, argv, message):
    out = tmp_path / "s"
    argv = [a.replace("{out}", str(out)) for a in argv]
    if argv[0] != "study" or argv[1] != "refine":
        argv += ["--out", str(out)]
    capsys.readouterr()
    started = time.monotonic()
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (out / "runs.sqlite").exists() and time.monotonic() - started < 30


def test_threads_past_the_cores_are_refused_in_the_python_api_too():
    with pytest.raises(ValueError, match=r"threads=10000 is not allowed: threads must be a whole number from 1 to"):
        Execution(threads=10000)
    assert Execution(threads=os.cpu_count() or 1).threads == (os.cpu_count() or 1)


def test_your_model_too_large_to_build_is_refused_at_once_naming_the_size(tmp_path):
    # built for real, width 10^12 was an allocator error; it is counted on the meta device first
    with pytest.raises(ValueError, match=r"width=1000000000000 makes a custom model of [\d,]+ parameters, more than"):
        Study(make_model, load, out=tmp_path, sizes=[8, 10**12], rules=["sum"], seeds=1, lr=1e-2, epochs=1,
              batch_size=50).run(progress=False)  # fmt: skip
    assert not (tmp_path / "runs.sqlite").exists()


# -- issue 31: stored and exported runs checked on read --------------------------------------------------

FINDINGS = Path(__file__).parents[3] / "docs" / "findings"


def _edited(df, case):
    import numpy as np

    return {  # each was analysed as if right: recommended, sorted as text, or read as a loss
        "rule unknown": lambda: df.assign(rule=df["rule"].where(df.index != 5, "bogus")),
        "rule a number": lambda: df.assign(rule=7),
        "size text": lambda: df.assign(size=df["size"].astype(str)),
        "val_loss all NaN": lambda: df.assign(val_loss=np.nan),
        "val_loss boolean": lambda: df.assign(val_loss=True),
        "val_loss words": lambda: df.assign(val_loss="low"),
        "status unknown": lambda: df.assign(status=df["status"].where(df.index != 3, "great")),
        "no evaluations": lambda: df.assign(evals_per_epoch=0),
    }[case]()


@pytest.mark.parametrize(
    "case, message",
    [
        ("rule unknown", "column 'rule' holds 'bogus' at row 5"),
        ("rule a number", "column 'rule' holds 7 at row 0"),
        ("size text", "column 'size' holds '32' at row 0"),
        ("val_loss all NaN", "column 'val_loss' holds nan at row 0"),
        ("val_loss boolean", "column 'val_loss' holds True at row 0"),
        ("val_loss words", "column 'val_loss' holds 'low' at row 0"),
        ("status unknown", "column 'status' holds 'great' at row 3"),
        ("no evaluations", "column 'evals_per_epoch' holds 0 at row 0"),
    ],
)
def test_an_export_edited_to_hold_what_no_run_can_is_refused_by_every_reader(tmp_path, capsys, case, message):
    import pandas as pd

    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(FINDINGS / "digits_width" / "plan.json", study)
    _edited(pd.read_parquet(FINDINGS / "digits_width" / "runs.parquet"), case).to_parquet(study / "runs.parquet")
    before = digest(study)
    for command in (
        ["study", "report", str(study), "--to", str(tmp_path / "report")],
        ["advise", str(study), "--target-width", "1024"],
        ["study", "status", str(study)],
        ["study", "refine", str(study)],
        ["study", "relabel", str(study)],
    ):
        assert cli(*command) == 2, command
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (command, err)
    assert digest(study) == before  # no store made from it, nothing relabelled


def test_a_store_edited_by_hand_is_refused_on_read(tiny_study, tmp_path, capsys):
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    with sqlite3.connect(study / "runs.sqlite") as db:
        db.execute("UPDATE runs SET rule='bogus' WHERE run_id=(SELECT MIN(run_id) FROM runs)")
    db.close()
    assert cli("study", "report", str(study)) == 2
    assert "runs.sqlite': column 'rule' holds 'bogus' at row" in capsys.readouterr().err
    from wdscale.study.run.store import load_runs

    with pytest.raises(ValueError, match="column 'rule' holds 'bogus'"):
        load_runs(study)


# -- issue 31: a directory holds one plan, tune and training function included -----------------------


def _steps(run) -> None:
    for _ in range(run.steps):  # the plan's steps (a training function must take them)
        run.optimizer.step()


def _loss_a(run) -> float:
    _steps(run)
    return 1.0 + run.config.setting


def _loss_b(run) -> float:
    _steps(run)
    return 2.0 + run.config.setting


def _own_training(out, train_fn, sizes=(8, 16)):
    return Study(make_model, out=out, train_fn=train_fn, sizes=list(sizes), rules=["sum"], seeds=1, lr=1e-2,
                 epochs=1, batch_size=50, n_train=300, decades=1.0, points_per_decade=2,
                 execution=Execution(workers=1, progress=False))  # fmt: skip


def test_a_study_resumed_or_grown_with_another_training_function_is_refused(tmp_path):
    out = tmp_path / "s"
    _own_training(out, _loss_a).run()
    before = digest(out)
    for other in (_own_training(out, _loss_b), _own_training(out, _loss_b, sizes=(8, 16, 32))):  # resumed, grown
        with pytest.raises(ValueError, match=r"holds runs trained by test_reliability:_loss_a, and this study trains "
                           r"with test_reliability:_loss_b"):  # fmt: skip
            other.run()
    assert digest(out) == before  # nothing written, nothing mixed
    _own_training(out, _loss_a, sizes=(8, 16, 32)).run()  # the same function may grow the study
    df = frame(out)
    assert set(df["size"]) == {8, 16, 32} and (df["val_loss"] - (1.0 + df["setting"])).abs().max() < 1e-9


def test_two_files_of_one_name_are_two_training_functions(tmp_path):
    from wdscale.loading import load_object
    from wdscale.study.run.identity import trained_by

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mytrain.py").write_text("def train(run):\n    return 1.0\n")
    a = load_object(str(tmp_path / "a" / "mytrain.py") + ":train", "--train")
    b = load_object(str(tmp_path / "b" / "mytrain.py") + ":train", "--train")
    assert trained_by(a) == f"{tmp_path / 'a' / 'mytrain.py'}:train" != trained_by(b)
    assert trained_by(_loss_a) == "test_reliability:_loss_a" and trained_by(None) == "wdscale's own training loop"
    from wdscale.study.run.command import Command

    assert trained_by(None, Command.parse("python train.py --lr {lr}")) == "the command 'python train.py --lr {lr}'"
