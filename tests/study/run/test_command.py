"""A user's script as a study's unit of work (`--command`): what it gets, what comes back, and what
a crashing, silent or hanging script gets; GPU shares; a run's timeout."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from script_cases import make

import wdscale
from wdscale.cli import main
from wdscale.errors import WdscaleError
from wdscale.study import Study
from wdscale.study.run.execution import Execution
from wdscale.study.run.placement import plan_slots
from wdscale.study.run.store import Store

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
CASES = str(HERE / "script_cases.py")
ONE = Execution(workers=1, progress=False)
TWO = Execution(workers=2, progress=False)


def script_study(tmp_path, case, *, rules=("decoupled", "mup"), execution=ONE, **kw):
    args = dict(out=tmp_path / "s", sizes=[8, 16], rules=list(rules), seeds=1, settings=None, decades=1.0,
                points_per_decade=1, lr=1e-2, epochs=2, batch_size=20, n_train=60, execution=execution)  # fmt: skip
    args.update(kw)
    return Study(make, command=[sys.executable, CASES, case], **args)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_study_runs_a_script_that_calls_current_run(tmp_path):
    s = script_study(tmp_path, "ok", rules=["mup"], execution=TWO)
    summary = s.run()
    df = s.results()
    assert summary.ran == len(s.runs()) == 6 and (df["status"] == "ok").all() and df["run_id"].is_unique
    assert (df["path"] == "command").all() and (df["steps"] == 2 * 3).all()  # counted in the script: the plan's
    assert (df["history"].map(len) == 2).all() and df["n_params"].gt(0).all()
    logs = {p.stem for p in (tmp_path / "s" / "logs").glob("*.log")}
    assert logs == set(df["run_id"])  # one log per run, named by its id, kept
    # the rule's groups reached the script: μP's hidden lr at width 16 is half its base lr (base 8)
    mup16 = df[(df["rule"] == "mup") & (df["size"] == 16)].iloc[0]
    log = (tmp_path / "s" / "logs" / f"{mup16.run_id}.log").read_text()
    assert f"[{float(mup16.lr) / 2!r}, {float(mup16.lr)!r}" in log
    assert s.run().ran == 0  # resumes: nothing twice


def test_a_script_that_does_not_import_wdscale_gets_its_flags_and_is_read_from_its_last_line(tmp_path):
    flags = [sys.executable, str(ROOT / "examples" / "train_flags.py"), "--width", "{width}", "--lr", "{lr}",
             "--wd", "{weight_decay}", "--decay", "{decay}", "--seed", "{seed}", "--epochs", "{epochs}",
             "--batch-size", "{batch_size}", "--n-train", "{n_train}"]  # fmt: skip
    s = Study(lambda w: make_digits(w), command=flags, out=tmp_path / "s", sizes=[8, 16], rules=["decoupled", "mean"],
              seeds=1, decades=1.0, points_per_decade=1, lr=1e-2, epochs=1, batch_size=100, n_train=300,
              execution=TWO)  # fmt: skip
    s.run()
    df = s.results()
    assert (df["status"] == "ok").all() and df["val_loss"].between(0.05, 3).all()
    row = df[(df["rule"] == "mean") & (df["size"] == 16)].iloc[0]
    log = (tmp_path / "s" / "logs" / f"{row.run_id}.log").read_text()
    assert f"--width 16 --lr {float(row.lr)!r}" in log  # the command line as run, first in its log
    assert f"--wd {float(row.setting)!r}" not in log and "--decay coupled" in log  # mean square: L2, λ per parameter


def make_digits(width):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def test_a_per_layer_rule_with_a_flags_only_script_is_refused_before_any_run(tmp_path):
    s = Study(make, command="python train.py --lr {lr} --wd {setting}", out=tmp_path / "s", sizes=[8, 16],
              rules=["mup"], lr=1e-2, epochs=1, batch_size=20, n_train=60, execution=ONE)  # fmt: skip
    with pytest.raises(WdscaleError, match=r"per-layer .* wdscale.current_run\(\)"):
        s.run()
    assert not (tmp_path / "s" / "runs.sqlite").exists()


def test_a_crashing_script_is_stored_failed_with_its_exit_status_and_its_logs_last_lines(tmp_path, capsys):
    s = script_study(tmp_path, "crash", rules=["decoupled"])
    with pytest.raises(WdscaleError, match="all failed the same way: the command ended with exit status 3"):
        s.run()  # every run of its one size fails alike: stopped early, saying why
    df = s.results()
    assert len(df) >= 3 and (df["status"] == "failed").all()
    assert df["error"].str.contains("exit status 3").all() and df["error"].str.contains("boom").all()
    assert "boom: the data path does not exist" in capsys.readouterr().err  # the first failure, shown
    assert all(f"logs/{r.run_id}.log" in r.error for r in df.itertuples())  # each names its log


def test_a_script_that_reports_no_loss_is_failed_saying_how_to_report(tmp_path):
    s = script_study(tmp_path, "no_loss", rules=["decoupled"], decades=0.5)
    with pytest.raises(WdscaleError, match="all failed the same way"):
        s.run()
    df = s.results()
    assert (df["status"] == "failed").all() and df["error"].str.contains(r"finish\(val_loss\)").all()


def test_a_hanging_script_is_killed_at_the_timeout_with_everything_it_started(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(pids))
    s = script_study(tmp_path, "hang", rules=["decoupled"], sizes=[8, 16], decades=0.5,
                     execution=Execution(workers=2, progress=False, run_timeout=4))  # fmt: skip
    started = time.monotonic()
    with pytest.raises(WdscaleError, match="all failed the same way: timed out after 4 s"):
        s.run()
    df = s.results()
    assert (df["status"] == "failed").all() and df["error"].str.startswith("timed out after 4 s").all()
    assert time.monotonic() - started < 60
    spawned = [int(p) for line in pids.read_text().split("\n") if line for p in line.split()]
    assert len(spawned) >= 2 * len(df)  # a run still starting when the study stopped is killed too
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in spawned):
        time.sleep(0.2)
    assert not any(alive(p) for p in spawned), "a hanging run's processes outlived its timeout"


def test_a_script_study_refines_and_advises(tmp_path):
    s = script_study(tmp_path, "bowl", rules=["decoupled"], settings={"decoupled": [0.004, 0.04, 0.4]}, lr=0.02,
                     epochs=1, batch_size=60, n_train=60, execution=TWO)  # fmt: skip
    s.run()
    assert s.refine(points=2, max_seeds=1).added_runs > 0
    assert "decoupled" in str(s.advise(target=64))
    df = s.results()
    assert (df["path"] == "command").all() and df["run_id"].is_unique and (df["status"] == "ok").all()


def test_a_script_is_tuned_up_a_ladder(tmp_path):
    s = script_study(tmp_path, "bowl", rules=["decoupled"], settings={"decoupled": [0.004, 0.04, 0.4]}, lr=0.02,
                     lr_decades=1, lr_points_per_decade=2, epochs=1, batch_size=60, n_train=60,
                     execution=TWO)  # fmt: skip
    result = s.tune(32, rungs=[8, 32], budget=None, max_seeds=1)
    assert result.rungs == (8, 32) and result.rule == "decoupled"
    df = s.results()
    at = df[df["size"] == 32]
    assert (df["path"] == "command").all() and (df["status"] == "ok").all()
    assert result.loss == at.groupby(["lr", "setting"])["val_loss"].mean().min()  # measured at the target


def test_current_run_outside_a_study_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("WDSCALE_RUN", raising=False)
    with pytest.raises(WdscaleError, match="not started by a wdscale study"):
        wdscale.current_run()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--command", ""], "the command is empty"),
        (["--command", "python train.py --lr {learning_rate}"], r"names \{learning_rate\}, which is not a run field"),
        (["--command", "python 'train.py"], "does not parse"),
        (["--command", "python train.py", "--gpus-per-run", "0"], "gpus_per_run=0.0 is not allowed"),
        (["--command", "python train.py", "--gpus-per-run", "0.3"], "1/k of a GPU"),
        (["--command", "python train.py", "--run-timeout", "-5"], "run_timeout=-5.0 is not allowed"),
        (["--command", "python train.py", "--gpus", "0,0"], "names a GPU twice"),
    ],
)
def test_bad_command_flags_are_one_clear_error_before_any_run(tmp_path, capsys, flags, message):
    argv = ["study", "run", "--out", str(tmp_path / "s"), "--model", f"{CASES}:make", "--sizes", "8,16",
            "--n-train", "60", "--batch-size", "20", "--epochs", "1", "--lr", "0.01", *flags]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "s" / "runs.sqlite").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="torchrun with gloo on Linux")
def test_a_study_under_torchrun_with_two_processes_per_run_stores_each_run_once(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "examples" / "train_script.py")]  # fmt: skip
    s = Study(make_digits_one_arg, command=command, out=tmp_path / "s", sizes=[8, 16], rules=["mup"], seeds=1,
              settings={"mup": [0.01, 0.1, 1.0]}, lr=1e-2, epochs=1, batch_size=100, n_train=300,
              execution=TWO)  # fmt: skip
    s.run()
    df = s.results()
    assert len(df) == 6 and df["run_id"].is_unique and (df["status"] == "ok").all()
    assert (df["steps"] == 3).all()  # rank 0's optimizer: the plan's steps, counted once
    for run_id in df["run_id"]:
        lines = (tmp_path / "s" / "logs" / f"{run_id}.log").read_text().splitlines()
        lrs = {line.split(":", 1)[0].split()[1]: line.split(":", 1)[1] for line in lines if "group lrs" in line}
        assert set(lrs) == {"0", "1"} and lrs["0"] == lrs["1"]  # the same per-group lrs on both ranks


def make_digits_one_arg(width):
    sys.path.insert(0, str(ROOT / "examples"))
    from train_script import make_model

    return make_model(width)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_script_study_survives_kill_9_of_its_driver_and_resumes_every_run_once(tmp_path):
    pids = tmp_path / "pids"
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "wdscale", "study", "run", "--out", str(out), "--model", f"{CASES}:make",
            "--command", f"{sys.executable} {CASES} slow", "--sizes", "8,16", "--rules", "decoupled", "--seeds", "1",
            "--decades", "1", "--points-per-decade", "1", "--n-train", "60", "--batch-size", "20", "--epochs", "1",
            "--lr", "0.01", "--workers", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PIDS_FILE": str(pids)}
    driver = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 3):
            time.sleep(0.2)
        assert pids.exists(), "no run started"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    scripts = [int(p) for p in pids.read_text().split()]
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(p) for p in scripts):
        time.sleep(0.2)
    assert not any(alive(p) for p in scripts), "a script outlived its killed driver"
    assert subprocess.run(argv, env=env, stderr=subprocess.DEVNULL).returncode == 0
    with Store(out / "runs.sqlite", readonly=True) as store:
        df = store.frame()
    assert len(df) == 6 and df["run_id"].is_unique and (df["status"] == "ok").all()


# -- GPU shares, checked on CPU with an explicit GPU list ------------------------------------------------


def test_gpu_shares_are_whole_gpus_pairs_or_fractions():
    assert [s.gpus for s in plan_slots(device="cpu", workers=2, gpus=("0", "1", "2"))] == [("0",), ("1",), ("2",)]
    pairs = plan_slots(device="cpu", workers=1, gpus_per_run=2, gpus=("0", "1", "2", "3", "4"))
    assert [s.gpus for s in pairs] == [("0", "1"), ("2", "3")]
    halves = plan_slots(device="cpu", workers=1, gpus_per_run=0.5, gpus=("3", "5"))
    assert [s.gpus for s in halves] == [("3",), ("3",), ("5",), ("5",)]
    assert plan_slots(device="cuda:1", workers=4)[0].gpus == ("1",)
    with pytest.raises(WdscaleError, match="only 2 GPU"):
        plan_slots(device="cpu", workers=1, gpus_per_run=3, gpus=("0", "1"))


def record_share(run):
    """A training function that records the GPU share it ran on and when."""
    start = time.time()
    for _ in range(run.steps):  # the plan's steps: a run that takes none is failed
        run.optimizer.zero_grad()
        run.optimizer.step()
    time.sleep(0.4)
    with open(os.environ["SHARES_FILE"], "a") as f:
        f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES')} {start} {time.time()}\n")
    return 1.0


@pytest.mark.parametrize("gpus_per_run, gpus, expected", [(1, "0,1", {"0", "1"}), (2, "0,1,2,3", {"0,1", "2,3"})])
def test_concurrent_runs_get_disjoint_gpu_shares(tmp_path, monkeypatch, gpus_per_run, gpus, expected):
    shares = tmp_path / "shares"
    monkeypatch.setenv("SHARES_FILE", str(shares))
    s = Study(make, train_fn=record_share, out=tmp_path / "s", sizes=[8, 16], rules=["decoupled"], seeds=1,
              decades=1.0, points_per_decade=2, lr=1e-2, epochs=1, batch_size=20, n_train=60,
              execution=Execution(gpus_per_run=gpus_per_run, gpus=gpus, progress=False))  # fmt: skip
    s.run()
    rows = [line.split() for line in shares.read_text().splitlines()]
    assert len(rows) == len(s.runs()) >= 4 and {r[0] for r in rows} == expected  # every share used
    spans = [(r[0], float(r[1]), float(r[2])) for r in rows]
    for i, (a, s0, e0) in enumerate(spans):
        for b, s1, e1 in spans[i + 1 :]:
            assert a != b or e0 <= s1 or e1 <= s0, f"two runs on GPU share {a} at once"
