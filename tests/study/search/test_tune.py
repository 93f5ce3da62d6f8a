"""wdscale tune: a ladder of sizes climbed to the target's best (lr, setting), measured there."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from bowl import LAM0, LR0, SETTINGS, bowl, study

import wdscale
from wdscale.cli import main
from wdscale.study.plan.study_plan import StudyPlan, refined_point, with_refined
from wdscale.study.run.store import load_runs
from wdscale.study.search import tune
from wdscale.study.search.tune import ladder


def test_the_ladder_finds_an_optimum_that_moves_by_a_known_law(tmp_path):
    s = study(tmp_path)
    result = s.tune(256)  # the default budget: a tenth of one recipe's sweep at the target
    assert result.rungs == (16, 64, 256) and result.rule == "decoupled"
    # within one grid step (half a decade) of the law at the target, in lr and in λ
    assert abs(math.log10(result.lr / (LR0 / 256))) <= 0.5 + 1e-9
    assert abs(math.log10(result.setting / (LAM0 * 256))) <= 0.5 + 1e-9
    runs = load_runs(s.out)
    at = runs[runs["size"] == 256]
    assert (runs[runs["size"] == 16]["lr"].nunique(), runs[runs["size"] == 16]["setting"].nunique()) == (5, 11)
    # the budget holds: the 55-point sweep at 256 is 55 × 256-wide runs; the climb spent ≤ a tenth of it
    assert result.budget == 0.1 and 0 < result.fraction <= 0.1 and 1 <= len(at) <= 3
    assert result.sweep_work == pytest.approx(55 * at["n_params"].iloc[0] * 10)  # 10 samples, 1 epoch
    assert result.loss == pytest.approx(at.groupby(["lr", "setting"])["val_loss"].mean().min())
    assert result.loss_lo < result.loss < result.loss_hi  # one seed: the interval from the pooled seed noise
    assert 0 < result.core_s and "ready call: wdscale.optimizer(" in str(result) and "budget was 10 %" in str(result)
    # resumable: the same tune again trains nothing and gives the same answer
    again = s.tune(256)
    assert len(load_runs(s.out)) == len(runs) and (again.lr, again.setting) == (result.lr, result.setting)
    # with other arguments the stored runs would steer the climb away from a fresh one's: refused
    with pytest.raises(wdscale.WdscaleError, match=r"holds a tune with other arguments \(budget 0.1 there, null here"):
        s.tune(256, budget=None, seeds=2)
    assert len(load_runs(s.out)) == len(runs)
    # no budget and 2 seeds a candidate, in a directory of its own
    s = study(tmp_path, out=tmp_path / "free")
    free = s.tune(256, budget=None, seeds=2)
    more = load_runs(s.out)
    assert len(more[more["size"] == 256]) > len(at) and free.seeds >= 2 and free.fraction > result.fraction
    assert more.groupby(["size", "lr", "setting"]).size().loc[256].min() >= 2
    assert free.loss <= result.loss + 1e-12 and abs(math.log10(free.lr / (LR0 / 256))) <= 0.5 + 1e-9


def test_recipes_out_of_contention_at_the_bottom_do_not_climb(tmp_path):
    # mup's bowl is the same as decoupled's but a whole 1.0 higher in loss: far outside the seed noise
    def two_bowls(run) -> float:
        return bowl(run) + (1.0 if run.config.rule == "mup" else 0.0)

    s = study(tmp_path, rules=["decoupled", "mup"], settings={"decoupled": SETTINGS, "mup": SETTINGS},
              train_fn=two_bowls)  # fmt: skip
    result = s.tune(256, budget=None)
    runs = load_runs(s.out)
    assert result.rule == "decoupled" and set(runs.loc[runs["size"] > 16, "rule"]) == {"decoupled"}


def test_the_ladder_and_bad_values():
    assert ladder(1024) == [64, 256, 1024] and ladder(64, rungs=2, factor=8) == [8, 64]
    with pytest.raises(wdscale.WdscaleError, match="too small for a ladder"):
        ladder(1)


def test_bad_tune_arguments_are_refused_by_name(tmp_path):
    s = study(tmp_path)
    with pytest.raises(wdscale.WdscaleError, match="max_seeds=1 is fewer than seeds=2"):
        s.tune(256, seeds=2, max_seeds=1)
    with pytest.raises(wdscale.WdscaleError, match="budget"):
        s.tune(256, budget=0)
    with pytest.raises(wdscale.WdscaleError, match="bottom_seeds"):
        s.tune(256, bottom_seeds=0)
    with pytest.raises(wdscale.WdscaleError, match="must hold at least two sizes and end at the target"):
        s.tune(256, rungs=[16, 64])


def test_wdscale_tune_on_a_built_in_task(tmp_path, capsys):
    argv = (
        f"tune --task digits_mlp --target-width 64 --rules decoupled,mup --decades 2 --points-per-decade 1 "
        f"--lr-decades 1 --epochs 2 --depth 1 --workers 1 --no-progress --out {tmp_path / 'tune'}"
    ).split()
    # planned before any run: the bottom grid (2 × 9 points and 6 second seeds at width 4) beside a run
    # at width 64 is over a tenth of the 9-point sweep there: refused, saying the budget that fits
    assert main(argv) == 2
    assert "cannot afford the bottom rung's grid (24 runs at width 4" in capsys.readouterr().err
    assert not (tmp_path / "tune" / "runs.sqlite").exists()
    assert main([*argv, "--budget", "0.3"]) == 0
    captured = capsys.readouterr()
    assert "the bottom rung's 24 runs at width 4 take" in captured.err  # the plan, said before it trains
    # width 16 does not fit beside the run at the target: the summary names the rungs climbed
    assert "width 16 beside a run at the target: rung skipped" in captured.err
    assert "tuned for width 64 by climbing 4, 64 (16 skipped: over the budget)" in captured.out
    assert "recommended:" in captured.out and "the budget was 30 %" in captured.out
    assert "% in measured core-seconds" in captured.out
    assert main(["tune", "--task", "digits_mlp", "--out", str(tmp_path / "x")]) == 2  # no target
    for bad in ("0", "-1", "nan", "a lot"):
        with pytest.raises(SystemExit):
            main([*argv, "--budget", bad])
        assert f"expected a fraction > 0 of one recipe's sweep, or 'none', got {bad!r}" in capsys.readouterr().err


def test_every_rung_is_built_before_any_run_and_one_that_cannot_be_is_named(tmp_path):
    def heads_of_32(w, d=1):  # a width under 32 has no attention head: its factory divides by zero
        heads = w // 32
        hidden = (w // heads) * heads
        return torch.nn.Sequential(torch.nn.Linear(2, w), torch.nn.Linear(w, hidden), torch.nn.Linear(hidden, 2))

    s = study(tmp_path, sizes=[64, 128], model=heads_of_32)
    with pytest.raises(wdscale.WdscaleError, match=r"cannot be built at width 16 .*ZeroDivisionError.*rungs="):
        s.tune(256, rungs=[16, 64, 256])
    assert not (s.out / "runs.sqlite").exists()  # before any run


def test_study_tune_climbs_the_studys_sizes_when_they_reach_the_target(tmp_path):
    s = study(tmp_path, sizes=[64, 128, 256])
    # a budget too small for the bottom grid: refused before any run, naming the study's own bottom rung
    with pytest.raises(wdscale.WdscaleError, match=r"bottom rung's grid \(58 runs at width 64:.*budget ≥ "):
        s.tune(256, budget=0.01)
    assert s.plan.sizes == [64, 128, 256] and not (s.out / "runs.sqlite").exists()


def test_a_pick_that_rests_on_a_tie_or_an_edge_says_so():
    import pandas as pd

    from wdscale.study.search.tune import TuneResult, _at_target, _edge_warnings, _ties

    row = dict(size=256, status="ok", seed=0)
    runs = pd.DataFrame([
        {**row, "rule": "mup", "lr": 0.01, "setting": 0.1, "val_loss": 0.998},
        {**row, "rule": "mup", "lr": 0.01, "setting": 0.1, "val_loss": 1.006, "seed": 1},
        {**row, "rule": "decoupled", "lr": 0.01, "setting": 0.1, "val_loss": 1.004},
        {**row, "rule": "mup", "lr": 0.001, "setting": 1.0, "val_loss": 1.5},
        {**row, "rule": "mup", "lr": 0.003, "setting": 0.01, "val_loss": 1.2},
    ])  # fmt: skip
    at = _at_target(runs, 256, "val_loss")
    ties = _ties(runs, at, at.iloc[0], ["mup", "decoupled", "sum"], "val_loss")
    assert len(ties) == 2 and ties[0].startswith("decoupled") and "within seed noise" in ties[0]
    assert ties[1].startswith("sum was within seed noise of mup at the rung below and never trained at the target")
    # the pick (lr 0.01) is the largest lr trained for mup: an edge; its λ 0.1 lies inside 0.01 … 1
    warn = _edge_warnings(runs, "mup", 0.01, 0.1, "λ")
    assert len(warn) == 1 and "lr 0.01 sits on the edge of the lrs trained (0.001 … 0.01)" in warn[0]
    result = TuneResult(
        target=256, axis="width", rungs=(16, 256), rule="mup", lr=0.01, setting=0.1, setting_name="lambda", loss=1.0,
        loss_lo=0.99, loss_hi=1.01, seeds=2, candidates=at, core_s=90.0, sweep_core_s=100.0, work=1.0,
        sweep_work=10.0, call="c", budget=0.1, skipped=(64,), ties=tuple(ties), warnings=tuple(warn),
    )  # fmt: skip
    text = str(result)
    assert "by climbing 16, 256 (64 skipped: over the budget)" in text
    assert "90 % in measured core-seconds" in text and "over the budget" in text and result.core_fraction == 0.9
    assert "a tie: decoupled" in text and "warning: the pick's lr 0.01" in text


def test_a_report_of_a_tune_says_what_it_is(tmp_path, capsys):
    s = study(tmp_path)
    s.tune(256)
    assert main(["study", "report", str(s.out)]) == 2
    assert "holds a tune" in capsys.readouterr().err


def test_recipes_that_tie_exactly_put_the_one_built_to_transfer_first():
    # μP at its base width is AdamW: at the bottom rung their runs are the same, their optima tie
    import pandas as pd

    from wdscale.study.search.tune import _ranked

    o = pd.DataFrame({"rule": ["decoupled", "mup", "sum", "mean"], "mean": [1.0, 1.0, 0.9, 1.0 + 1e-9]})
    assert list(_ranked(o)["rule"]) == ["sum", "mup", "decoupled", "mean"]


def test_a_resumed_climb_decides_as_the_first_one_did_where_seeds_reorder_the_points(tmp_path):
    # seed noise as large as the bowl's curvature near its floor: a second seed moves a point's mean
    # past its neighbours', which once sent a resumed climb to seed and place other points
    def noisy(run) -> float:
        c = run.config
        point = round(1e4 * math.log(c.lr)) + round(1e2 * math.log(c.setting)) * 7919 + c.width * 104729
        return bowl(run) + 1.0 * torch.randn(1, generator=torch.Generator().manual_seed(abs(point) + c.seed)).item()

    s = study(tmp_path, train_fn=noisy)
    first = s.tune(256)
    stored = load_runs(s.out)
    again = s.tune(256)
    assert len(load_runs(s.out)) == len(stored) and (again.rule, again.lr, again.setting) == (
        first.rule,
        first.lr,
        first.setting,
    )


def test_mutransfer_carries_mups_bottom_optimum_to_one_run_at_the_target(tmp_path):
    s = study(tmp_path, rules=["decoupled", "mup"], settings={"decoupled": SETTINGS, "mup": SETTINGS})
    result = s.tune(256, method="mutransfer", budget=None)
    runs = load_runs(s.out)
    # μP's part of the ladder's bottom grid (5 lrs × 11 settings, and second seeds at its best 3), then
    # one run at the target; nothing at the middle rung, nothing of the other recipe
    assert set(runs["rule"]) == {"mup"} and set(runs["size"]) == {16, 256}
    bottom = runs[runs["size"] == 16]
    assert bottom[["lr", "setting"]].drop_duplicates().shape[0] == 55 and (bottom["seed"] == 1).sum() == 3
    means = bottom.groupby(["lr", "setting"])["val_loss"].mean()
    lr, setting = means.idxmin()  # by hand: the bottom's best seed-mean point, carried unchanged
    at = runs[runs["size"] == 256]
    assert len(at) == 1 and (result.rule, result.lr, result.setting) == ("mup", lr, setting)
    assert result.method == "mutransfer" and "by μTransfer from width 16" in str(result)
    with pytest.raises(wdscale.WdscaleError, match=r"carries the mup recipe, not among the rules \['decoupled'\]"):
        study(tmp_path, out=tmp_path / "no-mup").tune(256, method="mutransfer")
    with pytest.raises(wdscale.WdscaleError, match="unknown method 'sweep'"):
        s.tune(256, method="sweep")
    with pytest.raises(wdscale.WdscaleError, match="trains one run at the target: leave seeds"):
        s.tune(256, method="mutransfer", seeds=2)


def test_laws_climbs_as_the_ladder_does_and_trains_its_laws_point_once(tmp_path):
    ladder_result = study(tmp_path, out=tmp_path / "ladder").tune(256)
    s = study(tmp_path, out=tmp_path / "laws")
    result = s.tune(256, method="laws")
    ours, theirs = load_runs(s.out), load_runs(tmp_path / "ladder")
    keys = ["size", "rule", "lr", "setting", "seed"]
    below = {tuple(r) for r in ours.loc[ours["size"] < 256, keys].to_numpy()}
    assert below == {tuple(r) for r in theirs.loc[theirs["size"] < 256, keys].to_numpy()}  # the same climb
    at = ours[ours["size"] == 256]
    assert len(at) == 1 and result.method == "laws" and ladder_result.method == "ladder"
    # by hand: the lines of log lr* and log λ* through the optima at 16 and 64, at 256, on the half-decade
    # lattices (lr anchored at 0.01, λ at 1e-4)
    best = ours[ours["size"] < 256].groupby(["size", "lr", "setting"])["val_loss"].mean().reset_index()
    best = best.loc[best.groupby("size")["val_loss"].idxmin()].sort_values("size")
    x = np.log(best["size"].to_numpy(float))

    def law(col, anchor):
        v = math.exp(np.polyval(np.polyfit(x, np.log(best[col].to_numpy(float)), 1), math.log(256)))
        return float(f"{anchor * 10 ** (round(2 * math.log10(v / anchor)) / 2):.4g}")

    assert (result.lr, result.setting) == pytest.approx((law("lr", 0.01), law("setting", 1e-4)))
    # the bowl's law at 256: within one half-decade step
    assert abs(math.log10(result.lr / (LR0 / 256))) <= 0.5 + 1e-9
    assert abs(math.log10(result.setting / (LAM0 * 256))) <= 0.5 + 1e-9
    assert "and training the laws' point once at the target" in str(result)


def test_the_ladders_pick_rescored_on_fresh_seeds_apart_from_its_runs(tmp_path):
    s = study(tmp_path)
    plain = s.tune(256)
    stored = load_runs(s.out)
    result = s.tune(256, rescore_seeds=3)  # the same tune: its own runs resumed, the pick re-trained apart
    fresh = load_runs(s.out / "rescore")
    assert len(load_runs(s.out)) == len(stored) and (result.lr, result.setting) == (plain.lr, plain.setting)
    assert sorted(fresh["seed"]) == [1000, 1001, 1002] and stored["seed"].max() < 1000
    assert np.allclose(fresh["lr"], plain.lr) and np.allclose(fresh["setting"], plain.setting)
    assert (fresh["size"] == 256).all() and result.rescore.loss == pytest.approx(fresh["val_loss"].mean())
    assert result.work == plain.work and result.core_s == pytest.approx(plain.core_s)  # not the search's compute
    with pytest.raises(wdscale.WdscaleError, match="rescore_seeds=65 is not allowed: a whole number from 0"):
        s.tune(256, rescore_seeds=65)


def test_the_space_an_optuna_peer_searches_holds_what_the_ladder_and_the_sweep_reached():
    # §10's transformer: Optuna once searched lr 0.00095-0.0095, the bottom grid's; the sweep's best at width
    # 64 was lr 0.0204 (128: 0.0139), the ladder's picks 0.03 and 0.0949, all outside it
    import dataclasses

    from wdscale.study.plan.study_plan import PRESETS, StudyPlan, coarse_grids, resolve
    from wdscale.study.plan.tasks import get_task
    from wdscale.study.search.tune import reach_box

    plan = StudyPlan.from_dict({**PRESETS["joint_shakespeare"], "sizes": [4, 128], "base_size": 4})
    task = get_task(plan.task)
    resolved, grids = resolve(plan, task), coarse_grids(plan, task)
    assert (min(resolved.lrs), max(resolved.lrs)) == pytest.approx((0.0009487, 0.009487))
    for box in reach_box(resolved, grids, [8, 32, 128]):
        # by hand: 1.5 decades past the bottom grid's ends (the middle rung's step, the laws' two)
        assert (box.lr_lo, box.lr_hi) == pytest.approx((0.0009487 / 10**1.5, 0.009487 * 10**1.5), rel=1e-3)
        assert all(box.lr_lo <= v <= box.lr_hi for v in (0.0139, 0.0204, 0.03, 0.0949))
        g = grids[box.rule]
        assert (box.setting_lo, box.setting_hi) == pytest.approx((g[0] / 10**1.5, g[-1] * 10**1.5), rel=1e-3)
    # two rungs: no middle step, the target's two
    two = reach_box(resolved, grids, [8, 128])[0]
    assert (two.lr_lo, two.lr_hi) == pytest.approx((0.0009487 / 10, 0.009487 * 10), rel=1e-3)
    assert dataclasses.is_dataclass(two)


# a rung below the race (size 4): three points on two seeds that move together from seed to seed, so a
# paired difference there is steady (0.1 %) while one point's seed noise is large (10 %)
BELOW = {(0.01, 1.0): [1.00, 1.20], (0.01, 3.0): [1.01, 1.2132], (0.03, 1.0): [1.02, 1.2234]}


def _rows(size: int, points: dict) -> list[dict]:
    return [
        dict(task="t", rule="r", size=size, lr=lr, setting=s, seed=k, status="ok", val_loss=v)
        for (lr, s), values in points.items()
        for k, v in enumerate(values)
    ]


def _raced(first_round: dict, losses: dict, runs_left: int, max_seeds: int = 4):
    """`tune._race` over candidates at size 8 of rule "r" (`losses`: (lr, setting) → its loss at
    seeds 0, 1, …; `first_round`: the seeds each was trained on first) above BELOW's rung; the
    budget: `runs_left` target runs after the first round, each costing 1. Returns each point's
    seeds at the target, the dropped points, the target runs and what the budget allowed."""

    def train(plan):
        asked = {refined_point(e): int(e[1]) for e in plan.refined["r@8"]}
        return pd.DataFrame(_rows(4, BELOW) + _rows(8, {p: losses[p][:n] for p, n in asked.items()}))

    plan = with_refined(StudyPlan(rules=["r"]), {"r@8": dict(first_round)})
    runs = train(plan)
    allowance = len(runs[runs["size"] == 8]) + runs_left
    left = lambda r: allowance - len(r[r["size"] == 8])  # noqa: E731 — one target run costs 1
    plan, runs, dropped = tune._race(plan, runs, 8, 1, max_seeds, "val_loss", train, left, 1.0)
    at = runs[runs["size"] == 8]
    return at.groupby(["lr", "setting"]).size().to_dict(), dropped, len(at), allowance


def test_a_race_drops_a_candidate_its_paired_interval_puts_above_the_best_and_seeds_the_rest():
    best, near, worse = (0.01, 1.0), (0.01, 3.0), (0.03, 1.0)
    # worse is 3 % above the best on their common seed: far within one point's seed noise (10 %),
    # far outside the paired difference's (0.1 %): dropped, never seeded; near (0.05 %) races on
    losses = {best: [1.00, 1.10, 1.05, 1.0], near: [1.0005, 1.1006, 1.0506, 1.0005], worse: [1.03, 1.133, 1.08, 1.03]}
    n, dropped, spent, allowance = _raced({p: 1 for p in losses}, losses, runs_left=2)
    assert dropped == {("r", *worse)} and n == {best: 2, near: 2, worse: 1} and spent == allowance
    # the noise of one point alone would not tell worse apart: within 2 s.e. of two independent seeds
    assert tune._noise(pd.DataFrame(_rows(4, BELOW)), "val_loss") > 0.05
    # with more budget the two left race on, one seed a round, the best first, to max_seeds
    n, dropped, spent, allowance = _raced({p: 1 for p in losses}, losses, runs_left=10, max_seeds=3)
    assert n == {best: 3, near: 3, worse: 1} and spent <= allowance
    # the budget is never exceeded: a round short of runs seeds the best first, then the nearest
    for runs_left in range(4):
        n, _, spent, allowance = _raced({p: 1 for p in losses}, losses, runs_left=runs_left)
        assert spent <= allowance and n[worse] == 1 and (runs_left == 0 or n[best] >= max(2, n[near]))


def test_a_paired_difference_counts_only_the_seeds_both_points_trained_to_a_finite_loss():
    a = pd.Series([0.5, 0.7, 9.0, np.inf])  # log losses at seeds 0–3
    b = pd.Series([0.2, 0.5, np.nan, 0.1])  # seed 2 not trained, seed 3 of a diverged
    assert tune._paired(a, b) == (pytest.approx(0.25), 2)
    assert tune._paired(pd.Series([np.nan, 1.0]), pd.Series([1.0, np.nan]))[1] == 0
    # the paired noise: two seeds shared by three points moving together, against one point's own
    runs = pd.DataFrame(_rows(4, BELOW))
    assert tune._paired_noise(runs, "val_loss") < 0.01 < 0.05 < tune._noise(runs, "val_loss")
    # no pair with two common seeds: two independent points' noise, √2 · the pooled seed noise
    one = runs[runs["lr"] == 0.03]
    assert tune._paired_noise(one, "val_loss") == pytest.approx(math.sqrt(2) * tune._noise(one, "val_loss"))
