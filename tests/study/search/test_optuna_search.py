"""Optuna's TPE (and TPE with its HyperbandPruner) at the target: the baseline `tune` is measured against."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from bowl import study
from scipy import stats

import wdscale
from wdscale.cli import main
from wdscale.study.analysis.study_analysis import core_seconds
from wdscale.study.plan.study_plan import StudyPlan, resolve
from wdscale.study.plan.tasks import get_task
from wdscale.study.run.store import load_runs
from wdscale.study.search.optuna_search import TRIALS_FILE, counted_work, optuna_search

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
    # the sweep: 3 lrs × 3 settings at width 64, one seed each; half of it is 4.5 runs: the trials go on
    # until it is reached, the fifth crossing it (rounding down once gave the ladder more compute)
    assert (runs["size"] == 64).all() and len(trials) == 5 == len(runs)
    per_run = float(runs["n_params"].iloc[0]) * runs["n_train"].iloc[0] * 3
    assert (trials["state"] == "complete").all() and counted_work(out) == pytest.approx(5 * per_run)
    assert trials["core_s"].to_numpy() == pytest.approx(
        (runs.set_index("lr").loc[trials["lr"], "cpu_time"]).to_numpy()  # each run's CPU seconds
    )
    printed = capsys.readouterr().out
    assert "by tpe there" in printed and f"val loss {runs['val_loss'].min():.4f}" in printed
    # TPE's random start is a third of the 5 trials the budget affords (Optuna's default, 10, is all of them)
    assert list(trials["sampled_by"]) == ["random", "random", "tpe", "tpe", "tpe"]
    # the same command again asks the same points (a seeded sampler, values read back) and trains none;
    # asked to re-score, it trains the pick on 2 fresh seeds, apart from the search's runs
    _, again, runs_again = search(tmp_path, "tpe", "--search", "tpe", "--budget", "0.5", "--rescore-seeds", "2")
    assert len(runs_again) == len(runs) and again[["rule", "lr", "setting"]].equals(trials[["rule", "lr", "setting"]])
    fresh = load_runs(out / "rescore")
    assert sorted(fresh["seed"]) == [1000, 1001] and fresh["val_loss"].notna().all()
    printed = capsys.readouterr().out
    assert (
        f"re-scored on 2 fresh seed(s) (1000…1001, never used by the search): val loss {fresh['val_loss'].mean():.4f}"
        in printed
    )


def test_the_space_searched_is_what_the_ladder_reaches_not_its_bottom_grid(tmp_path):
    out, trials, runs = search(tmp_path, "tpe", "--search", "tpe", "--budget", "0.5")
    plan = StudyPlan.from_stored(json.loads((out / "plan.json").read_text()))
    bottom = resolve(plan, get_task(plan.task)).lrs  # the ladder's bottom grid: lr × 10^(−0.5, 0, 0.5)
    # by hand: the ladder 4, 16, 64 moves one step at its middle rung and two more at the target (the
    # laws' point), half a decade each: 1.5 decades past each end of its bottom grid; each recipe's 3
    # settings a decade apart, 3 decades past their ends
    assert (trials["lr_lo"] == trials["lr_lo"].iloc[0]).all() and (trials["lr_hi"] == trials["lr_hi"].iloc[0]).all()
    assert trials["lr_lo"].iloc[0] == pytest.approx(bottom[0] / 10**1.5, rel=1e-3)
    assert trials["lr_hi"].iloc[0] == pytest.approx(bottom[-1] * 10**1.5, rel=1e-3)
    assert (trials["setting_hi"] / trials["setting_lo"]).to_numpy() == pytest.approx(1e8, rel=1e-3)
    assert trials["lr"].between(trials["lr_lo"], trials["lr_hi"]).all()
    assert trials["setting"].between(trials["setting_lo"], trials["setting_hi"]).all()
    # the old search was held to the bottom grid's lrs; some trial here went past them
    assert ((trials["lr"] < bottom[0] * 0.99) | (trials["lr"] > bottom[-1] * 1.01)).any()


def bowl_search(s, out, **kw):
    """An Optuna search on the bowl study's family at width 256 (its ladder: 16, 64, 256)."""
    return optuna_search(s.plan, out, 256, source=s.source, task=s.task, model_fn=s.model_fn,
                         execution=s.execution, **kw)  # fmt: skip


def test_a_budget_of_one_trial_is_random_search_and_says_so(tmp_path):
    s = study(tmp_path)
    result = bowl_search(s, tmp_path / "one", budget=0.01)
    trials = pd.read_csv(tmp_path / "one" / TRIALS_FILE)
    # a fifth of a run: one trial, the sampler's random start: not TPE
    assert len(trials) == 1 and list(trials["sampled_by"]) == ["random"]
    assert result.method == "random" and "by random there" in str(result)
    hb = bowl_search(s, tmp_path / "hb", search="tpe_hyperband", budget=0.01)
    assert hb.method == "random_hyperband"


def test_fresh_seeds_rescore_the_pick_apart_from_the_search(tmp_path):
    s = study(tmp_path)
    out = tmp_path / "tpe"
    result = bowl_search(s, out, budget=0.1, rescore_seeds=3)
    runs, fresh = load_runs(out), load_runs(out / "rescore")
    # the search's store holds its own runs only; the pick's 3 runs at seeds it never used lie apart
    assert len(runs) == len(pd.read_csv(out / TRIALS_FILE)) and len(fresh) == 3
    assert sorted(fresh["seed"]) == [1000, 1001, 1002] and not set(fresh["seed"]) & set(runs["seed"])
    assert (fresh["rule"] == result.rule).all() and (fresh["size"] == 256).all()
    assert np.allclose(fresh["lr"], result.lr) and np.allclose(fresh["setting"], result.setting)
    r = result.rescore
    assert r is not None and r.seeds == (1000, 1001, 1002) and r.loss == pytest.approx(fresh["val_loss"].mean())
    half = stats.t.ppf(0.95, 2) * fresh["val_loss"].std(ddof=1) / math.sqrt(3)  # Student t over its 3 seeds
    assert (r.loss_lo, r.loss_hi) == pytest.approx((r.loss - half, r.loss + half))
    assert result.core_s == pytest.approx(float(runs["cpu_time"].sum())) and (runs["cpu_time"] > 0).all()
    assert "re-scored on 3 fresh seed(s) (1000…1002, never used by the search)" in str(result)
    # again: nothing trained again, the same score
    again = bowl_search(s, out, budget=0.1, rescore_seeds=3)
    assert len(load_runs(out / "rescore")) == 3 and again.rescore == r


def test_every_searchs_pick_is_rescored_on_the_same_fresh_seeds(tmp_path):
    # issue 34: several searches in one directory (sampler seeds) are one draw each, so each one's
    # pick is re-trained on the fresh seeds (was: the first search's only, the median not scorable)
    s = study(tmp_path)
    out = tmp_path / "tpe"
    result = bowl_search(s, out, budget=0.1, rescore_seeds=2, sampler_seeds=3)
    runs, trials, fresh = load_runs(out), pd.read_csv(out / TRIALS_FILE), load_runs(out / "rescore")
    for k in range(3):
        done = trials[(trials["sampler_seed"] == k) & (trials["state"] == "complete")]
        mine = runs[[any(r.rule == t.rule and np.isclose(r.lr, t.lr, rtol=1e-6) and np.isclose(r.setting, t.setting)
                         for t in done.itertuples()) for r in runs.itertuples()]]  # fmt: skip
        pick = mine.loc[mine["val_loss"].idxmin()]
        at = fresh[(fresh["rule"] == pick["rule"]) & np.isclose(fresh["lr"], pick["lr"])
                   & np.isclose(fresh["setting"], pick["setting"])]  # fmt: skip
        assert sorted(at["seed"]) == [1000, 1001], k
    assert result.rescore is not None and result.rescore.seeds == (1000, 1001)


def test_more_searches_resume_the_earlier_ones_in_the_same_directory(tmp_path):
    # each search is its own sampler seed's: a third one added later replays the first two from the
    # store (nothing retrained, the same points asked) and trains only its own new points
    s = study(tmp_path)
    out = tmp_path / "tpe"
    bowl_search(s, out, budget=0.1, sampler_seeds=2)
    runs, trials = load_runs(out), pd.read_csv(out / TRIALS_FILE)
    bowl_search(s, out, budget=0.1, sampler_seeds=3)
    more, grown = load_runs(out), pd.read_csv(out / TRIALS_FILE)
    first = grown[grown["sampler_seed"] < 2].reset_index(drop=True)
    assert first[["rule", "lr", "setting", "state"]].equals(trials[["rule", "lr", "setting", "state"]])
    assert set(runs["run_id"]) <= set(more["run_id"]) and len(more) > len(runs)
    assert (grown["sampler_seed"] == 2).any()
    # any other argument still refuses the directory
    with pytest.raises(wdscale.WdscaleError, match="holds a tune with other arguments"):
        bowl_search(s, out, budget=0.2, sampler_seeds=3)


def test_match_compute_spends_at_least_a_ladders_core_seconds(tmp_path):
    s = study(tmp_path)
    first = bowl_search(s, tmp_path / "one", budget=0.01)  # one run at the target: a ladder's is made from it
    runs = load_runs(tmp_path / "one")
    one = float(core_seconds(runs).iloc[0])  # its CPU seconds
    # a ladder's directory: its core-seconds 6 such runs, one of its points far outside the bottom grid's
    # reach (where a ladder's bracketing went)
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    far = runs.assign(size=16, lr=1e-7, setting=1e-9, wall_time=5 * one, cpu_time=5 * one, run_id="far")
    pd.concat([runs, far]).reset_index(drop=True).to_parquet(ladder / "runs.parquet")
    given = 6 * one
    result = bowl_search(s, tmp_path / "matched", match_compute=ladder)
    trials = pd.read_csv(tmp_path / "matched" / TRIALS_FILE)
    spent = trials["core_s"].to_numpy()
    # at least the ladder's core-seconds, the last trial crossing it, and never a trial more
    assert spent.sum() >= given and spent[:-1].sum() < given
    assert result.given_core_s == pytest.approx(given) and result.core_s == pytest.approx(spent.sum())
    assert result.overshoot == pytest.approx(spent.sum() / given - 1) and f"given {given:.3g} core-s" in str(result)
    # the space covers every point the ladder trained
    assert (trials["lr_lo"] <= 1e-7).all() and (trials["setting_lo"] <= 1e-9).all()
    assert first.budget == 0.01 and result.budget is None
    with pytest.raises(wdscale.WdscaleError, match="give the compute one way: budget=0.2 or match_compute"):
        bowl_search(s, tmp_path / "x", budget=0.2, match_compute=ladder)
    far_only = tmp_path / "far"  # a directory with no run at the target is no ladder to this target
    far_only.mkdir()
    far.to_parquet(far_only / "runs.parquet")
    with pytest.raises(wdscale.WdscaleError, match="holds no run of task 'custom' at the target 256"):
        bowl_search(s, tmp_path / "x", match_compute=far_only)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--match-compute", "x"], "--match-compute is not used by --search ladder"),
        (["--search", "mutransfer", "--target-seeds", "2"], "--target-seeds is not used by --search mutransfer"),
        (["--search", "laws", "--sampler-seeds", "2"], "--sampler-seeds is not used by --search laws"),
        (["--search", "tpe", "--match-compute", "nowhere"], "'nowhere' does not exist"),
    ],
)
def test_a_peers_flag_another_search_does_not_use_is_refused(tmp_path, capsys, extra, message):
    assert main([*TINY.split(), "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x" / "runs.sqlite").exists()


def test_rescore_seeds_past_the_bound_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*TINY.split(), "--out", str(tmp_path / "x"), "--rescore-seeds", "65"])
    assert "expected a whole number of fresh seeds from 0 to 64, got '65'" in capsys.readouterr().err


def test_hyperband_counts_a_pruned_trial_to_the_epoch_it_was_stopped(tmp_path):
    out, trials, runs = search(tmp_path, "hb", "--search", "tpe_hyperband", "--budget", "1")
    per_run = float(runs["n_params"].iloc[0]) * runs["n_train"].iloc[0] * 3
    pruned = trials[trials["state"] == "pruned"]
    assert set(trials["state"]) <= {"pruned", "complete"} and (pruned["epochs"] < 3).all()
    # a run that diverged stopped at its first bad epoch (and is counted whole, as the ladder counts one);
    # every other trial is counted to the epoch it was stopped at (its run trained to the end: the same losses)
    ran = trials[np.isfinite(trials["loss"]) | (trials["state"] == "pruned")]
    assert len(ran) >= 3 and (ran.loc[ran["state"] == "complete", "epochs"] == 3).all()
    assert ran["work"].to_numpy() == pytest.approx(per_run * ran["epochs"].to_numpy() / 3)
    # the budget, the 9-point sweep, reached: the last trial crosses it
    last = float(trials["work"].iloc[-1])
    assert per_run * 9 <= counted_work(out) < per_run * 9 + last
    assert len(runs) == trials[["rule", "lr", "setting"]].drop_duplicates().shape[0]  # each trial one stored run
    # resumed (here, or in another process): the same trials, pruned alike, nothing trained again (the
    # pruner brackets a trial by a hash of the study's name, once Optuna's random one)
    _, again, runs_again = search(tmp_path, "hb", "--search", "tpe_hyperband", "--budget", "1")
    asked = ["rule", "lr", "setting", "state", "epochs"]
    assert again[asked].equals(trials[asked])
    assert len(runs_again) == len(runs)


def test_hyperband_prunes_a_one_pass_scheduled_run_at_evaluations_within_it(tmp_path):
    """Once refused (a schedule's lr at an epoch depends on the run's length): every trial is planned
    for the full run, so its losses up to an evaluation are what stopping there would have shown."""
    out, trials, runs = search(tmp_path, "hb1", "--search", "tpe_hyperband", "--budget", "1", "--epochs", "1",
                               "--schedule", "linear", "--warmup", "0.1")  # fmt: skip
    per_run = float(runs["n_params"].iloc[0]) * runs["n_train"].iloc[0]
    assert (runs["epochs"] == 1).all() and (runs["evals_per_epoch"] == 9).all() and (runs["schedule"] == "linear").all()
    finished = runs[runs["status"] == "ok"]
    assert len(finished) >= 3 and (finished["history"].map(len) == 9).all()
    pruned = trials[trials["state"] == "pruned"]
    assert len(pruned) >= 1 and (pruned["epochs"] < 9).all()
    ran = trials[np.isfinite(trials["loss"]) | (trials["state"] == "pruned")]
    assert ran["work"].to_numpy() == pytest.approx(per_run * ran["epochs"].to_numpy() / 9)
    assert per_run * 9 <= counted_work(out) < per_run * 9 + float(trials["work"].iloc[-1])


def test_an_optuna_search_without_a_budget_is_refused(tmp_path, capsys):
    argv = [*TINY.split(), "--out", str(tmp_path / "x"), "--search", "tpe", "--budget", "none"]
    assert main(argv) == 2  # once ran at the default tenth as if asked
    assert "--search tpe needs a fraction > 0 of one recipe's sweep: --budget 'none'" in capsys.readouterr().err
