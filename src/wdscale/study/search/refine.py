"""Adaptive refinement: after a coarse sweep, put runs where the decision is made.

`refine_study` reads a study's stored runs and grows its plan (`StudyPlan.refined`) in two stages,
training each through the normal driver (`runner.run_study`: the same lock, store and job cutting,
so the store still holds one plan and nothing stored is trained again):

1. settings: around each (rule, size)'s measured optimum — the point with the lowest seed-mean
   loss among trained (`ok`) runs — a finer log grid, `points` steps per coarse step, out to one
   coarse step on each side (in a joint study, a cross: finer settings at the optimum's lr and
   finer lrs at its setting);
   then, while an optimum is the last point trained through it — the smallest or largest setting
   trained at its lr or (joint) the smallest or largest lr trained at its setting — one coarse
   step beyond it (`extend_edges`, at most MAX_EDGE_DECADES past the coarse grid), so every
   optimum ends bracketed, by a worse point or by one that diverged or did not learn;
   in a joint study the cross then follows the optimum: when it moved to a point whose cross is
   not trained (typically a finer lr on its setting's arm), the cross around that point, so the
   settings beside the optimum are trained at its best lr, not only at the coarse lrs its own lr
   arm was tuned past (the incumbent's bias of a single cross);
2. seeds: up to `max_seeds` at the optimum and at every point whose seed-mean is within noise of
   it (within 2 standard errors of the difference), and in a joint study as many as the optimum
   has at the settings of its cross's setting arm (its lr, within one coarse step), so they are
   weighed against it on equal seeds — at every size, or with `seeds_at="ends"`
   only at the smallest and largest, the two sizes a regret compares — and the proxy's (smallest size's) optimum
   trained at every larger size with as many seeds as that size's optimum, so its transfer regret
   is measured, not read off a curve (in a joint study also the proxy's optimum over settings at
   the fixed lr: the λ-only transfer). Stage 2 repeats until it adds nothing (the optimum may
   move as seeds are added; in a joint study stage 1 follows it after each round).

`pruning_check` asks, on a finished study, whether a coarse-then-refine search (every other grid
point dropped, then the dropped neighbours of the coarse optimum added) finds the full grid's
optimum.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import pandas as pd

from ...checks import check_positive_int
from ...errors import WdscaleError
from ..analysis.study_analysis import analyze, core_seconds, run_losses
from ..plan.config import ModelFn
from ..plan.study_plan import (
    Point,
    StudyPlan,
    coarse_grids,
    fixed_lr,
    make_runs,
    points,
    read_plan_json,
    refined_key,
    resolve,
    with_refined,
)
from ..plan.tasks import TASKS, Task, get_task
from ..run.execution import DEFAULT_EXECUTION, Execution
from ..run.jobs import Source
from ..run.runner import keep_refined, run_study
from ..run.store import Store, load_runs, store_from_export

# pruning_check on the committed studies (docs/findings/*/runs.parquet, per optimizer), held by
# tests/study/search/test_refine.py::test_the_pruning_check_quoted_in_the_help_is_what_the_findings_give
PRUNING_CHECKED = (242, 244)
PRUNING_NOTE = (
    "Checked on the 10 committed studies (docs/findings): the refined search (every other grid point, then the "
    f"dropped neighbours of that optimum) found the full grid's optimum in {PRUNING_CHECKED[0]} of "
    f"{PRUNING_CHECKED[1]} cases (rule × size); the 2 misses, in the SGD width study, cost ≤ 3.3 %."
)
# design_replay on the refined findings studies: "extra seeds at the ends" against "as run", held by
# tests/study/search/test_refine.py::test_the_seeds_at_note_is_what_the_findings_replay_gives
SEEDS_AT_CHECKED = (10, 46, 46)  # studies; series whose regret resolution and drift verdict both held; series
SEEDS_AT_COMPUTE = (0.85, 0.95)  # its compute over the refinement as run's, lowest and highest study
SEEDS_AT_NOTE = (
    f"replayed on the {SEEDS_AT_CHECKED[0]} refined studies of docs/findings: the regret's resolution and the "
    f"drift's verdict unchanged in {SEEDS_AT_CHECKED[1]} of {SEEDS_AT_CHECKED[2]} rule series, at "
    f"{SEEDS_AT_COMPUTE[0]:.2f}–{SEEDS_AT_COMPUTE[1]:.2f} of the compute"
)
SEEDS_AT = ("all", "ends")
SeedsAt = Literal["all", "ends"]
NOISE_SE = 2.0  # a setting is "within noise" of the optimum when its mean is within this many s.e.
MAX_SEED_ROUNDS = 5  # stage 2 repeats until nothing is added; this bounds it
MAX_CROSS_ROUNDS = 5  # so does stage 1's following of a moving optimum (each round a new cross)
# how far past its coarse grid (either axis) stage 1 walks after an optimum on the edge: a loss
# still falling 2 decades out (decay that does not matter: λ → 0) is reported at the edge, a bound
MAX_EDGE_DECADES = 2.0


@dataclass
class RefineSummary:
    plan: StudyPlan  # the grown plan, as stored
    added_runs: int  # runs trained by this call
    added_core_s: float  # their core-seconds (wall time × threads)
    coarse_runs: int  # stored runs of the coarse grid (the plan without its refined points)
    coarse_core_s: float
    refined_runs: int  # stored runs of every refinement so far
    refined_core_s: float

    def line(self) -> str:
        ratio = (self.coarse_core_s + self.refined_core_s) / self.coarse_core_s if self.coarse_core_s else math.nan
        return (
            f"refine: {self.added_runs} runs added ({self.added_core_s:.1f} core-s); the study now holds "
            f"{self.coarse_runs} coarse-grid runs ({self.coarse_core_s:.1f} core-s) and {self.refined_runs} "
            f"refined runs ({self.refined_core_s:.1f} core-s): {ratio:.2f}× the coarse grid's compute"
        )


def setting_means(df: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (rule, size, lr, setting): the seed-mean loss, its standard error and n, counted as
    the analysis counts them (a point where a seed diverged or did not learn has mean +inf, so it
    is never the optimum refine builds around; failed runs say nothing and are dropped)."""
    runs = df[df["status"] != "failed"]
    g = runs.assign(loss=run_losses(runs, metric)).groupby(["rule", "size", "lr", "setting"])["loss"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.size()}).reset_index()
    out["sem"] = out["sem"].fillna(0.0)
    return out


def measured_optima(df: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (rule, size): the trained (lr, setting) with the lowest seed-mean loss (mean, sem, n)."""
    m = setting_means(df, metric)
    return m.loc[m.groupby(["rule", "size"])["mean"].idxmin()].reset_index(drop=True)


def log_step(grid: list[float]) -> float:
    """One coarse step of a grid, in decades (the median spacing)."""
    logs = np.log10(sorted(grid))
    return float(np.median(np.diff(logs)))


def _snap(value: float, existing: list[float], tol_decades: float) -> Optional[float]:
    """The existing setting within `tol_decades` of `value`, if any (4-digit rounding moves a
    setting by ~1e-4, so a fine point and a coarse one that mean the same are one setting)."""
    for s in existing:
        if abs(math.log10(value / s)) < tol_decades:
            return s
    return None


def _planned(
    plan: StudyPlan, grid: dict[str, list[float]], lrs: list[float], rule: str, size: int
) -> dict[tuple[float, float], int]:
    return points(plan, grid[rule], rule, size, lrs)


def _refined(lrs: list[float], lr: float, setting: float) -> Point:
    """A refined point's key: a 1-D study's points carry no lr (the study has one)."""
    return (None if len(lrs) == 1 else lr, setting)


def _finer(best: float, step: float, points_per_step: int, existing: list[float], anchor: float) -> list[float]:
    """Values `step / points_per_step` decades apart out to one `step` each side of `best`,
    without those `existing` already holds. They lie on one lattice through `anchor` (a coarse grid
    point), so the fine grids of different sizes share their values exactly."""
    fine = step / points_per_step
    centre = round(math.log10(best / anchor) / fine)
    out: list[float] = []
    for k in range(-points_per_step, points_per_step + 1):
        v = float(f"{anchor * 10 ** ((centre + k) * fine):.4g}")
        if k and _snap(v, existing + out, fine / 4) is None:
            out.append(v)
    return out


def add_settings(
    plan: StudyPlan,
    df: pd.DataFrame,
    grid: dict[str, list[float]],
    sizes: list[int],
    points_per_step: int,
    metric: str = "val_loss",
    lrs: Optional[list[float]] = None,
) -> tuple[StudyPlan, int]:
    """Stage 1: a finer grid around each measured optimum (finer settings at its lr; in a joint
    study also finer lrs at its setting), no farther than MAX_EDGE_DECADES past the coarse grid.
    Returns the grown plan and how many points it adds."""
    lrs = lrs if lrs is not None else sorted(df["lr"].unique())
    additions: dict[str, dict[Point, int]] = {}
    added = 0
    # every lr the plan trains anywhere: a finer lr near one of them is that lr (4-digit rounding
    # of two optima's fine grids must not make two lrs that mean the same)
    known_lrs = sorted({*lrs, *(float(e[2]) for v in plan.refined.values() for e in v if len(e) == 3)})
    for row in measured_optima(df, metric).itertuples():
        rule, size, lr, best = str(row.rule), int(row.size), float(row.lr), float(row.setting)
        if rule not in plan.rules or size not in sizes:
            continue
        planned = _planned(plan, grid, lrs, rule, size)
        at_lr = [s for (r_lr, s) in planned if r_lr == lr]
        fine = _finer(best, log_step(grid[rule]), points_per_step, at_lr, min(grid[rule]))
        new = [(lr, s) for s in fine if _within_reach(s, grid[rule])]
        if len(lrs) > 1:
            at_best = [r_lr for (r_lr, s) in planned if s == best]
            step = log_step(lrs)
            for x in _finer(lr, step, points_per_step, at_best, min(lrs)):
                x = _snap(x, known_lrs, step / points_per_step / 4) or x
                if x not in at_best and _within_reach(x, lrs):
                    new.append((x, best))
                    known_lrs.append(x)
        for x, s in new:
            additions.setdefault(refined_key(rule, size), {})[_refined(lrs, x, s)] = plan.seeds
            added += 1
    return with_refined(plan, additions), added


def extend_edges(
    plan: StudyPlan,
    df: pd.DataFrame,
    grid: dict[str, list[float]],
    sizes: list[int],
    metric: str = "val_loss",
    lrs: Optional[list[float]] = None,
) -> tuple[StudyPlan, int]:
    """One coarse step beyond every measured optimum that is the last point trained through it:
    the smallest or largest setting trained at its lr, or in a joint study the smallest or
    largest lr trained at its setting (a point that diverged or did not learn counts as trained:
    it brackets the optimum). Returns the grown plan and how many points it adds."""
    lrs = lrs if lrs is not None else sorted(df["lr"].unique())
    means = setting_means(df, metric)
    known_lrs = sorted({*lrs, *(float(e[2]) for v in plan.refined.values() for e in v if len(e) == 3)})
    additions: dict[str, dict[Point, int]] = {}
    added = 0
    for row in measured_optima(df, metric).itertuples():
        rule, size, lr, best = str(row.rule), int(row.size), float(row.lr), float(row.setting)
        if rule not in plan.rules or size not in sizes or not np.isfinite(row.mean):
            continue
        here = means[(means["rule"] == rule) & (means["size"] == size)]
        at_lr = sorted(here.loc[np.isclose(here["lr"], lr, rtol=1e-6), "setting"])
        new: list[tuple[float, float]] = []
        step = log_step(grid[rule])
        for side, end in ((-1, at_lr[0]), (1, at_lr[-1])):
            if best == end:
                beyond = float(f"{best * 10 ** (side * step):.4g}")
                if _within_reach(beyond, grid[rule]):
                    new.append((lr, _snap(beyond, at_lr, step / 4) or beyond))
        if len(lrs) > 1:
            at_setting = sorted(here.loc[np.isclose(here["setting"], best, rtol=1e-3), "lr"])
            lr_step = log_step(lrs)
            for side, end in ((-1, at_setting[0]), (1, at_setting[-1])):
                if lr == end:
                    beyond = float(f"{lr * 10 ** (side * lr_step):.4g}")
                    beyond = _snap(beyond, known_lrs, lr_step / 4) or beyond
                    if _within_reach(beyond, lrs):
                        known_lrs.append(beyond)
                        new.append((beyond, best))
        planned = _planned(plan, grid, lrs, rule, size)
        for x, s in new:
            if (x, s) in planned:  # planned already (a run that failed there is not retried here)
                continue
            additions.setdefault(refined_key(rule, size), {})[_refined(lrs, x, s)] = plan.seeds
            added += 1
    return with_refined(plan, additions), added


def _within_reach(value: float, coarse: list[float]) -> bool:
    """Is `value` at most MAX_EDGE_DECADES outside the coarse grid's range?"""
    out = max(math.log10(min(coarse) / value), math.log10(value / max(coarse)), 0.0)
    return out <= MAX_EDGE_DECADES + 1e-9


def add_seeds(
    plan: StudyPlan,
    df: pd.DataFrame,
    grid: dict[str, list[float]],
    sizes: list[int],
    max_seeds: int,
    metric: str = "val_loss",
    lrs: Optional[list[float]] = None,
    fixed: Optional[float] = None,
    seeds_at: SeedsAt = "all",
) -> tuple[StudyPlan, int]:
    """Stage 2: seeds up to `max_seeds` at each optimum and the points within noise of it (at
    every size, or with `seeds_at="ends"` only at the smallest and largest, whose losses the
    regret compares), and the proxy's optimum at every larger size with as many seeds as that
    size's optimum (in a joint study also the proxy's best setting at the `fixed` lr, the λ-only
    transfer). Returns the grown plan and how many runs it adds."""
    lrs = lrs if lrs is not None else sorted(df["lr"].unique())
    means = setting_means(df, metric)
    additions: dict[str, dict[Point, int]] = {}
    added = 0
    seeds_now: dict[tuple[str, int], dict[tuple[float, float], int]] = {}

    def want(rule: str, size: int, point: tuple[float, float], n: int) -> None:
        nonlocal added
        have = seeds_now.setdefault((rule, size), _planned(plan, grid, lrs, rule, size))
        if have.get(point, 0) < n:
            added += n - have.get(point, 0)
            have[point] = n
            additions.setdefault(refined_key(rule, size), {})[_refined(lrs, *point)] = n

    optima: dict[tuple[str, int], tuple[float, float]] = {}
    sliced: dict[tuple[str, int], tuple[float, float]] = {}  # the optimum at the fixed lr
    for (rule, size), m in means.groupby(["rule", "size"]):
        rule, size = str(rule), int(size)
        if rule not in plan.rules or size not in sizes:
            continue
        best = m.loc[m["mean"].idxmin()]
        optima[(rule, size)] = (float(best["lr"]), float(best["setting"]))
        if fixed is not None and len(lrs) > 1 and (m["lr"] == fixed).any():
            at = m[m["lr"] == fixed]
            sliced[(rule, size)] = (fixed, float(at.loc[at["mean"].idxmin(), "setting"]))
        if seeds_at == "ends" and size not in (sizes[0], sizes[-1]):
            continue
        close = m[(m["mean"] - best["mean"]) <= NOISE_SE * np.sqrt(m["sem"] ** 2 + best["sem"] ** 2)]
        for lr, s in zip(close["lr"], close["setting"]):
            want(rule, size, (float(lr), float(s)), max(max_seeds, plan.seeds))
        if len(lrs) > 1 and np.isfinite(best["mean"]):
            # the cross's setting arm at the optimum's lr, with the optimum's seeds: the settings
            # beside the optimum are weighed against it at the lr its own arm found best, not at
            # the coarse lrs alone (the incumbent's bias)
            n = seeds_now.get((rule, size), {}).get(optima[(rule, size)], plan.seeds)
            for lr, s in _setting_arm(m, *optima[(rule, size)], log_step(grid[rule])):
                want(rule, size, (lr, s), n)
    # the smallest size's choice at every larger size (drift and regret); every other smaller
    # size's at the largest (the tuning-cost frontier compares proxies)
    targets = {proxy: sizes[1:] if proxy == sizes[0] else sizes[-1:] for proxy in sizes[:-1]}
    for chosen in (optima, sliced):
        for rule, (proxy_size, larger) in ((r, t) for r in plan.rules for t in targets.items()):
            proxy = chosen.get((rule, proxy_size))
            if proxy is None:
                continue
            for size in larger:
                have = seeds_now.setdefault((rule, size), _planned(plan, grid, lrs, rule, size))
                best = optima.get((rule, size))
                n = have.get(best, plan.seeds) if best is not None else plan.seeds
                step = log_step(grid[rule])
                same_lr = [s for (r_lr, s) in have if r_lr == proxy[0]]
                want(rule, size, (proxy[0], _snap(proxy[1], same_lr, step / 40) or proxy[1]), n)
    return with_refined(plan, additions), added


def _setting_arm(means: pd.DataFrame, lr: float, best: float, step: float) -> list[tuple[float, float]]:
    """The trained points at `lr` whose setting is within one coarse `step` (decades) of `best`,
    other than `best`: the setting arm of the cross through an optimum (a point where a seed
    diverged or did not learn is left out: more seeds there say nothing about the optimum)."""
    at = means[np.isclose(means["lr"], lr, rtol=1e-6) & np.isfinite(means["mean"])]
    near = np.abs(np.log10(at["setting"].to_numpy(float) / best)) <= step * (1 + 1e-6)
    return [(float(x), float(s)) for x, s in zip(at["lr"][near], at["setting"][near]) if s != best]


def stored_plan(out: Union[str, Path]) -> StudyPlan:
    """The plan a study directory's store holds. A directory with only an export (runs.parquet
    and plan.json, as docs/findings keeps finished studies) first gets its store made from them."""
    path = Path(out)
    if not (path / "runs.sqlite").exists() and (path / "runs.parquet").is_file() and (path / "plan.json").is_file():
        plan = read_plan_json(path / "plan.json")
        if plan.task in TASKS:
            n = store_from_export(path, make_runs(plan, get_task(plan.task)), plan.to_dict())
            print(f"refine: made {path / 'runs.sqlite'} from runs.parquet ({n} runs) and plan.json", file=sys.stderr)
    if not (path / "runs.sqlite").is_file():
        raise WdscaleError(
            f"{str(path)!r} holds no study store (runs.sqlite): run `wdscale study run --out {path}` first"
        )
    with Store(path / "runs.sqlite", readonly=True) as store:
        d = store.plan()
    if d is None:
        raise WdscaleError(f"the store in {str(path)!r} holds no plan: run `wdscale study run --out {path}` first")
    return StudyPlan.from_stored(d)


MAX_POINTS = 12  # fine steps per coarse step: 12 already puts 25 points within one step of an optimum
MAX_SEEDS = 64


def check_refine_args(points: int, max_seeds: int) -> None:
    """points in 2..MAX_POINTS and max_seeds in 1..MAX_SEEDS, or one error naming the value (a typo
    like --points 1000000000 would otherwise plan billions of runs, and hang)."""
    if not 2 <= check_positive_int("points", points) <= MAX_POINTS:
        raise WdscaleError(
            f"points={points!r} is not allowed: fine steps per coarse step, a whole number from 2 to {MAX_POINTS}"
        )
    if check_positive_int("max_seeds", max_seeds) > MAX_SEEDS:
        raise WdscaleError(f"max_seeds={max_seeds!r} is not allowed: a whole number from 1 to {MAX_SEEDS}")


def refine_study(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    *,
    points: int = 3,
    max_seeds: int = 6,
    seeds_at: SeedsAt = "all",
    metric: str = "val_loss",
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
) -> RefineSummary:
    """Grow a stored study's plan where the decision is made and train the new runs (see the
    module's docstring). `plan` is the study's plan; the store's refined points are kept."""
    check_refine_args(points, max_seeds)
    if seeds_at not in SEEDS_AT:
        raise WdscaleError(f"seeds_at={seeds_at!r} is not allowed: one of {', '.join(map(repr, SEEDS_AT))}")
    out = Path(out_dir)
    task = task if task is not None else get_task(plan.task)
    plan = keep_refined(plan, out)
    before = load_runs(out)
    if before.empty or not (before["status"] == "ok").any():
        raise WdscaleError(f"the study in {str(out)!r} has no trained runs to refine around: run it first")
    before_ids = set(before["run_id"])

    def train(plan: StudyPlan) -> None:
        run_study(plan, out, source=source, task=task, model_fn=model_fn, execution=execution)

    # stage 1 (this also trains what an interrupted refine left in the plan)
    grid = coarse_grids(plan, task, model_fn)
    resolved = resolve(plan, task, model_fn)
    sizes, lrs, fixed = resolved.sizes, resolved.lrs, fixed_lr(resolved.lrs, resolved.lr)
    plan, n_settings = add_settings(plan, before, grid, sizes, points, metric, lrs)
    print(f"refine: {n_settings} points added around the measured optima", file=sys.stderr)
    train(plan)

    def around_optima() -> None:
        """Stage 1 on what is trained, until it adds nothing: the walk past an optimum on the
        edge, then the cross around an optimum that moved to a point whose cross is not trained
        (a better lr on its setting's arm: its setting neighbours are then trained at that lr)."""
        nonlocal plan
        for _ in range(MAX_CROSS_ROUNDS):
            while True:  # ends: each round walks further out, and MAX_EDGE_DECADES bounds the walk
                plan, n = extend_edges(plan, load_runs(out), grid, sizes, metric, lrs)
                if not n:
                    break
                print(f"refine: {n} points added beyond optima on the edge of what was trained", file=sys.stderr)
                train(plan)
            if len(lrs) == 1:  # a 1-D study has no lr arm for its optimum to move along
                return
            plan, n_cross = add_settings(plan, load_runs(out), grid, sizes, points, metric, lrs)
            if not n_cross:
                return
            print(f"refine: {n_cross} points added around optima that moved", file=sys.stderr)
            train(plan)

    around_optima()
    # stage 2, until nothing is added (seeds may move a joint optimum: stage 1 follows it)
    for _ in range(MAX_SEED_ROUNDS):
        plan, n_runs = add_seeds(plan, load_runs(out), grid, sizes, max_seeds, metric, lrs, fixed, seeds_at)
        if not n_runs:
            break
        print(f"refine: {n_runs} seed runs added near the optima and at the proxy's optimum", file=sys.stderr)
        train(plan)
        if len(lrs) > 1:
            around_optima()
    df = load_runs(out)
    core_s = core_seconds(df)
    coarse_ids = {c.run_id for c in make_runs(dataclasses.replace(plan, refined={}), task, model_fn)}
    is_new = ~df["run_id"].isin(before_ids)
    is_coarse = df["run_id"].isin(coarse_ids)
    summary = RefineSummary(
        plan=plan,
        added_runs=int(is_new.sum()),
        added_core_s=float(core_s[is_new].sum()),
        coarse_runs=int(is_coarse.sum()),
        coarse_core_s=float(core_s[is_coarse].sum()),
        refined_runs=int((~is_coarse).sum()),
        refined_core_s=float(core_s[~is_coarse].sum()),
    )
    print(summary.line(), file=sys.stderr)
    return summary


def _half_grid_search(means: np.ndarray) -> tuple[int, list[int]]:
    """A search over a grid (seed-means in setting order) that trains every other setting (the
    first, third, ...), then the two beside the best of those. Returns that best index and every
    index searched."""
    kept = list(range(0, len(means), 2))
    coarse = min(kept, key=lambda i: means[i])
    return coarse, sorted({*kept, *(i for i in (coarse - 1, coarse + 1) if 0 <= i < len(means))})


def pruning_check(df: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (rule, size) of a finished study: does a coarse-then-refine search find the full grid's
    optimum? The coarse search keeps every other setting (the first, third, ...); the refine step
    adds the full grid's settings next to the coarse optimum. Columns: rule, size, full (the full
    grid's optimum), coarse, refined (the search's choice), same (refined == full) and gap (the
    refined choice's seed-mean loss over the full optimum's, minus 1)."""
    rows = []
    for (rule, size), m in setting_means(df, metric).groupby(["rule", "size"]):
        m = m.sort_values("setting").reset_index(drop=True)
        if len(m) < 3:
            continue
        full = int(m["mean"].idxmin())
        coarse, searched = _half_grid_search(m["mean"].to_numpy(float))
        refined = min(searched, key=lambda i: m["mean"][i])
        rows.append(
            dict(
                rule=rule,
                size=int(size),
                full=float(m["setting"][full]),
                coarse=float(m["setting"][coarse]),
                refined=float(m["setting"][refined]),
                same=refined == full,
                gap=float(m["mean"][refined] / m["mean"][full] - 1),
            )
        )
    return pd.DataFrame(rows, columns=["rule", "size", "full", "coarse", "refined", "same", "gap"])


# the designs `design_replay` compares with the refinement as run (a coarse grid, then refined):
# its seeds capped, no seeds beyond the coarse grid's, extra seeds only at the sizes whose regret is
# measured (the smallest, where the choice is made, and the largest, where it is paid), and a coarse
# grid of every other setting (the pruning check's search: the dropped neighbours of its optimum
# kept), alone and with extra seeds only at the ends
DESIGNS = (
    "as run",
    "max seeds 4",
    "no extra seeds",
    "extra seeds at the ends",
    "half coarse grid",
    "half coarse grid, extra seeds at the ends",
)


def _half_grid_drops(df: pd.DataFrame, coarse: pd.Series, base_seeds: int, metric: str) -> pd.Series:
    """The coarse-grid runs a coarse grid of every other setting would not have trained: per
    (rule, size, lr), the odd-numbered coarse settings other than the two beside the optimum of
    the even-numbered ones (seed-means over the coarse seeds)."""
    first = df[coarse & (df["seed"].astype(int) < base_seeds)]
    means = setting_means(first, metric)
    dropped = []
    for (rule, size, lr), m in means.groupby(["rule", "size", "lr"]):
        m = m.sort_values("setting").reset_index(drop=True)
        _, searched = _half_grid_search(m["mean"].to_numpy(float))
        dropped += [(rule, size, lr, m["setting"][i]) for i in range(len(m)) if i not in searched]
    key = pd.MultiIndex.from_frame(df[["rule", "size", "lr", "setting"]])
    return pd.Series(key.isin(dropped), index=df.index) & coarse


def design_mask(df: pd.DataFrame, design: str, coarse_ids: set[str], base_seeds: int, metric: str = "val_loss"):
    """The runs of a refined study that `design` (one of DESIGNS) would have kept. Seeds are
    numbered 0, 1, ... at every point, so a cap keeps the lowest-numbered ones."""
    if design not in DESIGNS:
        raise WdscaleError(f"design={design!r} is not allowed: one of {', '.join(DESIGNS)}")
    seed, sizes = df["seed"].astype(int), df["size"].astype(int)
    extra = seed >= base_seeds
    keep = pd.Series(True, index=df.index)
    if design == "max seeds 4":
        keep &= seed < max(4, base_seeds)
    if design == "no extra seeds":
        keep &= ~extra
    if design.endswith("extra seeds at the ends"):
        keep &= ~extra | sizes.isin([sizes.min(), sizes.max()])
    if design.startswith("half coarse grid"):
        keep &= ~_half_grid_drops(df, df["run_id"].isin(coarse_ids), base_seeds, metric)
    return keep


def design_replay(
    df: pd.DataFrame,
    coarse_ids: set[str],
    base_seeds: int,
    designs: tuple[str, ...] = DESIGNS,
    n_boot: int = 200,
    metric: str = "val_loss",
) -> pd.DataFrame:
    """Replay cheaper designs on a refined study: drop the runs a design would not have trained
    and analyse what is left. One row per (design, rule) of "as run" and `designs`: the design's
    compute against the coarse grid's (core-seconds and runs, counted as `RefineSummary` counts
    them), the measured regret with its interval and resolution, the drift's slope and verdict
    code, and whether the regret's resolution and the drift's verdict are the ones the refinement
    as run reached. A replay, not a rerun: a cheaper design would choose its refined points from
    fewer runs, so it could have put some of them elsewhere, and a proxy choice it moved may read
    "not measured" here where a rerun would have trained it."""
    core = core_seconds(df)
    is_coarse = df["run_id"].isin(coarse_ids)
    coarse_core, coarse_runs = float(core[is_coarse].sum()), int(is_coarse.sum())
    rows: list[dict] = []
    reference: dict[str, tuple[str, str]] = {}
    for design in ("as run", *(d for d in designs if d != "as run")):
        keep = design_mask(df, design, coarse_ids, base_seeds, metric)
        for t in analyze(df[keep], metric=metric, n_boot=n_boot).table().itertuples():
            reference.setdefault(t.rule, (t.resolution, t.code))  # the first design is the refinement as run
            rows.append(
                dict(
                    design=design,
                    rule=t.rule,
                    compute=float(core[keep].sum()) / coarse_core if coarse_core else math.nan,
                    runs=int(keep.sum()) / coarse_runs if coarse_runs else math.nan,
                    regret=t.regret,
                    lo=t.regret_lo,
                    hi=t.regret_hi,
                    detectable=t.detectable,
                    resolution=t.resolution,
                    slope=t.slope,
                    code=t.code,
                    same_regret=t.resolution == reference[t.rule][0],
                    same_drift=t.code == reference[t.rule][1],
                )
            )
    return pd.DataFrame(rows)
