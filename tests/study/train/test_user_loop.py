"""A study whose runs train in the user's own function: what it gets, and what comes back."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from user_model import load, make

import wdscale
from wdscale.cli import main
from wdscale.study import Run
from wdscale.study.run.execution import Execution

ONE = Execution(workers=1, progress=False)


def digits_loader(batch_size):
    x, y, xv, yv = load()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True), (xv, yv)


def my_training(run: Run) -> float:
    """The user's loop: a DataLoader, warmup + cosine through the plan's schedule, clipping."""
    assert run.model.training and next(run.model.parameters()).device == run.device
    loader, (xv, yv) = digits_loader(run.config.batch_size)
    scheduler = run.lr_scheduler()
    step = 0
    for _ in range(run.config.epochs):
        for x, y in loader:
            loss = F.cross_entropy(run.model(x), y)
            run.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
            run.optimizer.step()
            scheduler.step()
            step += 1
        with torch.no_grad():
            val = F.cross_entropy(run.model(xv), yv).item()
        run.report(step, val)
    return val


def study(tmp_path, train_fn, **kw):
    args = dict(
        out=tmp_path / "s", sizes=[8, 16], rules=["sum", "mup"], seeds=1, decades=1, points_per_decade=2, lr=1e-2,
        epochs=2, batch_size=50, n_train=300, schedule="cosine", warmup=0.1, final_lr=0.1, execution=ONE,
    )  # fmt: skip
    return wdscale.Study(make, train_fn=train_fn, **{**args, **kw})


def test_a_study_runs_the_users_training_function(tmp_path, capsys):
    s = study(tmp_path, my_training)
    summary = s.run()
    df = s.results()
    assert summary.ran == len(s.runs()) == 12 and (df["status"] == "ok").all()
    assert (df["path"] == "user").all() and df["error"].isna().all()
    assert (df["steps"] == 2 * math.ceil(300 / 50)).all()  # what the plan assumes, taken
    assert (df["history"].map(len) == 2).all() and (df["schedule"] == "cosine").all()
    assert df["val_loss"].between(0.05, 3).all()
    # resumes: nothing trained twice
    assert s.run().ran == 0
    assert summary.off_plan_steps == 0
    # `study status` knows the total of a study it cannot re-plan (your model, your loop): stored with the plan
    capsys.readouterr()
    assert main(["study", "status", str(s.out)]) == 0
    assert capsys.readouterr().out.startswith("12 of 12 runs stored: 12 ok")


def test_the_run_holds_the_rules_optimizer_the_seeded_model_and_the_schedule(tmp_path):
    checked = tmp_path / "checked"

    def inspect(run):  # runs in the run's own process: what it sees is checked there
        if run.config.size == 32 and run.config.seed == 1:
            check_the_run(run)
            checked.write_text("yes")
        for _ in range(run.steps):
            run.optimizer.step()
        return 1.0

    s = study(tmp_path, inspect, rules=["mup"], sizes=[8, 32], seeds=2)
    s.run()
    df = s.results()
    assert checked.read_text() == "yes" and (df["status"] == "ok").all(), df["error"].dropna().tolist()[:1]


def check_the_run(run):
    assert run.steps == run.config.total_steps == 12
    base = make(8)
    want = wdscale.param_groups(
        make(32), rule="mup", lr=run.config.lr, weight_decay=run.config.setting, base=base,
        data=wdscale.DataFacts(n_samples=300, batch_size=50, epochs=2),
    )  # fmt: skip
    assert sorted((g["lr"], g["weight_decay"]) for g in run.optimizer.param_groups) == sorted(
        (g["lr"], g["weight_decay"]) for g in want
    )
    torch.manual_seed(1)
    fresh = make(32)
    assert all(torch.equal(p, q) for p, q in zip(run.model.parameters(), fresh.parameters()))
    lambdas = [run.lr_lambda(t) for t in range(12)]
    assert lambdas == [run.schedule.multiplier(t, 12) for t in range(12)] and lambdas[0] < 1 and lambdas[-1] < 0.2


def steps_then(value, steps=12, set_lr=None):
    """A train_fn that takes `steps` optimizer steps (set_lr(group, step) first, if given), then
    returns value(run)."""

    def train(run):
        x, y = load()[:2]
        for t in range(steps):
            if set_lr is not None:
                for g in run.optimizer.param_groups:
                    g["lr"] = set_lr(g, t)
            run.optimizer.zero_grad()
            F.cross_entropy(run.model(x[:50]), y[:50]).backward()
            run.optimizer.step()
        return value(run)

    return train


@pytest.mark.parametrize(
    "returns, status, message",
    [
        (lambda run: "0.5", "failed", "train_fn returned '0.5' (str); it must return the run's final validation loss"),
        (lambda run: float("nan"), "diverged", None),
        (lambda run: torch.tensor(0.25), "ok", None),
        (lambda run: 1 / 0, "failed", "ZeroDivisionError: division by zero"),
    ],
    ids=["a string", "nan", "a tensor", "raises"],
)
def test_each_outcome_of_the_function_is_recorded_with_one_clear_message(tmp_path, returns, status, message):
    s = study(tmp_path, steps_then(returns), rules=["sum"])
    if status == "failed":  # every run fails alike: the study stops after its first few, saying why
        with pytest.raises(wdscale.WdscaleError, match="all failed the same way"):
            s.run()
    else:
        s.run()
    df = s.results()
    assert (df["status"] == status).all()
    if message:
        assert df["error"].str.contains(message, regex=False).all()
    if status == "ok":
        assert (df["val_loss"] == 0.25).all()


def test_a_run_that_took_other_steps_than_the_plan_is_flagged(tmp_path, capsys):
    def one_epoch_short(run):
        loader, (xv, yv) = digits_loader(run.config.batch_size)
        for x, y in loader:  # one epoch of two
            run.optimizer.zero_grad()
            F.cross_entropy(run.model(x), y).backward()
            run.optimizer.step()
        return F.cross_entropy(run.model(xv), yv).item()

    s = study(tmp_path, one_epoch_short, rules=["sum"])
    summary = s.run()
    df = s.results()
    assert (df["status"] == "ok").all() and (df["steps"] == 6).all()
    assert df["error"].str.contains("took 6 optimizer steps, the plan assumes 12").all()
    # counted where the user looks: the summary and the end-of-study line
    assert summary.off_plan_steps == len(df) == 6
    assert "done: 6 runs (6 ok; 6 off the plan's steps)" in capsys.readouterr().err


def test_a_run_that_took_no_optimizer_step_fails(tmp_path):
    s = study(tmp_path, lambda run: 0.25, rules=["sum"], sizes=[8, 16])
    with pytest.raises(wdscale.WdscaleError, match="all failed the same way: took no optimizer step"):
        s.run()
    df = s.results()
    assert (df["status"] == "failed").all() and (df["steps"] == 0).all()
    assert df["error"].str.contains("took no optimizer step (the plan assumes 12)", regex=False).all()


def test_a_loop_that_overwrites_every_groups_lr_is_flagged_and_lr_scale_keeps_the_ratios(tmp_path):
    # nanoGPT's loop: for g in opt.param_groups: g["lr"] = lr  -> mup's per-group lrs erased
    nanogpt = steps_then(lambda run: 0.25, set_lr=lambda g, t: 1e-2 * (t + 1) / 12)
    s = study(tmp_path, nanogpt, rules=["mup"], sizes=[8, 32], out=tmp_path / "a")
    s.run()
    df = s.results()
    wide = df[df["size"] == 32]  # width 8 is the base: every group's lr is the base lr there
    assert (wide["status"] == "failed").all() and (wide["val_loss"] == 0.25).all()  # the numbers kept
    assert wide["error"].str.contains('at step 1: group lrs .* g\\["lr"\\] = lr \\* g\\["lr_scale"\\]').all()
    assert (df[df["size"] == 8]["status"] == "ok").all()
    # the same loop through lr_scale keeps the ratios: every run stands
    timm = steps_then(lambda run: 0.25, set_lr=lambda g, t: 1e-2 * (t + 1) / 12 * g["lr_scale"])
    s = study(tmp_path, timm, rules=["mup"], sizes=[8, 32], out=tmp_path / "b")
    s.run()
    assert (s.results()["status"] == "ok").all()


def test_bad_arguments_are_refused_by_name(tmp_path):
    with pytest.raises(wdscale.WdscaleError, match="give n_train="):
        study(tmp_path, my_training, n_train=None)
    with pytest.raises(wdscale.WdscaleError, match="give model_fn too"):
        wdscale.Study(train_fn=my_training, sizes=[8, 16])
    with pytest.raises(wdscale.WdscaleError, match="train_fn must be a function"):
        study(tmp_path, "my_training")


def test_a_one_pass_study_of_your_training_sizes_each_budget_by_its_parameters(tmp_path):
    # tokens_per_param without n_train or epochs: each width trains one pass over 4 × P tokens,
    # a "sample" holding 2 tokens; the step count the training function sees follows
    s = study(tmp_path, my_training, n_train=None, epochs=None, tokens_per_param=4.0, tokens_per_sample=2)
    runs = s.runs()
    for width in (8, 16):
        n_params = sum(p.numel() for p in make(width).parameters())
        assert {(c.n_train, c.epochs) for c in runs if c.size == width} == {(round(4.0 * n_params / 2), 1)}
    with pytest.raises(wdscale.WdscaleError, match="epochs must be 1"):
        study(tmp_path, my_training, n_train=None, epochs=3, tokens_per_param=4.0).runs()


def test_a_failed_runs_whole_traceback_is_kept_in_its_log(tmp_path):
    def broken(run):
        def deep_in_the_users_code():
            raise KeyError("tokenizer_path")

        deep_in_the_users_code()

    s = study(tmp_path, broken, sizes=[8, 16], rules=["sum"], settings={"sum": [0.01, 0.1, 1.0]})
    with pytest.raises(wdscale.WdscaleError, match="all failed the same way: KeyError"):
        s.run()
    failed = s.results()
    log = (tmp_path / "s" / "logs" / f"{failed.iloc[0].run_id}.log").read_text()
    assert "Traceback" in log and "deep_in_the_users_code" in log and "tokenizer_path" in log
