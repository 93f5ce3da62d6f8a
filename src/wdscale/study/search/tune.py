"""Tune: the target's best (lr, setting), by climbing a ladder of sizes instead of sweeping the target.

A practitioner wants the settings for the model they are about to train, as good as a sweep at
that size for much less. `tune_study` climbs a ladder of sizes (default target/16, target/4,
target, on the study's size axis):

1. **Bottom rung**: a joint (lr × setting) grid per recipe (each rule with its own per-layer lr
   scaling, as in a joint study), cheap because the model is small.
2. **Each rung above**: per recipe, the point placed from the rungs below — carried over from one
   rung, or read off the straight lines of log lr\\* and log setting\\* against log size through
   every rung below (the laws of `advise`, refitted as the ladder climbs) — and its
   eight neighbours one grid step away in lr, setting or both (the diagonals follow the η·λ
   ridge); then, below the target, the neighbours of whichever point is best until the best has
   all eight trained (bracketed), so each rung's optimum is measured, not assumed. All points lie
   on the bottom grid's lattice.
3. **Target**: the best recipe's optimum at the rung below carried over, its laws' point, and
   the carried point moved one lr step along its η·λ ridge (the way its lr law moves); every
   other recipe within 2 % of it there, carried over; `seeds` seeds each; while the best two are within noise of each
   other (2 standard errors of the difference) and the budget allows, both get more seeds, up to
   `max_seeds`.

Multi-fidelity over *model size*: Optuna's Hyperband and Ray Tune's ASHA prune over steps, which
is biased when the schedule depends on the run's length (mup issue #64); here every rung is a
whole run at its own size. A tune is a study — its plan trains the grid at the bottom rung only
(`StudyPlan.grid_sizes`) and holds every placed point as a refined point — so it is stored,
resumed after a kill (the placements are re-derived from the stored runs, the same ones) and
exported like any study. Its result is measured at the target, never predicted: the recommended
point is the candidate with the lowest seed-mean loss *trained at the target*.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd
from scipy import stats

from ...checks import check_positive, check_positive_int
from ...errors import WdscaleError
from ...rules import RULES
from ..analysis.study_analysis import core_seconds, params_samples
from ..plan.config import ModelFn
from ..plan.study_plan import Point, StudyPlan, coarse_grids, refined_key, resolve, with_refined
from ..plan.tasks import Task, get_task
from ..run.execution import DEFAULT_EXECUTION, Execution
from ..run.jobs import Source
from ..run.runner import keep_refined, run_study
from ..run.store import load_runs
from .refine import log_step, measured_optima, setting_means

MAX_SEED_ROUNDS = 4
MAX_BRACKET_ROUNDS = 4  # local steps at a middle rung until its optimum is bracketed


def ladder(target: int, rungs: int = 3, factor: int = 4) -> list[int]:
    """target/factor^(rungs−1), …, target/factor, target (whole numbers ≥ 1, distinct)."""
    check_positive_int("target", target)
    sizes = sorted({max(1, round(target / factor**k)) for k in range(rungs)})
    if len(sizes) < 2:
        raise WdscaleError(f"target {target} is too small for a ladder: give a target ≥ {factor}")
    return sizes


@dataclass(frozen=True)
class TuneResult:
    """What the climb found, measured at the target.

    rule, lr, setting: the recommended recipe and point (the lowest seed-mean loss trained at the
    target); loss, loss_lo, loss_hi: that mean and its 90 % interval (Student t over its seeds);
    seeds: how many. candidates: every point trained at the target (rule, lr, setting, mean, sem,
    n). core_s: the compute the climb took (wall time × threads, every rung); sweep_core_s: what
    one recipe's sweep of the bottom grid at the target would take (its points, one seed each, ×
    the measured cost of one target run); work and sweep_work: the same in parameters × samples
    seen, which no machine load changes; fraction: work / sweep_work. call: a ready
    `wdscale.optimizer(...)`.
    """

    target: int
    axis: str
    rungs: tuple
    rule: str
    lr: float
    setting: float
    setting_name: str
    loss: float
    loss_lo: float
    loss_hi: float
    seeds: int
    candidates: pd.DataFrame
    core_s: float
    sweep_core_s: float
    work: float
    sweep_work: float
    call: str

    @property
    def fraction(self) -> float:
        return self.work / self.sweep_work if self.sweep_work > 0 else math.nan

    def __str__(self) -> str:
        sym = "τ" if self.setting_name == "tau" else "λ"
        lines = [
            f"tuned for {self.axis} {self.target} by climbing {', '.join(map(str, self.rungs))} "
            "(every number below measured at the target):",
            f"  recommended: {self.rule}, lr {self.lr:.4g}, {sym} {self.setting:.4g}: val loss {self.loss:.4f} "
            f"[{self.loss_lo:.4f}, {self.loss_hi:.4f}] over {self.seeds} seeds",
            f"  compute: {100 * self.fraction:.0f} % of one recipe's sweep at the target in parameters × samples "
            f"({self.work:.3g} against {self.sweep_work:.3g}: its grid's points, one seed each); "
            f"{self.core_s:.3g} core-s against about {self.sweep_core_s:.3g}",
            "  candidates at the target:",
        ]
        for _, c in self.candidates.sort_values("mean").iterrows():
            lines.append(
                f"    {c['rule']:<12} lr {c['lr']:<9.4g} setting {c['setting']:<9.4g} mean {c['mean']:.4f} "
                f"± {c['sem']:.4f} ({int(c['n'])} seeds)"
            )
        lines.append(f"  ready call: {self.call}")
        return "\n".join(lines)


def _lattice(value: float, anchor: float, step: float) -> float:
    """The point of the lattice anchor·10^(k·step) nearest `value` in log (4 significant digits,
    as the grids are), so points placed at different rungs coincide."""
    k = round(math.log10(value / anchor) / step)
    return float(f"{anchor * 10 ** (k * step):.4g}")


def _placed(optima: pd.DataFrame, rule: str, below: list[int], size: int) -> Optional[tuple[float, float]]:
    """(lr, setting) at `size` from the recipe's optima at the rungs below: carried over from one
    rung, else the least-squares lines of log lr* and log setting* against log size."""
    o = optima[(optima["rule"] == rule) & optima["size"].isin(below)].sort_values("size")
    if o.empty:
        return None
    if len(o) == 1:
        return float(o["lr"].iloc[0]), float(o["setting"].iloc[0])
    x = np.log(o["size"].to_numpy(float))
    at = math.log(size)
    lr = math.exp(np.polyval(np.polyfit(x, np.log(o["lr"].to_numpy(float)), 1), at))
    setting = math.exp(np.polyval(np.polyfit(x, np.log(o["setting"].to_numpy(float)), 1), at))
    return lr, setting


def _optima(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (rule, size): the trained point with the lowest seed-mean loss, where any is finite."""
    o = measured_optima(runs, metric)
    return o[np.isfinite(o["mean"])].reset_index(drop=True)


def _add(additions: dict[str, dict[Point, int]], rule: str, size: int, lr: float, setting: float, seeds: int) -> None:
    key = refined_key(rule, size)
    pts = additions.setdefault(key, {})
    pts[(lr, setting)] = max(pts.get((lr, setting), 0), seeds)


def tune_study(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    target: int,
    *,
    rungs: Optional[list[int]] = None,
    seeds: int = 2,
    max_seeds: int = 4,
    budget: Optional[float] = None,
    metric: str = "val_loss",
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
) -> TuneResult:
    """Climb the ladder to the target's best (lr, setting); see the module docstring.

    Args:
        plan: the family and the bottom rung's grid: task, size_axis, rules (the recipes), the lr
            grid (`lrs` or `lr_decades`; default 2 decades at 2 per decade around the base lr),
            the setting grid (decades, points_per_decade), seeds at the bottom, epochs, schedule, …
            Its sizes are replaced by the ladder.
        out_dir: the tune's directory (a study's: store, plan, exports).
        target: the size to tune for, on the plan's size axis.
        rungs: the sizes climbed (the last is the target); default `ladder(target)`.
        seeds: seeds per candidate at the target.
        max_seeds: the most seeds a candidate at the target gets while the best two are within noise.
        budget: stop adding seeds at the target once the climb's compute exceeds this fraction of
            one recipe's sweep at the target (None: no limit but max_seeds).
        metric: what is minimised.
        source, task, model_fn, execution: as `run_study`.

    Returns:
        The recommended recipe and point with its loss measured at the target, the candidates,
        and the compute against a sweep's.

    Raises:
        WdscaleError: a bad value, a ladder that does not end at the target, or no candidate that
            trained at the target.
    """
    check_positive_int("target", target)
    check_positive_int("seeds", seeds)
    if check_positive_int("max_seeds", max_seeds) < seeds:
        raise WdscaleError(f"max_seeds={max_seeds} is fewer than seeds={seeds}")
    if budget is not None:
        check_positive("budget", budget)
    sizes = sorted(set(rungs)) if rungs else ladder(int(target))
    if sizes[-1] != target or len(sizes) < 2:
        raise WdscaleError(f"rungs {rungs} must hold at least two sizes and end at the target {target}")
    if plan.lrs is None and not plan.lr_decades:
        plan = dataclasses.replace(plan, lr_decades=2.0, lr_points_per_decade=2)
    plan = dataclasses.replace(plan, sizes=sizes, grid_sizes=[sizes[0]], base_size=sizes[0])
    out = Path(out_dir)
    plan = keep_refined(plan, out)
    task = task if task is not None else get_task(plan.task)
    resolved = resolve(plan, task, model_fn)
    grids = coarse_grids(plan, task, model_fn)
    lr_step = 1.0 / plan.lr_points_per_decade
    lr_anchor = resolved.lr

    def train(p: StudyPlan) -> pd.DataFrame:
        run_study(p, out, source=source, task=task, model_fn=model_fn, execution=execution)
        runs = load_runs(out)
        return runs[runs["task"] == plan.task]

    runs = train(plan)  # the bottom rung's grid (and whatever an interrupted climb had placed)
    for i, size in enumerate(sizes[1:], start=1):
        optima = _optima(runs, metric)
        additions: dict[str, dict[Point, int]] = {}
        if size != sizes[-1]:  # a middle rung: measure each recipe's optimum near its placement
            for rule in plan.rules:
                at = _placed(optima, rule, sizes[:i], size)
                if at is not None:
                    s_anchor, s_step = grids[rule][0], log_step(grids[rule])
                    lr, setting = _lattice(at[0], lr_anchor, lr_step), _lattice(at[1], s_anchor, s_step)
                    _cross(additions, rule, size, lr, setting, lr_anchor, lr_step, s_anchor, s_step)
        else:
            for rule, lr, setting in _target_candidates(optima, plan.rules, sizes[:i], size, grids, lr_anchor, lr_step):
                _add(additions, rule, size, lr, setting, seeds)
        plan = with_refined(plan, additions)
        print(
            f"tune: {sum(len(v) for v in additions.values())} points placed at {plan.size_axis} {size}", file=sys.stderr
        )
        runs = train(plan)
        for _ in range(MAX_BRACKET_ROUNDS if size != sizes[-1] else 0):
            plan, runs, added = _bracket(plan, runs, size, grids, lr_anchor, lr_step, metric, train)
            if not added:
                break
    for _ in range(MAX_SEED_ROUNDS):  # seeds where the target's best two are within noise
        at_target = _at_target(runs, target, metric)
        if len(at_target) < 2 or int(at_target["n"].iloc[0]) >= max_seeds:
            break
        best, second = at_target.iloc[0], at_target.iloc[1]
        if second["mean"] - best["mean"] > 2 * math.hypot(best["sem"], second["sem"]):
            break
        spent = float(params_samples(runs).sum())
        if budget is not None and spent > budget * _sweep(runs, target, grids, params_samples):
            print("tune: the budget is spent; the best two are still within noise", file=sys.stderr)
            break
        more = min(max_seeds, int(max(best["n"], second["n"])) + 1)
        additions = {}
        for c in (best, second):
            _add(additions, str(c["rule"]), target, float(c["lr"]), float(c["setting"]), more)
        plan = with_refined(plan, additions)
        runs = train(plan)
    return _result(runs, plan, sizes, target, grids, metric, resolved)


def _bracket(plan, runs, size, grids, lr_anchor, lr_step, metric, train) -> tuple:
    """One local step at a middle rung: each recipe's best point here gets whichever of its eight
    neighbours are not trained yet. Returns (plan, runs, points added)."""
    here = runs[runs["size"] == size]
    additions: dict[str, dict[Point, int]] = {}
    for _, o in _optima(here, metric).iterrows():
        rule = str(o["rule"])
        trained = {(float(a), float(b)) for a, b in here.loc[here["rule"] == rule, ["lr", "setting"]].to_numpy()}
        s_grid = grids[rule]
        _cross(additions, rule, size, float(o["lr"]), float(o["setting"]), lr_anchor, lr_step, s_grid[0],
               log_step(s_grid), skip=trained)  # fmt: skip
    added = sum(len(v) for v in additions.values())
    if added:
        plan = with_refined(plan, additions)
        runs = train(plan)
    return plan, runs, added


def _cross(
    additions: dict[str, dict[Point, int]],
    rule: str,
    size: int,
    lr: float,
    setting: float,
    lr_anchor: float,
    lr_step: float,
    s_anchor: float,
    s_step: float,
    skip: frozenset | set = frozenset(),
) -> None:
    """A point and its eight neighbours one lattice step away in lr, in setting or in both (the
    diagonals follow the η·λ ridge, along which AdamW's loss valley runs: an axis-aligned cross
    stops at a point that is only a minimum across the valley), 1 seed each, but those already
    trained (`skip`)."""
    for dl, ds in ((dl, ds) for dl in (0, -1, 1) for ds in (0, -1, 1)):
        lr_k = _lattice(lr * 10 ** (dl * lr_step), lr_anchor, lr_step)
        s_k = _lattice(setting * 10 ** (ds * s_step), s_anchor, s_step)
        if not any(math.isclose(lr_k, a, rel_tol=1e-3) and math.isclose(s_k, b, rel_tol=1e-3) for a, b in skip):
            _add(additions, rule, size, lr_k, s_k, 1)


def _target_candidates(optima, rules, below, size, grids, lr_anchor, lr_step) -> list[tuple[str, float, float]]:
    """The points tried at the target. A law through a few noisy rungs, extrapolated, can land far
    off (on joint_width a line through widths 32 and 128 put μP's lr at 0.3), so the best recipe at
    the rung below gets three: its optimum there carried over (the recipe's own transfer), the
    laws' point, and the carried point moved one lr step along its η·λ ridge in the direction its
    lr law moves (a fixed η·λ is what transferred across width under AdamW: Kosson et al. 2026;
    findings §6). Every other recipe within 2 % of it there gets its carried point."""
    last = optima[(optima["size"] == below[-1]) & optima["rule"].isin(rules)]
    if last.empty:
        return []
    best_loss = float(last["mean"].min())
    out: list[tuple[str, float, float]] = []
    for _, o in last.sort_values("mean").iterrows():
        rule = str(o["rule"])
        s_anchor, s_step = grids[rule][0], log_step(grids[rule])
        carried = (rule, _lattice(float(o["lr"]), lr_anchor, lr_step), _lattice(float(o["setting"]), s_anchor, s_step))
        if o["mean"] > best_loss * 1.02:
            continue
        out.append(carried)
        if out[0][0] != rule or len(out) > 1:
            continue  # the laws and the ridge for the best recipe only
        law = _placed(optima, rule, below, size)
        if law is None:
            continue
        lr_law, s_law = _lattice(law[0], lr_anchor, lr_step), _lattice(law[1], s_anchor, s_step)
        out.append((rule, lr_law, s_law))
        direction = np.sign(math.log(law[0] / float(o["lr"]))) if len(below) > 1 else 0.0
        if direction:
            lr_k = _lattice(carried[1] * 10 ** (direction * lr_step), lr_anchor, lr_step)
            out.append((rule, lr_k, _lattice(carried[1] * carried[2] / lr_k, s_anchor, s_step)))
    return list(dict.fromkeys(out))  # in order, each point once


def _at_target(runs: pd.DataFrame, target: int, metric: str) -> pd.DataFrame:
    m = setting_means(runs, metric)
    m = m[(m["size"] == target) & np.isfinite(m["mean"])]
    return m.sort_values(["mean", "rule", "lr", "setting"]).reset_index(drop=True)


def _sweep(runs: pd.DataFrame, target: int, grids: dict[str, list[float]], cost=core_seconds) -> float:
    """One recipe's sweep of the bottom grid at the target: its points, one seed each, × the
    measured cost of one target run."""
    at = runs[runs["size"] == target]
    per_run = float(cost(at).median()) if len(at) else 0.0
    n_lrs = len(set(runs.loc[runs["size"] == runs["size"].min(), "lr"]))
    n_settings = float(np.median([len(g) for g in grids.values()]))
    return n_lrs * n_settings * per_run


def _result(runs, plan, sizes, target, grids, metric, resolved) -> TuneResult:
    at_target = _at_target(runs, target, metric)
    if at_target.empty:
        raise WdscaleError(f"no candidate trained at the target {target} (every one failed, diverged or did not learn)")
    best = at_target.iloc[0]
    rule, lr, setting, n = str(best["rule"]), float(best["lr"]), float(best["setting"]), int(best["n"])
    half = float(stats.t.ppf(0.95, n - 1) * best["sem"]) if n > 1 else math.nan
    setting_name = RULES[rule].takes if rule in RULES else "weight_decay"
    facts = (
        f"data=wdscale.DataFacts(n_samples={resolved.n_train}, batch_size={resolved.batch_size}, "
        f"epochs={resolved.epochs})"
    )
    call = (
        f'wdscale.optimizer(model, "{plan.optimizer}", rule="{rule}", lr={lr:.4g}, {setting_name}={setting:.4g}, '
        f"base=<your model at {plan.size_axis} {sizes[0]}>, {facts})"
    )
    return TuneResult(
        target=int(target),
        axis=plan.size_axis,
        rungs=tuple(sizes),
        rule=rule,
        lr=lr,
        setting=setting,
        setting_name="tau" if setting_name == "tau" else "lambda",
        loss=float(best["mean"]),
        loss_lo=float(best["mean"]) - half,
        loss_hi=float(best["mean"]) + half,
        seeds=n,
        candidates=at_target,
        core_s=float(core_seconds(runs).sum()),
        sweep_core_s=_sweep(runs, target, grids),
        work=float(params_samples(runs).sum()),
        sweep_work=_sweep(runs, target, grids, params_samples),
        call=call,
    )
