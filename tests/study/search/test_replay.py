"""Replay: `tune_study` on a committed sweep, every run answered by the sweep's, nothing trained."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wdscale
from wdscale.study.plan.study_plan import with_refined
from wdscale.study.plan.tasks import get_task
from wdscale.study.search import tune
from wdscale.study.search.replay import SweepOracle, lattice_gap, load_sweep, replay_tune, sweep_gap, sweep_plan

SWEEP = Path(__file__).parents[3] / "docs" / "findings" / "joint_width"  # mnist1d MLP, widths 32, 128, 512


@pytest.fixture(scope="module")
def sweep():
    return load_sweep(SWEEP)


def _no_training(*args, **kwargs):
    raise AssertionError("the replay trained a run")


def test_a_replayed_tune_trains_nothing_and_answers_with_the_sweeps_runs(sweep, monkeypatch):
    monkeypatch.setattr(tune, "run_study", _no_training)  # a bypassed oracle would train here
    plan = sweep_plan(SWEEP)
    assert plan.refined == {} and plan.rules == ["sum", "decoupled", "mup"]
    r = replay_tune(sweep, plan, 512, rungs=[32, 128, 512], budget=0.1)
    res = r.result
    assert res.rungs == (32, 128, 512) and res.seeds == 1 and 0 < res.fraction <= 0.1
    # the pick's loss at the target is the sweep's own run there: its first seed at that point
    at = sweep[(sweep["size"] == 512) & (sweep["rule"] == res.rule)]
    at = at[np.isclose(at["lr"], res.lr, rtol=1e-3) & np.isclose(at["setting"], res.setting, rtol=1e-3)]
    assert res.loss == pytest.approx(float(at.sort_values("seed")["val_loss"].iloc[0]), rel=1e-12)
    # scored on the sweep: every seed it trained at the pick, against its best over every recipe
    means = sweep[sweep["size"] == 512].groupby(["rule", "lr", "setting"])["val_loss"].mean()
    assert r.pick_loss == pytest.approx(float(at["val_loss"].mean()))
    assert r.best_loss == pytest.approx(float(means.min())) and r.gap == pytest.approx(r.pick_loss / r.best_loss - 1)
    assert 0 < r.asked and 0 <= r.unavailable < r.asked
    assert (r.pick_loss, r.best_loss, r.gap) == sweep_gap(sweep, 512, res.rule, res.lr, res.setting)
    # the pick lies on the climb's lattice: never below the lattice's best (here the sweep's best itself)
    assert lattice_gap(sweep, plan, 512, [32, 128, 512]) == 0.0 <= r.gap
    # deterministic: the same replay again picks the same point; each variant of the climb replays too
    assert replay_tune(sweep, plan, 512, rungs=[32, 128, 512], budget=0.1).result.lr == res.lr
    for optimum in tune.OPTIMA:
        assert np.isfinite(replay_tune(sweep, plan, 512, rungs=[32, 128, 512], optimum=optimum).gap)
    with pytest.raises(wdscale.WdscaleError, match="trains the pick for real"):
        replay_tune(sweep, plan, 512, rungs=[32, 128, 512], rescore_seeds=1)


def test_a_point_or_seed_off_the_sweep_is_answered_as_failed_and_charged(sweep):
    plan = dataclasses.replace(sweep_plan(SWEEP), sizes=[32, 128], rules=["mup"], seeds=1, grid_sizes=[])
    off = with_refined(plan, {"mup@32": {(0.01, 100.0): 1, (0.001, 0.4688): 4}})  # λ 100: never swept
    oracle = SweepOracle(sweep, get_task(plan.task))
    runs = oracle(off).set_index(["setting", "seed"])
    assert runs.loc[(100.0, 0), "status"] == "failed" and np.isnan(runs.loc[(100.0, 0), "val_loss"])
    assert runs.loc[(100.0, 0), "n_params"] == runs.loc[(0.4688, 0), "n_params"]  # charged a run's compute
    swept = sweep[(sweep["rule"] == "mup") & (sweep["size"] == 32) & np.isclose(sweep["lr"], 0.001)]
    swept = swept[np.isclose(swept["setting"], 0.4688, rtol=1e-3)].sort_values("seed")
    n = len(swept)  # the sweep's seeds at that point: the ladder's seed k is its k-th, those past them failed
    assert 2 <= n < 4 and oracle.unavailable == 1 + (4 - n) and oracle.asked == 5
    for k in range(4):
        row = runs.loc[(0.4688, k)]
        if k < n:
            assert row["status"] != "failed" and row["val_loss"] == swept["val_loss"].iloc[k]
        else:
            assert row["status"] == "failed"
    # another shuffle answers the same point with the sweep's seeds in another order, the same set
    shuffled = SweepOracle(sweep, get_task(plan.task), shuffle=3)(off).set_index(["setting", "seed"])
    assert sorted(shuffled.loc[0.4688]["val_loss"].iloc[:n]) == sorted(swept["val_loss"])


def test_a_plan_the_sweep_did_not_train_is_refused(sweep):
    plan = dataclasses.replace(sweep_plan(SWEEP), sizes=[32, 128], rules=["mup"], seeds=1, epochs=7)
    with pytest.raises(wdscale.WdscaleError, match="epochs=7.*no oracle"):
        SweepOracle(sweep, get_task(plan.task))(plan)


def _runs(points):
    """A rung's runs from {(lr, setting): [losses]}: rule "r", size 8, seeds 0, 1, …"""
    rows = [
        dict(task="t", rule="r", size=8, lr=lr, setting=s, seed=k, status="ok", val_loss=v)
        for (lr, s), losses in points.items()
        for k, v in enumerate(losses)
    ]
    return pd.DataFrame(rows)


def test_the_variants_choose_a_rungs_optimum_as_they_say():
    steps = {"r": (0.5, 0.5)}
    pick = lambda runs, how: tuple(tune.rung_optima(runs, "val_loss", how, steps)[["lr", "setting"]].iloc[0])  # noqa: E731
    # a lucky point (its seeds 0.88 and 1.10) against a steady one (0.99, 1.00) beside it
    runs = _runs({(0.01, 1.0): [0.88, 1.10], (0.01, 3.162): [0.99, 1.00], (0.03162, 1.0): [1.5]})
    assert pick(runs, "mean") == (0.01, 1.0) and pick(runs, "risk") == (0.01, 1.0)
    assert pick(runs, "spread") == (0.01, 3.162)  # the lucky one's own spread counts against it
    # one seed, best, against a point confirmed on two: "seeded" takes the confirmed one
    runs = _runs({(0.01, 1.0): [0.95], (0.01, 3.162): [0.99, 1.00]})
    assert pick(runs, "mean") == (0.01, 1.0) and pick(runs, "seeded") == (0.01, 3.162)
    # a best point among bad neighbours against a good neighbourhood: "local" takes the neighbourhood
    runs = _runs({(0.01, 1.0): [0.90], (0.01, 3.162): [2.0], (0.1, 0.1): [0.95], (0.1, 0.3162): [0.96]})
    assert pick(runs, "mean") == (0.01, 1.0) and pick(runs, "local") in {(0.1, 0.1), (0.1, 0.3162)}
    with pytest.raises(wdscale.WdscaleError, match="unknown optimum"):
        tune.rung_optima(runs, "val_loss", "median")


def test_a_shuffle_keeps_a_sizes_points_paired_where_their_seed_counts_differ(sweep):
    # width 32 holds points on seeds 0–1 and points refined to 0–3 and 0–5: the ladder's k-th seed
    # must be one sweep seed at every point holding k + 1, or a paired difference compares two inits
    oracle = SweepOracle(sweep, get_task(sweep_plan(SWEEP).task), shuffle=1)
    points = oracle.points[("mup", 32)]
    counts = points["rows"].map(len)
    assert {2, 4, 6} <= set(counts)
    for shuffle in range(1, 9):
        oracle.shuffle = shuffle
        orders = [list(sweep.loc[oracle._ordered(rows, 32), "seed"]) for rows in points["rows"]]
        for k in range(6):
            assert len({tuple(o[: k + 1]) for o in orders if len(o) > k}) == 1  # one order, prefixes of it
        assert set(orders[counts.idxmax()][:2]) == {0, 1}  # the seeds every point holds come first
    # the earlier order (keys alone) answers a refined point's first seed with one the others lack
    unpaired = SweepOracle(sweep, get_task(sweep_plan(SWEEP).task), paired=False)
    firsts = set()
    for shuffle in range(1, 9):
        unpaired.shuffle = shuffle
        firsts.add(int(sweep.loc[unpaired._ordered(points["rows"][counts.idxmax()], 32)[0], "seed"]))
    assert firsts - {0, 1}


def test_each_seeding_replays_within_its_budget_and_a_race_never_picks_or_seeds_a_dropped_point(sweep):
    plan = sweep_plan(SWEEP)
    for seeding in tune.SEEDINGS:
        for budget in (0.1, 0.25):
            r = replay_tune(sweep, plan, 512, rungs=[32, 128, 512], budget=budget, shuffle=1, seeding=seeding)
            assert 0 < r.result.fraction <= budget and np.isfinite(r.gap)
            c = r.result.candidates
            assert not c["dropped"].iloc[0] and (c["dropped"].sum() == 0 or seeding == "race")
            # a dropped candidate got no seed past the round that dropped it: fewer than any survivor's
            if c["dropped"].any():
                assert c.loc[c["dropped"], "n"].max() < c.loc[~c["dropped"], "n"].max()
    with pytest.raises(wdscale.WdscaleError, match="unknown seeding 'fast'"):
        replay_tune(sweep, plan, 512, rungs=[32, 128, 512], seeding="fast")


def test_both_keeps_two_target_runs_back_for_the_carried_and_the_laws_point(sweep):
    # at a tenth of a sweep joint_width's climb affords one target run: the carried optimum alone;
    # "both" keeps a second back at the middle rung, for the best recipe's carried and laws' points
    plan = sweep_plan(SWEEP)
    close = replay_tune(sweep, plan, 512, rungs=[32, 128, 512], budget=0.1, shuffle=0)
    both = replay_tune(sweep, plan, 512, rungs=[32, 128, 512], budget=0.1, shuffle=0, seeding="both")
    assert len(close.result.candidates) == 1 and len(both.result.candidates) == 2
    c = both.result.candidates
    assert c["rule"].nunique() == 1 and c["lr"].nunique() == 2 and both.result.fraction <= 0.1
