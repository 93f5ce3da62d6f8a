"""Joint (lr × setting) studies: the plan, refinement in two coordinates, the joint analysis (optima,
drift, every way of choosing the target's point with its measured gap and compute), the report."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from toy import TINY

from wdscale.cli import main
from wdscale.errors import WdscaleError
from wdscale.study.analysis.joint import _points, analyze_joint, fixed_lr_slice, is_joint, slice_lr, tpe_replay
from wdscale.study.analysis.study_analysis import analyze
from wdscale.study.plan.study_plan import StudyPlan, lr_grid, make_runs, resolve
from wdscale.study.plan.tasks import get_task
from wdscale.study.report.study_report import write_report
from wdscale.study.run.store import load_runs
from wdscale.study.search.refine import add_seeds, add_settings

LRS = [0.001, 0.01, 0.1]
SETTINGS = [0.01, 0.1, 1.0, 10.0]


def _loss(lr: float, setting: float, size: int) -> float:
    """A valley along η·λ = 1e-3 · size (the product moves ∝ size), lowest at lr 0.01."""
    return 1.0 + 0.05 * math.log10(lr / 0.01) ** 2 + 0.1 * math.log10(lr * setting / (1e-3 * size)) ** 2


def _runs(sizes=(1, 10), seeds=3, noise=0.0, drop=(), rules=("decoupled",)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for rule in rules:
        for size in sizes:
            for lr in LRS:
                for s in SETTINGS:
                    if (rule, size, lr, s) in drop:
                        continue
                    for seed in range(seeds):
                        rows.append(
                            dict(
                                task="toy", optimizer="adamw", rule=rule, size_axis="width", size=size, lr=lr,
                                setting=s, seed=seed, status="ok",
                                val_loss=_loss(lr, s, size) + noise * rng.standard_normal(),
                                wall_time=0.1 * size, threads=1, n_params=100 * size, n_train=50, epochs=2,
                                run_id=f"{rule}-{size}-{lr}-{s}-{seed}",
                            )
                        )  # fmt: skip
    return pd.DataFrame(rows)


# -- the plan ----------------------------------------------------------------------------------------


def test_an_lr_grid_multiplies_the_runs_and_keeps_the_base_lr_in_it():
    plan = StudyPlan(**{**TINY, "lr": 0.01, "lr_decades": 1.0})
    assert lr_grid(plan, 0.01) == [0.003162, 0.01, 0.03162]
    one = make_runs(StudyPlan(**{**TINY, "lr": 0.01}), get_task("digits_mlp"))
    joint = make_runs(plan, get_task("digits_mlp"))
    assert len(joint) == 3 * len(one)
    assert sorted({c.lr for c in joint}) == [0.003162, 0.01, 0.03162]
    # the 1-D study's runs are the joint study's runs at the base lr: the same configs, the same ids
    assert {c.run_id for c in one} == {c.run_id for c in joint if c.lr == 0.01}


def test_explicit_lrs_and_bad_lr_grids_are_refused_by_name():
    plan = StudyPlan(**{**TINY, "lrs": [0.03, 0.001, 0.01]})
    assert resolve(plan, get_task("digits_mlp")).lrs == [0.001, 0.01, 0.03]
    for bad, words in (
        ({"lrs": [0.01, 0.1]}, "at least 3"),
        ({"lrs": [0.01, -0.1, 1.0]}, "lrs"),
        ({"lrs": [0.01, 0.1, 1.0], "lr_decades": 1.0}, "not both"),
        ({"lr_decades": -1.0}, "lr_decades"),
        ({"lr_decades": 0.1}, "widen"),
    ):
        with pytest.raises(WdscaleError, match=words):
            resolve(StudyPlan(**{**TINY, **bad}), get_task("digits_mlp"))


def test_a_refined_point_without_an_lr_is_refused_in_a_joint_study():
    plan = StudyPlan(**{**TINY, "lrs": [0.001, 0.01, 0.1], "refined": {"sum@8": [[0.5, 3]]}})
    with pytest.raises(WdscaleError, match="has no lr"):
        make_runs(plan, get_task("digits_mlp"))
    plan = dataclasses.replace(plan, refined={"sum@8": [[0.5, 3, 0.01]]})
    runs = make_runs(plan, get_task("digits_mlp"))
    extra = [c for c in runs if c.setting == 0.5]
    assert {(c.size, c.rule, c.lr) for c in extra} == {(8, "sum", 0.01)} and len(extra) == 3


def test_the_cli_takes_an_lr_grid(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("wdscale.study.cli.run_study", lambda plan, out, **kw: seen.update(plan=plan))
    main(["study", "run", "--out", str(tmp_path / "s"), "--lrs", "0.001,0.01,0.1", "--rules", "mup"])
    assert seen["plan"].lrs == [0.001, 0.01, 0.1]
    main(["study", "run", "--out", str(tmp_path / "s"), "--lr-decades", "2", "--lr-points-per-decade", "1"])
    assert (seen["plan"].lr_decades, seen["plan"].lr_points_per_decade) == (2.0, 1)


# -- refinement in two coordinates ----------------------------------------------------------------------


def test_refine_adds_a_cross_around_the_joint_optimum_and_the_proxies_at_the_target():
    plan = StudyPlan(task="toy", sizes=[1, 10, 100], rules=["decoupled"], seeds=3, lrs=LRS)
    df = _runs(sizes=(1, 10, 100))
    grid = {"decoupled": SETTINGS}
    grown, n = add_settings(plan, df, grid, [1, 10, 100], 2, lrs=LRS)
    pts = {k: {(p[2], p[0]) for p in v} for k, v in grown.refined.items()}
    # size 1: the optimum is (0.01, 0.1); finer settings at lr 0.01, finer lrs at setting 0.1
    assert (0.01, 0.3162) in pts["decoupled@1"] and (0.01, 0.03162) in pts["decoupled@1"]
    assert (0.003162, 0.1) in pts["decoupled@1"] and (0.03162, 0.1) in pts["decoupled@1"]
    assert all(len(p) == 3 for v in grown.refined.values() for p in v) and n == sum(map(len, pts.values()))
    # stage 2: the smallest size's optimum at every larger size, the middle size's at the largest
    grown, _ = add_seeds(plan, df, grid, [1, 10, 100], max_seeds=5, lrs=LRS, fixed=0.01)
    have = {k: {(p[2], p[0]): p[1] for p in v} for k, v in grown.refined.items()}
    assert have["decoupled@1"][(0.01, 0.1)] == 5  # the optimum itself gets more seeds
    assert (0.01, 0.1) in have["decoupled@10"] and (0.01, 0.1) in have["decoupled@100"]
    assert (0.01, 1.0) in have["decoupled@100"]  # size 10's optimum carried to 100


# -- the joint analysis --------------------------------------------------------------------------------


def test_joint_optimum_and_drift_are_the_trained_grid_points():
    a = analyze_joint(_runs(sizes=(1, 10, 100)), tpe_trials=())
    o = {(x.rule, x.size): x for x in a.optima}
    assert (o["decoupled", 1].lr, o["decoupled", 1].setting) == (0.01, 0.1)
    assert (o["decoupled", 10].lr, o["decoupled", 10].setting) == (0.01, 1.0)
    assert o["decoupled", 100].setting_edge and o["decoupled", 100].product == pytest.approx(0.1)
    d = a.drifts[0]
    assert d.setting_slope[0] == pytest.approx(1.0) and d.product_slope[0] == pytest.approx(1.0)
    assert d.lr_slope[0] == pytest.approx(0.0)


def test_every_gap_is_a_trained_loss_at_the_target_and_compute_adds_up():
    df = _runs(sizes=(1, 10))
    a = analyze_joint(df, tpe_trials=())
    c = a.choices_frame().set_index(["strategy", "rule", "proxy_size"], drop=False)
    best = df[df["size"] == 10]["val_loss"].min()
    t = c.loc[("transfer (lr and setting)", "decoupled", 1.0)]
    # the proxy's point (0.01, 0.1) trained at the target: its loss there, not a fitted value
    assert t["loss"] == pytest.approx(_loss(0.01, 0.1, 10)) and t["gap"] == pytest.approx(
        _loss(0.01, 0.1, 10) / best - 1
    )
    # compute: the proxy's 12 points at one seed (0.1 core-s each) and the one target run (1.0)
    assert t["core_s"] == pytest.approx(12 * 0.1 + 1.0) and t["params_samples"] == pytest.approx(
        12 * 100 * 100 + 1000 * 100
    )
    f = c.loc[("transfer (setting only, fixed lr)", "decoupled", 1.0)]
    assert f["core_s"] == pytest.approx(4 * 0.1 + 1.0) and f["lr"] == 0.01
    s = c[c["strategy"] == "sweep at target"].iloc[0]
    assert s["gap"] == 0 and s["core_s"] == pytest.approx(12 * 1.0)


def test_a_choice_not_trained_at_the_target_is_not_measured():
    df = _runs(sizes=(1, 10), drop={("decoupled", 10, 0.01, 0.1)})
    c = analyze_joint(df, tpe_trials=()).choices_frame()
    t = c[c["strategy"] == "transfer (lr and setting)"].iloc[0]
    assert math.isnan(t["loss"]) and math.isnan(t["gap"])


def test_tpe_finds_the_best_point_given_every_trial_and_pays_per_trial():
    pytest.importorskip("optuna")
    df = _runs(sizes=(1, 10), seeds=1)
    p = _points(df, "val_loss", 10, 0)
    idx = p.where("decoupled", 10)
    i, core, _ = tpe_replay(p, idx, 40, repeat=0, penalty=9.0)
    assert p.keys[i] == ("decoupled", 10, 0.01, 1.0)  # 40 trials over 12 points: TPE has seen the best
    assert core == pytest.approx(40 * 1.0)
    a = analyze_joint(df, tpe_trials=(4, 32), tpe_repeats=3)
    tpe = a.choices_frame()
    tpe = tpe[tpe["strategy"].str.startswith("TPE")].set_index("n_points")
    assert tpe.loc[32, "gap"] <= tpe.loc[4, "gap"] and tpe.loc[32, "core_s"] == pytest.approx(32.0)


def test_the_one_dimensional_analysis_refuses_a_joint_study_and_takes_its_slice():
    df = _runs(sizes=(1, 10))
    assert is_joint(df) and slice_lr(df) == 0.01 and slice_lr(df, base_lr=0.2) == 0.1
    with pytest.raises(WdscaleError, match="joint"):
        analyze(df)
    one = analyze(fixed_lr_slice(df))
    assert [o.setting_star for o in one.optima] == [0.1, 1.0]
    with pytest.raises(WdscaleError, match="not a joint study"):
        analyze_joint(fixed_lr_slice(df))


def test_the_report_of_a_joint_study_has_the_plane_the_frontier_and_the_lambda_only_view(tmp_path):
    df = _runs(sizes=(1, 10), noise=0.002, rules=("decoupled", "mup"))
    files = write_report(df, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## λ and lr together" in md and "## The λ-only view at the fixed lr" in md
    assert "figures/joint_frontier.png" in files and "figures/joint_plane_mup.png" in files
    assert "transfer (setting only, fixed lr)" in md and "η\\*·λ\\* slope" in md


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_tiny_real_joint_study_runs_refines_and_reports(tmp_path):
    out = tmp_path / "joint"
    common = ["--out", str(out), "--no-progress"]
    args = ["--task", "digits_mlp", "--sizes", "8,16", "--rules", "decoupled", "--seeds", "2", "--decades", "1"]
    args += ["--points-per-decade", "2", "--epochs", "2", "--depth", "1", "--lr-decades", "1"]
    main(["study", "run", *common, *args])
    df = load_runs(out)
    assert len(df) == 2 * 3 * 3 * 2 and df["lr"].nunique() == 3
    main(["study", "refine", str(out), "--max-seeds", "3", "--no-progress"])
    grown = load_runs(out)
    assert len(grown) > len(df)
    main(["study", "report", str(out)])
    assert "λ and lr together" in (out / "report.md").read_text()


# -- advice from a joint study ---------------------------------------------------------------------------


def test_joint_advice_recovers_both_laws_and_recommends_the_measured_best_recipe():
    from wdscale.study.analysis.advise import advise_joint

    moving = _runs(sizes=(1, 10, 100), noise=0.001)
    # a recipe whose optimum stands still at (0.01, 0.1): the valley of size 1 at every size
    still = moving.assign(rule="mup", val_loss=[_loss(lr, s, 1) for lr, s in zip(moving["lr"], moving["setting"])])
    a = advise_joint(pd.concat([moving, still]), 1000, n_boot=100)
    law = {x.rule: x for x in a.laws}
    d = law["decoupled"]
    assert d.lr == pytest.approx(0.01, rel=0.01) and d.setting == pytest.approx(100, rel=0.05)
    assert d.setting_slope == pytest.approx(1.0, abs=0.01) and d.lr_lo <= d.lr <= d.lr_hi
    assert "edge" in d.warning and "[100]" in d.warning and "more than 4×" in d.warning
    assert law["mup"].setting == pytest.approx(0.1) and law["mup"].gap == 0
    # decoupled tuned at size 1 and carried to 100 sits 2 decades off the valley: 40 % lost
    assert d.gap == pytest.approx(0.4, rel=0.05)
    assert a.recommended == "mup" and a.resolved and "lr=0.01" in a.optimizer_call
    assert "PREDICTION" in str(a) and "weight_decay=0.1" in a.optimizer_call


def test_wdscale_advise_at_the_top_level_reads_a_joint_study(tmp_path, capsys):
    df = _runs(sizes=(1, 10, 100), noise=0.001)
    out = tmp_path / "s"
    out.mkdir()
    df.assign(history=[[] for _ in range(len(df))]).to_parquet(out / "runs.parquet")
    assert main(["advise", str(out), "--target-width", "400"]) == 0
    text = capsys.readouterr().out
    assert "joint (lr × setting) study" in text and "lr* = 0.01" in text
    assert main(["advise", str(out), "--target-depth", "4"]) == 2
    assert "give --target-width" in capsys.readouterr().err


def test_an_optimum_at_the_edge_of_what_was_trained_through_it_is_flagged():
    """Issue 23: at size 10 the valley's best point is lr 0.01, λ 1.0 (η·λ = 1e-3·10), inside the
    grid. With λ 10 dropped at that lr only, λ 1.0 is the largest setting trained *at its lr* — a
    bound, though λ 10 was trained at the other lrs."""
    full = analyze_joint(_runs(), n_boot=50).optima_frame()
    interior = full[full["size"] == 10].iloc[0]
    assert (interior["lr"], interior["setting"]) == (0.01, 1.0) and not interior["setting_edge"]
    o = analyze_joint(_runs(drop={("decoupled", 10, 0.01, 10.0)}), n_boot=50).optima_frame()
    at10 = o[o["size"] == 10].iloc[0]
    assert (at10["lr"], at10["setting"]) == (0.01, 1.0) and at10["setting_edge"] and not at10["lr_edge"]
