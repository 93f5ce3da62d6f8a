"""Optuna's TPE (and TPE with its HyperbandPruner) at the target: the baseline `tune` is measured against."""

import pandas as pd
import pytest

from wdscale.cli import main
from wdscale.study.run.store import load_runs
from wdscale.study.search.optuna_search import TRIALS_FILE, counted_work

pytest.importorskip("optuna")

TINY = (
    "tune --task digits_mlp --target-width 64 --rules decoupled,mup --decades 2 --points-per-decade 1 "
    "--lr-decades 1 --epochs 3 --depth 1 --workers 1 --no-progress"
)


def search(tmp_path, name, *extra):
    out = tmp_path / name
    assert main([*TINY.split(), "--out", str(out), *extra]) == 0
    return out, pd.read_csv(out / TRIALS_FILE), load_runs(out)


def test_tpe_spends_its_budget_at_the_target_alone_and_resumes(tmp_path, capsys):
    out, trials, runs = search(tmp_path, "tpe", "--search", "tpe", "--budget", "0.5")
    # the sweep: 3 lrs × 3 settings at width 64, one seed each; half of it is 4 whole runs
    assert (runs["size"] == 64).all() and len(trials) == 4 == len(runs)
    per_run = float(runs["n_params"].iloc[0]) * runs["n_train"].iloc[0] * 3
    assert (trials["state"] == "complete").all() and counted_work(out) == pytest.approx(4 * per_run)
    printed = capsys.readouterr().out
    assert "by tpe there" in printed and f"val loss {runs['val_loss'].min():.4f}" in printed
    # the same command again asks the same points (a seeded sampler, values read back) and trains none
    _, again, runs_again = search(tmp_path, "tpe", "--search", "tpe", "--budget", "0.5")
    assert len(runs_again) == len(runs) and again[["rule", "lr", "setting"]].equals(trials[["rule", "lr", "setting"]])


def test_hyperband_counts_a_pruned_trial_to_the_epoch_it_was_stopped(tmp_path):
    out, trials, runs = search(tmp_path, "hb", "--search", "tpe_hyperband", "--budget", "1")
    per_run = float(runs["n_params"].iloc[0]) * runs["n_train"].iloc[0] * 3
    pruned = trials[trials["state"] == "pruned"]
    assert set(trials["state"]) <= {"pruned", "complete"} and (pruned["epochs"] < 3).all()
    assert (trials.loc[trials["state"] == "complete", "epochs"] == 3).all()
    # each trial counted to the epoch it was stopped at (its run trained to the end: the same losses)
    assert trials["work"].to_numpy() == pytest.approx(per_run * trials["epochs"].to_numpy() / 3)
    assert per_run * 9 - per_run < counted_work(out) <= per_run * 9  # the budget: the 9-point sweep, spent
    assert len(runs) == trials[["rule", "lr", "setting"]].drop_duplicates().shape[0]  # each trial one stored run


def test_hyperband_under_a_schedule_is_refused(tmp_path, capsys):
    argv = [*TINY.split(), "--out", str(tmp_path / "x"), "--search", "tpe_hyperband", "--schedule", "cosine"]
    assert main(argv) == 2
    assert "tpe_hyperband stops runs early" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_an_optuna_search_without_a_budget_is_refused(tmp_path, capsys):
    argv = [*TINY.split(), "--out", str(tmp_path / "x"), "--search", "tpe", "--budget", "none"]
    assert main(argv) == 2  # once ran at the default tenth as if asked
    assert "--search tpe needs a fraction > 0 of one recipe's sweep: --budget 'none'" in capsys.readouterr().err
