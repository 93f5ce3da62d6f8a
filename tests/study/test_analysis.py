"""analysis.analyze on synthetic studies whose answer is known in closed form.

loss(λ, size) = a + b (log λ − log λ*(size))² + noise with λ*(size) = c · size^k: the optimum,
its drift exponent k and the transfer regret b (k log(size ratio))² / a are all exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wdscale.study.analysis import StudyAnalysis, analyze, mean_curves

SIZES = (32, 64, 128, 256)
A, B, SD = 1.0, 0.05, 0.002
GRID = 10 ** np.arange(-6, 0 + 1e-9, 0.25)  # 4 points per decade


def star(c: float, k: float, size: int) -> float:
    return c * size**k


def synthetic(
    rules: dict | None = None, sizes=SIZES, seeds=(0, 1, 2), grid=GRID, rng: int = 0, setting_name: str = "lambda"
) -> pd.DataFrame:
    """rules: name -> (c, k). Also a val_acc that drops 0.01 per unit of squared log distance."""
    rules = rules or {"indep": (1.3e-4, 1.0), "flat": (1.3e-3, 0.0)}
    r = np.random.default_rng(rng)
    rows = []
    for rule, (c, k) in rules.items():
        for size in sizes:
            for lam in grid:
                d2 = (np.log(lam) - np.log(star(c, k, size))) ** 2
                for seed in seeds:
                    rows.append(
                        dict(
                            task="toy",
                            optimizer="adamw",
                            rule=rule,
                            size_axis="width",
                            size=size,
                            setting=float(lam),
                            setting_name=setting_name,
                            seed=seed,
                            status="ok",
                            val_loss=A + B * d2 + SD * r.standard_normal(),
                            val_acc=0.9 - 0.01 * d2,
                            best_val_loss=np.nan,
                            train_loss=np.nan,
                            wall_time=2.0,
                        )
                    )
    return pd.DataFrame(rows)


def by_rule(items, rule):
    return [x for x in items if x.rule == rule]


@pytest.fixture(scope="module")
def result() -> StudyAnalysis:
    return analyze(synthetic(), n_boot=300)


def test_recovers_optimum_per_size(result):
    truth = {"indep": (1.3e-4, 1.0), "flat": (1.3e-3, 0.0)}
    assert len(result.optima) == 2 * len(SIZES)
    for o in result.optima:
        c, k = truth[o.rule]
        assert o.setting_star == pytest.approx(star(c, k, o.size), rel=0.10)
        assert o.lo <= o.setting_star <= o.hi
        assert not o.at_edge
        assert o.n_seeds == 3
        assert o.best_loss == pytest.approx(A, abs=0.01)
        # the refined optimum beats the grid: the grid's own best is a grid point
        assert np.isclose(np.log10(o.grid_best) * 4, np.round(np.log10(o.grid_best) * 4))


def test_drift_slope_and_interval(result):
    for rule, k in (("indep", 1.0), ("flat", 0.0)):
        (d,) = by_rule(result.drifts, rule)
        assert d.slope == pytest.approx(k, abs=0.1)
        # fixed data seed: with 3 seeds the percentile bootstrap is somewhat narrow, so this is a
        # deterministic check, not a coverage claim
        assert d.lo <= k <= d.hi
        assert d.fold_change == pytest.approx((SIZES[-1] / SIZES[0]) ** k, rel=0.1)


def test_verdicts(result):
    (flat,) = by_rule(result.verdicts, "flat")
    (indep,) = by_rule(result.verdicts, "indep")
    assert flat.code == "transfers" and flat.text.startswith("transfers")
    assert indep.code == "grows"
    assert "grows" in indep.text and "1.00" in indep.text and "λ*" in indep.text


def test_regret_matches_analytic_value(result):
    (indep,) = by_rule(result.regrets, "indep")
    analytic = B * np.log(SIZES[-1] / SIZES[0]) ** 2 / A  # k = 1: log-distance = log(256/32)
    assert indep.regret == pytest.approx(analytic, rel=0.05)
    assert not indep.within_noise
    assert indep.acc_regret == pytest.approx(0.01 * np.log(8) ** 2, rel=0.05)

    (flat,) = by_rule(result.regrets, "flat")
    assert abs(flat.regret) < 1e-3
    assert flat.within_noise
    assert flat.noise == pytest.approx(SD / np.sqrt(3), rel=1.0)  # s.e.m. of 3 seeds, loss ≈ 1
    assert abs(flat.acc_regret) < 1e-3


def test_tables(result):
    t = result.table()
    assert list(t["rule"]) == ["flat", "indep"]
    for col in ("optimizer", "slope", "slope_lo", "slope_hi", "regret", "verdict", "code"):
        assert col in t.columns
    of = result.optima_frame()
    assert len(of) == 8 and {"setting_star", "lo", "hi", "at_edge"} <= set(of.columns)
    assert result.series == [("toy", "adamw", "flat", "width"), ("toy", "adamw", "indep", "width")]


def test_deterministic_and_independent_of_other_series():
    df = synthetic()
    a1 = analyze(df, n_boot=100, seed=3)
    a2 = analyze(df, n_boot=100, seed=3)
    alone = analyze(df[df["rule"] == "indep"], n_boot=100, seed=3)
    assert a1.optima == a2.optima
    assert by_rule(a1.drifts, "indep") == alone.drifts


def test_tau_rule_wording():
    df = synthetic({"tau_rule": (1e-4, 1.0)}, setting_name="tau")
    v = analyze(df, n_boot=50).verdicts[0]
    assert "τ*" in v.text and "λ" not in v.text


def test_optimum_outside_grid_is_flagged_and_inconclusive():
    # λ*(256) = 1.3e-4 · 256 · 40 ≈ 1.3 lies above the largest grid value 1.0
    df = synthetic({"edge": (1.3e-4 * 40, 1.0)})
    a = analyze(df, n_boot=50)
    edge = {o.size: o.at_edge for o in a.optima}
    assert edge[256] and not edge[32]
    (o256,) = [o for o in a.optima if o.size == 256]
    assert o256.setting_star == pytest.approx(GRID[-1])
    v = a.verdicts[0]
    assert v.code == "edge"
    assert v.text.startswith("inconclusive: optimum at grid edge") and "256" in v.text
    assert "transfers" not in v.text


def test_diverged_runs_count_as_infinite_loss():
    df = synthetic()
    # the large-λ tail diverges for every seed (with a NaN loss, as a real run would record)
    tail = df["setting"] > 0.1
    df.loc[tail, "status"] = "diverged"
    df.loc[tail, "val_loss"] = np.nan
    # and one seed diverges at the grid point nearest the optimum of flat at size 64
    nearest = GRID[np.argmin(abs(np.log(GRID) - np.log(1.3e-3)))]
    hit = (df["rule"] == "flat") & (df["size"] == 64) & (df["setting"] == nearest) & (df["seed"] == 1)
    df.loc[hit, ["status", "val_loss"]] = ["diverged", np.nan]

    a = analyze(df, n_boot=100)
    assert a.counts["diverged"] == int(tail.sum()) + 1
    for o in a.optima:
        assert np.isfinite(o.setting_star) and not o.at_edge
    (o64,) = [o for o in a.optima if o.rule == "flat" and o.size == 64]
    assert o64.grid_best != nearest  # a setting with a diverged seed can't be the optimum
    assert abs(np.log10(o64.setting_star / 1.3e-3)) <= 0.25 + 1e-9  # within one grid step
    (indep,) = by_rule(a.drifts, "indep")
    assert indep.slope == pytest.approx(1.0, abs=0.1)

    mc = mean_curves(df)
    row = mc[(mc["rule"] == "flat") & (mc["size"] == 64) & (mc["setting"] == nearest)].iloc[0]
    assert np.isinf(row["mean"]) and row["n_diverged"] == 1 and row["n"] == 3
    assert np.isinf(mc.loc[mc["setting"] > 0.1, "mean"]).all()


def test_failed_runs_are_dropped_and_counted():
    df = synthetic()
    junk = df.iloc[[0]].assign(status="failed", val_loss=-1e9, setting=1.3e-3, seed=0)
    a_clean = analyze(df, n_boot=50)
    a = analyze(pd.concat([df, junk], ignore_index=True), n_boot=50)
    assert a.counts == {"ok": len(df), "not_learned": 0, "diverged": 0, "failed": 1}
    assert a.optima == a_clean.optima


def test_runs_that_did_not_learn_are_left_out_of_the_fits():
    # an lr so large that every run at one size ends with a huge but finite loss: without the
    # status the minimum of those losses would be taken as an optimum and fitted into the drift
    df = synthetic(sizes=(32, 64, 128))
    at_128 = df["size"] == 128
    df.loc[at_128, "val_loss"] = 1e18 * (1 + df.loc[at_128, "setting"])
    counted = analyze(df, n_boot=50)
    assert any(o.size == 128 and np.isfinite(o.best_loss) for o in counted.optima)
    df.loc[at_128, "status"] = "not_learned"
    a = analyze(df, n_boot=50)
    assert a.counts["not_learned"] == int(at_128.sum())
    assert not any(o.size == 128 and np.isfinite(o.best_loss) for o in a.optima)
    assert {v.code for v in a.verdicts} == {"no_optimum"}


def test_mean_curves_shape():
    mc = mean_curves(synthetic(sizes=(32, 64)))
    assert len(mc) == 2 * 2 * len(GRID)
    assert {"task", "optimizer", "rule", "size_axis", "size", "setting", "mean", "sem", "n"} <= set(mc.columns)
    assert (mc["n"] == 3).all() and (mc["sem"] > 0).all()


def test_errors():
    df = synthetic(sizes=(32, 64))
    with pytest.raises(ValueError, match="empty"):
        analyze(df.iloc[:0])
    with pytest.raises(ValueError, match="seed"):
        analyze(df.drop(columns="seed"))
    with pytest.raises(ValueError, match="best_val_acc"):
        analyze(df, metric="best_val_acc")
    few = df[(df["rule"] != "indep") | df["setting"].isin(GRID[:2])]
    with pytest.raises(ValueError, match=r"rule=indep.*only 2 setting"):
        analyze(few)
    bad = df.copy()
    bad.loc[bad.index[0], "setting"] = 0.0
    with pytest.raises(ValueError, match="non-positive"):
        analyze(bad)
    bad = df.copy()
    bad.loc[bad.index[0], "size"] = -1
    with pytest.raises(ValueError, match="non-positive"):
        analyze(bad)
    with pytest.raises(ValueError, match="all .* runs failed"):
        analyze(df.assign(status="failed"))


def test_single_size_and_all_diverged_size_are_inconclusive():
    one = synthetic({"single": (1e-3, 0.0)}, sizes=(64,))
    dead = synthetic({"dead": (1e-3, 0.0)}, sizes=(32, 64))
    dead.loc[dead["size"] == 64, "status"] = "diverged"
    a = analyze(pd.concat([one, dead], ignore_index=True), n_boot=50)
    codes = {v.rule: v.code for v in a.verdicts}
    assert codes == {"single": "single_size", "dead": "no_optimum"}
    (gone,) = [o for o in a.optima if o.rule == "dead" and o.size == 64]
    assert np.isnan(gone.setting_star) and np.isnan(gone.grid_best)
    assert np.isnan(by_rule(a.drifts, "dead")[0].slope)


def test_setting_names_come_from_the_rules_not_the_store():
    from wdscale.study.analysis import with_setting_names

    runs = pd.DataFrame({"rule": ["timescale", "sum", "power_lines", "someone_elses_rule"]})
    assert with_setting_names(runs)["setting_name"].tolist() == ["tau", "lambda", "tau", "lambda"]
    labelled = runs.assign(setting_name="tau")
    assert with_setting_names(labelled) is labelled  # an exported study keeps its labels
