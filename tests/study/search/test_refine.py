"""Adaptive refinement: a finer grid and more seeds where the decision is made, inside the study's
one plan; and the check that a coarse-then-refine search finds the full grid's optimum."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from toy import TINY, TINY_FLAGS

from wdscale.cli import main
from wdscale.errors import WdscaleError
from wdscale.study import StudyPlan, run_study
from wdscale.study.run.execution import Execution
from wdscale.study.run.store import load_runs
from wdscale.study.search.refine import (
    DESIGNS,
    PRUNING_CHECKED,
    SEEDS_AT_CHECKED,
    SEEDS_AT_COMPUTE,
    add_seeds,
    add_settings,
    design_mask,
    design_replay,
    measured_optima,
    pruning_check,
    refine_study,
    setting_means,
    stored_plan,
)

# one rule at widths 8 and 32: 3 settings × 2 seeds per width, 12 runs
PLAN = dict(TINY, rules=["decoupled"])


def _refine(out, **kw):
    return refine_study(stored_plan(out), out, execution=Execution(workers=1, progress=False), **kw)


@pytest.fixture
def refined(tmp_path):
    """A tiny coarse study, its stored runs, then refined once (points 3, up to 4 seeds)."""
    run_study(StudyPlan(**PLAN), tmp_path, execution=Execution(workers=1, progress=False))
    coarse = load_runs(tmp_path)
    summary = _refine(tmp_path, points=3, max_seeds=4)
    return tmp_path, coarse, summary


def test_refine_adds_settings_around_the_optimum_and_seeds_and_retrains_nothing(refined):
    out, coarse, summary = refined
    df = load_runs(out)
    assert summary.added_runs == len(df) - len(coarse) > 0
    # nothing stored was trained again: every coarse run is there once, with its numbers and time
    old = df[df.run_id.isin(coarse.run_id)].set_index("run_id").sort_index()
    before = coarse.set_index("run_id").sort_index()
    assert len(old) == len(coarse) and df.run_id.is_unique
    assert (old.finished_at == before.finished_at).all() and (old.val_loss == before.val_loss).all()
    # a finer grid (1/6 decade: 2 points per decade × 3) around each size's coarse optimum
    step = 1 / (TINY["points_per_decade"] * 3)
    for row in measured_optima(coarse).itertuples():
        settings = sorted(df[df["size"] == row.size].setting.unique())
        for k in (-2, -1, 1, 2):
            want = row.setting * 10 ** (k * step)
            assert any(math.isclose(s, want, rel_tol=1e-3) for s in settings), (row.size, k, settings)
    # seeds up to 4 at each size's optimum now
    for row in measured_optima(df).itertuples():
        assert row.n == 4, row
    # the grown plan is the stored plan and plan.json, and covers every stored run
    assert stored_plan(out) == summary.plan
    assert StudyPlan.from_dict(json.loads((out / "plan.json").read_text())) == summary.plan
    assert summary.coarse_runs == len(coarse) and summary.refined_runs == summary.added_runs


def test_running_a_refined_study_again_is_accepted_and_trains_nothing(refined):
    out, _, summary = refined
    again = run_study(
        StudyPlan.from_dict(json.loads((out / "plan.json").read_text())), out, execution=Execution(progress=False)
    )
    assert again.ran == 0 and again.planned == len(load_runs(out))
    # the coarse plan it was made with: the store's refined points are kept, not refused
    again = run_study(StudyPlan(**PLAN), out, execution=Execution(progress=False))
    assert again.ran == 0 and again.planned == len(load_runs(out))
    assert stored_plan(out) == summary.plan


def test_the_proxys_optimum_is_trained_at_the_larger_size_with_its_optimums_seeds(refined):
    out, _, _ = refined
    means = setting_means(load_runs(out))
    optima = measured_optima(load_runs(out)).set_index("size")
    proxy = optima.loc[8, "setting"]
    at_target = means[(means["size"] == 32) & np.isclose(means.setting, proxy, rtol=1e-3)]
    assert len(at_target) == 1 and at_target.n.iloc[0] == optima.loc[32, "n"]


def test_refining_twice_adds_fewer_runs(refined):
    out, _, first = refined
    second = _refine(out, points=3, max_seeds=4)
    assert second.added_runs < first.added_runs
    assert load_runs(out).run_id.is_unique


def test_the_command_line_refines_and_run_then_accepts_the_study(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["study", "run", "--out", out, *TINY_FLAGS]) == 0
    n = len(load_runs(out))
    assert main(["study", "refine", out, "--points", "2", "--max-seeds", "3", "--workers", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "runs added" in err and "core-s" in err and "the coarse grid's compute" in err
    grown = len(load_runs(out))
    assert grown > n
    assert main(["study", "run", "--out", out, *TINY_FLAGS]) == 0
    assert f"{grown} already in" in capsys.readouterr().err and len(load_runs(out)) == grown
    assert main(["study", "status", out]) == 0
    assert capsys.readouterr().out.startswith(f"{grown} of {grown} runs stored")


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--points", "1"], "points=1 is not allowed: fine steps per coarse step, a whole number from 2 to 12"),
        (["--points", "x"], "--points='x' is not allowed"),
        (["--max-seeds", "0"], "--max-seeds=0 is not allowed"),
        (["--workers", "-2"], "--workers=-2 is not allowed"),
        (["--threads", "1.5"], "--threads='1.5' is not allowed"),
        ([], "holds no study store"),
    ],
)
def test_bad_refine_flags_are_one_clear_error(tmp_path, capsys, flags, message):
    assert main(["study", "refine", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs.sqlite").exists()


# -- the proposals on synthetic runs: no training --------------------------------------------------


def _frame(losses: dict[float, list[float]], size: int = 8, rule: str = "decoupled") -> pd.DataFrame:
    rows = [
        dict(rule=rule, size=size, lr=0.01, setting=s, seed=i, status="ok", val_loss=v, run_id=f"{rule}{size}-{s}-{i}")
        for s, vs in losses.items()
        for i, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


GRID = {"decoupled": [0.001, 0.01, 0.1, 1.0, 10.0]}  # one decade a step


def _parabola(s: float) -> float:
    return 1.0 + 0.1 * math.log10(s / 0.1) ** 2  # lowest at 0.1, a grid point


def test_a_finer_grid_around_an_interior_optimum_then_nothing_more():
    plan = StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=2, settings=GRID)
    df = _frame({s: [_parabola(s)] * 2 for s in GRID["decoupled"]})
    grown, n = add_settings(plan, df, GRID, [8, 32], points_per_step=3)
    fine = sorted(s for s, _ in grown.refined["decoupled@8"])
    assert n == 4 and fine == pytest.approx([0.1 * 10 ** (k / 3) for k in (-2, -1, 1, 2)], rel=1e-3)
    assert all(seeds == 2 for _, seeds in grown.refined["decoupled@8"])
    # trained, the fine points confirm the optimum: a second pass adds nothing
    df = pd.concat([df, _frame({s: [_parabola(s)] * 2 for s in fine})])
    assert add_settings(grown, df, GRID, [8, 32], points_per_step=3)[1] == 0


def test_seeds_go_to_the_optimum_and_the_settings_within_noise_of_it_and_the_proxys_choice_to_the_target():
    plan = StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=2, settings=GRID)
    noisy = {0.01: [1.00, 1.02], 0.1: [0.99, 1.01], 1.0: [1.50, 1.52], 10.0: [2.0, 2.0], 0.001: [1.9, 1.9]}
    target = {0.01: [0.80, 0.80], 0.1: [0.95, 0.95], 1.0: [1.2, 1.2], 10.0: [2.0, 2.0], 0.001: [0.90, 0.90]}
    df = pd.concat([_frame(noisy, 8), _frame(target, 32)])
    grown, n = add_seeds(plan, df, GRID, [8, 32], max_seeds=6)
    assert dict(map(tuple, grown.refined["decoupled@8"])) == {0.01: 6, 0.1: 6}  # 0.01 is within noise of 0.1
    # at 32: its own optimum (0.01) gets 6 seeds, and the proxy's choice (0.1) as many
    assert dict(map(tuple, grown.refined["decoupled@32"])) == {0.01: 6, 0.1: 6}
    assert n == 4 * 4
    assert add_seeds(grown, df, GRID, [8, 32], max_seeds=6)[1] == 0  # nothing more to add


def test_pruning_check_on_a_synthetic_study():
    settings = [10.0**k for k in range(-3, 4)]  # 7 points; coarse keeps indices 0, 2, 4, 6
    smooth = _frame({s: [1 + 0.1 * abs(math.log10(s)) + 0.01 * i for i in range(3)] for s in settings}, 8)
    # a narrow dip at index 1, far from the coarse optimum (index 6): the pruned search misses it
    spiky = {s: [1 + 0.1 * abs(math.log10(s) - 3)] * 3 for s in settings}
    spiky[0.01] = [0.5] * 3
    df = pd.concat([smooth, _frame(spiky, 32)])
    check = pruning_check(df).set_index("size")
    assert check.loc[8, "full"] == 1.0 and check.loc[8, "coarse"] in (0.1, 10.0)  # 1.0 was dropped
    assert bool(check.loc[8, "same"]) and check.loc[8, "gap"] == 0
    assert not bool(check.loc[32, "same"]) and check.loc[32, "refined"] == 1000.0 and check.loc[32, "gap"] > 0.5


def _constant_one_d(study_dir: Path) -> bool:
    """The ten one-dimensional findings studies the notes were measured on: not a joint study or a
    tune (they sweep lr), not a rerun under an lr schedule (§8, measured after the notes)."""
    plan = json.loads((study_dir / "plan.json").read_text())
    return not study_dir.name.startswith(("joint_", "tune_")) and plan.get("schedule", "constant") == "constant"


def test_the_pruning_check_quoted_in_the_help_is_what_the_findings_give():
    """On the coarse grids of the 10 one-dimensional findings studies (a refined study's coarse
    runs are the ones it was checked on; the joint studies sweep lr too)."""
    import dataclasses
    import json

    from wdscale.study.plan.study_plan import StudyPlan, make_runs
    from wdscale.study.plan.tasks import get_task

    studies = sorted((Path(__file__).parents[3] / "docs" / "findings").glob("*/runs.parquet"))
    studies = [p for p in studies if _constant_one_d(p.parent)]
    assert len(studies) == 10
    checks = []
    for path in studies:
        plan = StudyPlan.from_stored(json.loads((path.parent / "plan.json").read_text()))
        coarse = {c.run_id for c in make_runs(dataclasses.replace(plan, refined={}), get_task(plan.task))}
        runs = load_runs(path.parent)
        checks += [pruning_check(g) for _, g in runs[runs["run_id"].isin(coarse)].groupby("optimizer")]
    found = pd.concat(checks)
    assert (int(found.same.sum()), len(found)) == PRUNING_CHECKED
    assert found[~found.same].gap.max() <= 0.033


def test_refine_help_describes_every_flag():
    from wdscale.cli import build_parser

    study = build_parser()._subparsers._group_actions[0].choices["study"]
    refine = study._subparsers._group_actions[0].choices["refine"]
    assert [a.dest for a in refine._actions if not a.help] == []
    assert f"{PRUNING_CHECKED[0]} of {PRUNING_CHECKED[1]}" in " ".join(refine.format_help().split())


def test_fine_grids_around_different_optima_share_their_values():
    from wdscale.study.search.refine import _finer

    grid = [0.01, 0.1, 1.0, 10.0]
    a = _finer(1.0, 1.0, 3, grid, anchor=0.01)
    b = _finer(0.4642, 1.0, 3, grid, anchor=0.01)  # a fine point as the optimum at another size
    # one lattice through the coarse grid: the same fine setting has the same value at both sizes
    assert a == [0.2154, 0.4642, 2.154, 4.642] and b == [0.04642, 0.2154, 2.154, 4.642]


# -- where the seeds go, and cheaper designs replayed -----------------------------------------------


def test_seeds_at_the_ends_skip_the_middle_sizes_but_still_measure_the_proxys_choice_there():
    plan = StudyPlan(sizes=[8, 16, 32], rules=["decoupled"], seeds=2, settings=GRID)
    tie = {0.01: [1.00, 1.02], 0.1: [0.99, 1.01], 1.0: [1.50, 1.52], 10.0: [2.0, 2.0], 0.001: [1.9, 1.9]}
    middle = {0.01: [0.90, 0.92], 0.1: [0.95, 0.97], 1.0: [1.50, 1.52], 10.0: [2.0, 2.0], 0.001: [1.9, 1.9]}
    df = pd.concat([_frame(tie, 8), _frame(middle, 16), _frame(tie, 32)])
    every, n_every = add_seeds(plan, df, GRID, [8, 16, 32], max_seeds=6)
    ends, n_ends = add_seeds(plan, df, GRID, [8, 16, 32], max_seeds=6, seeds_at="ends")
    assert dict(map(tuple, every.refined["decoupled@16"])) == {0.01: 6, 0.1: 6}
    # at 16 no extra seeds: its optimum keeps 2, and the proxy's choice (0.1) is trained with as many
    assert "decoupled@16" not in ends.refined or all(n == 2 for _, n in ends.refined["decoupled@16"])
    assert dict(map(tuple, ends.refined["decoupled@8"])) == dict(map(tuple, every.refined["decoupled@8"]))
    assert dict(map(tuple, ends.refined["decoupled@32"])) == dict(map(tuple, every.refined["decoupled@32"]))
    assert n_ends == n_every - 2 * 4


def test_refine_refuses_an_unknown_seeds_at(tmp_path):
    run_study(StudyPlan(**PLAN), tmp_path, execution=Execution(workers=1, progress=False))
    with pytest.raises(WdscaleError, match="seeds_at='middle' is not allowed: one of 'all', 'ends'"):
        _refine(tmp_path, seeds_at="middle")


def _refined_frame() -> tuple[pd.DataFrame, set[str]]:
    """Two sizes, 7 coarse settings at 3 seeds (optimum at 1.0, index 3), seeds 3–5 added at the
    optimum of each and one refined setting between grid points."""
    settings = [10.0**k for k in range(-3, 4)]
    coarse = pd.concat([_frame({s: [1 + 0.1 * abs(math.log10(s)) + 0.01 * i for i in range(3)] for s in settings}, n)
                        for n in (8, 16, 32)])  # fmt: skip
    extra = pd.concat([_frame({1.0: [1.0] * 6, 3.0: [1.05] * 3}, n) for n in (8, 16, 32)])
    extra = extra[~extra.run_id.isin(coarse.run_id)]
    df = pd.concat([coarse, extra], ignore_index=True)
    df = df.assign(wall_time=1.0, threads=1, task="t", optimizer="adamw", size_axis="width")
    return df, set(coarse.run_id)


def test_design_masks_drop_what_each_design_would_not_have_trained():
    df, coarse = _refined_frame()
    keep = {d: design_mask(df, d, coarse, base_seeds=3) for d in DESIGNS}
    assert keep["as run"].all()
    assert set(df[keep["max seeds 4"]].seed) == {0, 1, 2, 3}
    assert set(df[keep["no extra seeds"]].seed) == {0, 1, 2}
    middle_extra = (df["size"] == 16) & (df.seed >= 3)
    assert (
        not keep["extra seeds at the ends"][middle_extra].any() and keep["extra seeds at the ends"][~middle_extra].all()
    )
    # the half grid keeps indices 0, 2, 4, 6 and the two beside their optimum (0.1 and 10 tie at
    # 1.1; the first, index 2, wins), so it keeps 1 and 3 and drops 5 (100); every refined run stays
    half = df[keep["half coarse grid"]]
    dropped = sorted(set(df[df.run_id.isin(coarse)].setting) - set(half[half.run_id.isin(coarse)].setting))
    assert dropped == [100.0]
    assert set(df.run_id) - set(coarse) <= set(half.run_id)
    with pytest.raises(WdscaleError, match="design='thirds' is not allowed"):
        design_mask(df, "thirds", coarse, base_seeds=3)


def test_design_replay_counts_compute_against_the_coarse_grid_and_compares_verdicts():
    df, coarse = _refined_frame()
    r = design_replay(df, coarse, base_seeds=3, designs=("no extra seeds",), n_boot=50)
    assert list(r.design.unique()) == ["as run", "no extra seeds"]
    as_run = r[r.design == "as run"].iloc[0]
    n_coarse = len(coarse)
    assert as_run.compute == pytest.approx(len(df) / n_coarse) and as_run.runs == pytest.approx(len(df) / n_coarse)
    cut = r[r.design == "no extra seeds"].iloc[0]
    assert cut.runs == pytest.approx((df.seed < 3).sum() / n_coarse)
    # the target's optimum and the proxy's choice are both 1.0: no regret either way
    assert as_run.regret == 0 and cut.regret == 0


def test_the_seeds_at_note_is_what_the_findings_replay_gives():
    import dataclasses

    from wdscale.study.plan.study_plan import make_runs
    from wdscale.study.plan.tasks import get_task

    findings = Path(__file__).parents[3] / "docs" / "findings"
    same, series, ratios = 0, 0, []
    studied = 0
    for path in sorted(findings.glob("*/plan.json")):
        plan = StudyPlan.from_stored(json.loads(path.read_text()))
        if not plan.refined or not _constant_one_d(path.parent):
            continue
        studied += 1
        coarse = {c.run_id for c in make_runs(dataclasses.replace(plan, refined={}), get_task(plan.task))}
        r = design_replay(load_runs(path.parent), coarse, plan.seeds, designs=("extra seeds at the ends",))
        ends, as_run = r[r.design != "as run"], r[r.design == "as run"]
        same += int((ends.same_regret & ends.same_drift).sum())
        series += len(ends)
        ratios.append(ends.compute.iloc[0] / as_run.compute.iloc[0])
    assert (studied, same, series) == SEEDS_AT_CHECKED
    assert (round(min(ratios), 2), round(max(ratios), 2)) == SEEDS_AT_COMPUTE


def test_an_optimum_on_the_edge_of_what_was_trained_is_walked_past_until_bracketed():
    from wdscale.study.search.refine import extend_edges

    plan = StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=2, settings=GRID)
    falling = {s: [1.0 + 0.1 * math.log10(s / 1e-5)] * 2 for s in GRID["decoupled"]}  # lowest below the grid
    grown, n = extend_edges(plan, _frame(falling), GRID, [8, 32])
    assert n == 1 and grown.refined["decoupled@8"] == [[pytest.approx(1e-4), 2]]
    # trained and still the lowest: one more step; then a worse point beyond brackets it
    df = pd.concat([_frame(falling), _frame({1e-4: [1.0 + 0.1] * 2})])
    grown, n = extend_edges(grown, df, GRID, [8, 32])
    assert n == 1 and sorted(s for s, _ in grown.refined["decoupled@8"]) == pytest.approx([1e-5, 1e-4])
    df = pd.concat([df, _frame({1e-5: [1.5] * 2})])
    assert extend_edges(grown, df, GRID, [8, 32])[1] == 0
    # a point that diverged beyond the optimum brackets it too
    diverged = _frame({1e-5: [1.5] * 2}).assign(status="diverged", val_loss=float("nan"))
    df = pd.concat([df[df["setting"] != 1e-5], diverged])
    assert extend_edges(grown, df, GRID, [8, 32])[1] == 0


def test_a_joint_optimum_at_the_largest_lr_trained_at_its_setting_gets_a_larger_lr():
    from wdscale.study.search.refine import extend_edges

    lrs = [0.001, 0.01, 0.1]
    plan = StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=1, settings=GRID, lrs=lrs)
    rows = [
        dict(rule="decoupled", size=8, lr=lr, setting=s, seed=0, status="ok", run_id=f"{lr}-{s}",
             val_loss=1.0 + 0.1 * math.log10(s / 0.1) ** 2 - 0.1 * math.log10(lr))
        for lr in lrs for s in GRID["decoupled"]
    ]  # fmt: skip
    grown, n = extend_edges(plan, pd.DataFrame(rows), GRID, [8, 32], lrs=lrs)
    assert n == 1 and grown.refined["decoupled@8"] == [[pytest.approx(0.1), 1, pytest.approx(1.0)]]


# -- the cross follows the optimum: its setting neighbours at its best lr ------------------------------


def test_seeds_go_to_the_setting_arm_at_the_optimums_lr_as_many_as_the_optimum_gets():
    """A joint optimum at a fine lr between coarse ones: the settings beside it at that lr, worse
    beyond noise, still get the optimum's seeds (its neighbours are weighed at its lr, like it)."""
    lrs = [0.001, 0.01, 0.1]
    plan = StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=2, settings=GRID, lrs=lrs)
    best = (0.02154, 0.1)
    arm = {0.04642: 1.02, 0.2154: 1.03, 1.0: 1.1, 0.01: 1.2, 10.0: 1.5}  # 10 is two coarse steps out
    rows = [(lr, s, 1.1) for lr in (0.01, 0.1) for s in GRID["decoupled"]] + [(*best, 1.0)]
    rows += [(best[0], s, v) for s, v in arm.items()]
    df = pd.DataFrame(
        dict(rule="decoupled", size=8, lr=lr, setting=s, seed=i, status="ok", val_loss=v + 0.001 * i,
             run_id=f"{lr}-{s}-{i}")
        for lr, s, v in rows for i in range(2)
    )  # fmt: skip
    grown, _ = add_seeds(plan, df, GRID, [8, 32], max_seeds=6, lrs=lrs)
    have = {(e[2], e[0]): e[1] for e in grown.refined["decoupled@8"]}
    assert have[best] == 6
    for s in (0.01, 0.04642, 0.2154, 1.0):  # within one coarse step of 0.1, at its lr
        assert have.get((best[0], s)) == 6, s
    assert (best[0], 10.0) not in have and (0.01, 0.04642) not in have  # farther out, or at another lr
    # a 1-D study has no lr arm to tune past: only the optimum and the points within noise get seeds
    one_d = add_seeds(StudyPlan(sizes=[8, 32], rules=["decoupled"], seeds=2, settings=GRID), df[df.lr == best[0]],
                      GRID, [8, 32], max_seeds=6)[0]  # fmt: skip
    assert {e[0]: e[1] for e in one_d.refined["decoupled@8"]} == {0.1: 6}


def _valley(lr: float, setting: float, seed: int) -> float:
    """Lowest at lr 10^-5/3 ≈ 0.0215 (between coarse lrs) along η·λ = 1e-3: at the coarse lrs the
    best setting is a coarse one, at the best lr it is a fine one (0.0464) that the first cross,
    built at a coarse lr, never trains there."""
    return 1.0 + 0.2 * (math.log10(lr) + 5 / 3) ** 2 + 0.05 * math.log10(lr * setting / 1e-3) ** 2 + 0.001 * seed


@pytest.fixture
def fake_training(monkeypatch):
    """refine_study on a joint plan whose runs are 'trained' by `_valley` (no torch): run_study
    stores every planned run not stored yet, load_runs returns what is stored."""
    from wdscale.study.plan.study_plan import make_runs
    from wdscale.study.plan.tasks import get_task

    stored: dict[str, dict] = {}

    def run_study(plan, out, **kw):
        for c in make_runs(plan, get_task(plan.task)):
            if c.run_id not in stored:
                stored[c.run_id] = dict(rule=c.rule, size=c.size, lr=c.lr, setting=c.setting, seed=c.seed,
                                        status="ok", val_loss=_valley(c.lr, c.setting, c.seed), wall_time=1.0,
                                        threads=1, run_id=c.run_id)  # fmt: skip

    monkeypatch.setattr("wdscale.study.search.refine.run_study", run_study)
    monkeypatch.setattr("wdscale.study.search.refine.load_runs", lambda out: pd.DataFrame(list(stored.values())))
    plan = StudyPlan(**{**TINY, "rules": ["decoupled"], "settings": GRID, "lrs": [0.001, 0.01, 0.1]})
    run_study(plan, None)
    return plan


def test_refine_follows_a_joint_optimum_to_its_best_lr_and_trains_its_setting_neighbours_there(fake_training, tmp_path):
    first = refine_study(fake_training, tmp_path, points=3, max_seeds=4)
    from wdscale.study.search import refine

    df = refine.load_runs(tmp_path)
    means = setting_means(df)
    for row in measured_optima(df).itertuples():
        assert (row.lr, row.setting) == (pytest.approx(0.02154, rel=1e-3), pytest.approx(0.04642, rel=1e-3))
        at = means[(means["size"] == row.size) & (means.lr == row.lr)].set_index("setting")
        # its setting neighbours, one and two fine steps and one coarse step each side, at its lr,
        # each with the optimum's seeds
        for k in (-3, -2, -1, 1, 2, 3):
            s = [x for x in at.index if math.isclose(x, row.setting * 10 ** (k / 3), rel_tol=1e-3)]
            assert len(s) == 1 and at.loc[s[0], "n"] == row.n == 4, (row.size, k)
    # resume is exact: a second refine finds every cross trained and adds nothing
    again = refine_study(first.plan, tmp_path, points=3, max_seeds=4)
    assert again.added_runs == 0 and again.plan == first.plan
