"""The examples under examples/ run on tiny configs and do what they say."""

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
import wdscale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_name(groups, names_of):
    return {names_of[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_hf_trainer_trains_with_wdscales_groups(tmp_path):
    pytest.importorskip("accelerate")
    example = load("hf_trainer")
    trainer = example.main(steps=6, out_dir=str(tmp_path))
    model = trainer.model
    names_of = {id(p): n for n, p in model.named_parameters()}
    expected = wdscale.param_groups(model, rule="mup", lr=3e-3, weight_decay=0.1, base=example.gpt2(32))
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert by_name(opt.param_groups, names_of) == by_name(expected, names_of)
    hidden = next(g for g in opt.param_groups if g["kind"] == "hidden")
    assert hidden["lr"] == pytest.approx(3e-3 / 2) and hidden["weight_decay"] == pytest.approx(0.2)  # m = 64/32
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 6 and losses[-1] < 0.95 * losses[0]


def test_lightning_style_configure_optimizers_holds_tau_in_every_group():
    example = load("lightning_style")
    module, losses = example.main(width=64, base_width=32, epochs=3)
    opt = module.configure_optimizers()
    steps_per_epoch = 32 / 8
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    assert decayed and type(opt).__name__ == "AdamW"
    for g in decayed:  # τ in epochs = 1 / (η_g λ_g) / (N / B), the rule's promise
        assert 1 / (g["lr"] * g["weight_decay"]) / steps_per_epoch == pytest.approx(5.0)
    hidden = [g["lr"] for g in opt.param_groups if g["kind"] == "hidden"]
    assert hidden and all(lr == pytest.approx(3e-3 / 2) for lr in hidden)  # μP lr at m = 64/32
    per_epoch = [sum(losses[i : i + 4]) / 4 for i in range(0, 12, 4)]
    assert per_epoch[-1] < per_epoch[0]


def test_docs_explain_output_is_what_the_command_prints(monkeypatch, capsys):
    """docs/real-models.md shows `wdscale explain` output; it must be what that command prints now."""
    from wdscale.cli import main

    text = (ROOT / "docs" / "real-models.md").read_text()
    blocks = re.findall(r"```\n\$ (wdscale explain [^\n]+)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(ROOT)  # the commands are run from the repository root
    for command, shown in blocks:
        assert main(command.split()[1:]) == 0, command
        assert capsys.readouterr().out.strip() == shown.strip(), command


GPT2 = "examples/gpt2_your_training.py"
TINY_GPT2 = (
    "--sizes 8,16 --rules decoupled,mup --seeds 1 --decades 1 --points-per-decade 2 --n-train 64 --batch-size 16 "
    "--epochs 1 --lr 0.003 --schedule cosine --warmup 0.1 --final-lr 0.1 --workers 1 --no-progress"
).split()


def _stored(db):
    import sqlite3

    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_gpt2_in_your_own_loop_runs_survives_kill_resumes_refines_and_advises(tmp_path):
    """Your training function (DataLoader, warmup + cosine, clipping) behind the command line: a
    SIGKILL mid-study loses no finished run, the resume trains the rest once, refine and advise work."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from wdscale.cli import main
    from wdscale.study.run.store import load_runs

    out = tmp_path / "gpt2"
    own = ["--model", f"{GPT2}:gpt2", "--train", f"{GPT2}:train"]
    cmd = [sys.executable, "-m", "wdscale.cli", "study", "run", "--out", str(out), *own, *TINY_GPT2]
    log = tmp_path / "driver.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stderr=err)
        deadline = time.time() + 300
        while _stored(out / "runs.sqlite") < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _stored(out / "runs.sqlite")
    assert 3 <= before < 12, f"the kill should land mid-study (rc {proc.returncode}): {log.read_text()[-2000:]}"
    cwd = os.getcwd()
    os.chdir(ROOT)  # the --model/--train paths are relative to the repository
    try:
        assert main(["study", "run", "--out", str(out), *own, *TINY_GPT2]) == 0
        df = load_runs(out)
        assert len(df) == 12 and df["run_id"].is_unique and (df["status"] == "ok").all()
        assert (df["path"] == "user").all() and (df["steps"] == 4).all() and (df["schedule"] == "cosine").all()
        refine = ["study", "refine", str(out), *own, "--max-seeds", "2", "--seeds-at", "ends", "--workers", "1"]
        assert main([*refine, "--no-progress"]) == 0
        assert len(load_runs(out)) > 12
        assert main(["advise", str(out), "--target-width", "64"]) == 0
        assert main(["study", "report", str(out)]) == 0
    finally:
        os.chdir(cwd)


def test_gpt2_through_the_transformers_trainer_keeps_the_rules_groups_and_the_plans_steps(tmp_path):
    pytest.importorskip("accelerate")
    example = load("gpt2_your_training")
    s = example.study(
        out=str(tmp_path / "t"), sizes=[8, 16], rules=["mup"], seeds=1, decades=1, n_train=32, epochs=1,
        batch_size=16, execution=wdscale.Execution(workers=1, progress=False),
        train_fn=example.train_with_trainer,
    )  # fmt: skip
    s.run()
    df = s.results()
    assert len(df) == 6 and (df["status"] == "ok").all() and (df["steps"] == 2).all() and df["error"].isna().all()


def test_a_lightning_style_module_trains_a_studys_runs(tmp_path):
    """configure_optimizers returns the study's optimizer and the plan's schedule stepped per step."""
    example = load("lightning_style")
    s = wdscale.Study(
        example.vit, train_fn=example.train, sizes=[32, 64], rules=["timescale"],
        settings={"timescale": [1.0, 3.0, 10.0]}, seeds=1, n_train=32, batch_size=8, epochs=2, lr=3e-3,
        schedule="cosine", warmup=0.25, out=tmp_path / "l",
        execution=wdscale.Execution(workers=1, progress=False),
    )  # fmt: skip
    s.run()
    df = s.results()
    assert len(df) == 6 and (df["status"] == "ok").all() and (df["steps"] == 8).all() and df["error"].isna().all()
    assert (df["path"] == "user").all() and df["val_loss"].between(0.1, 5).all()
