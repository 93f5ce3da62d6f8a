"""Tune: the target's best (lr, setting), by climbing a ladder of sizes instead of sweeping the target.

A practitioner wants the settings for the model they are about to train, as good as a sweep at
that size for much less. `tune_study` climbs a ladder of sizes (default target/16, target/4,
target, on the study's size axis) within a budget: a fraction (default 0.1) of one recipe's sweep
at the target, in parameters × samples, counted before any run, so the budget decides how far
each step goes. Every rung's model is built (on the meta device) before any run, and a budget that
cannot afford the bottom rung's grid beside one run at the target is refused then, naming the
budget that would; the result reports the spend in measured core-seconds beside, says where its
pick rests on a tie, and warns where the pick sits on the edge of what was trained:

1. **Bottom rung**: a joint (lr × setting) grid per recipe (each rule with its own per-layer lr
   scaling, as in a joint study), one seed a point, and a second seed at each recipe's best three
   points: the seed noise, pooled over every point with two seeds, is what "within noise" means
   below. The recipes whose best is within noise of the best recipe's climb, best first.
2. **Each rung above** (skipped if the budget cannot afford it beside one run at the target): per
   climbing recipe, as many as the budget allows, the point placed from the rungs below — carried
   over from one rung, or read off the straight lines of log lr\\* and log setting\\* against log
   size through every rung below (the laws of `advise`, refitted as the ladder climbs) — and its
   eight neighbours one grid step away in lr, setting or both (the diagonals follow the η·λ
   ridge); then, while the budget leaves a run for the target, the neighbours of whichever point
   is best until the best has all eight trained (bracketed); then a second seed at each recipe's
   best, and the recipes within noise go on. All points lie on the bottom grid's lattice.
3. **Target**: candidates in order — each recipe still in contention, best first, its optimum at
   the rung below carried over, then its laws' point, and for the best one its carried point moved
   one lr step along the η·λ ridge — as many as the budget leaves room for (at least one), `seeds`
   seeds each; then, while the budget allows, a seed more to the best two where they are within
   noise (or to the best alone while it has one).

Multi-fidelity over *model size*: Optuna's Hyperband and Ray Tune's ASHA prune over steps, which
is biased when the schedule depends on the run's length (mup issue #64); here every rung is a
whole run at its own size. A tune is a study — its plan trains the grid at the bottom rung only
(`StudyPlan.grid_sizes`) and holds every placed point as a refined point — so it is stored,
resumed after a kill (the placements are re-derived from the stored runs, the same ones) and
exported like any study. Its result is measured at the target, never predicted: the recommended
point is the candidate with the lowest seed-mean loss *trained at the target*.

**A change to the climb is measured in replay before it is kept** (`replay.py`: the climb on a
committed joint sweep, every run answered by the sweep's, nothing trained; `benchmarks/
replay_ladder.py`: the six targets of findings §10 at budgets 0.1 and 0.25 — 0.23 and 0.11 where
0.1 is refused, on the data axis and the transformer climbed from width 8 — on rungs the sweeps
trained, 16 seed shuffles each, the gap of the pick's sweep seed-mean at the target to the
sweep's best there). How a rung's
optimum is chosen among its trained points — what the rung above is placed from and the target's
candidates are carried from — is `optimum` (`rung_optima`). Kept: "mean", the lowest seed-mean
(median gap over the targets 7.5 % at 0.1, 1.2 % at 0.25, 3.4 % over both). Measured and left off
by default, none better on the median: "risk" (the seed-mean plus one pooled standard error: 8.2 %,
1.2 %, 4.1 %), "spread" (the same, the point's own spread where larger: 8.2 %, 1.2 %, 4.1 %),
"seeded" (only a point on two seeds can be a rung's optimum, two points a recipe seeded at a middle
rung: 8.2 %, 1.2 %, 4.1 %; better on digits at 0.1, 13.6 % against 15.9 %, worse at width 512,
6.6 % against 5.3 %) and "local" (the neighbourhood's mean: 10.6 %, 3.4 %, 6.8 %; better on the
transformer at width 128, 0.6 % against 1.0 %, worse by 36 points on the data axis). Those numbers
are on the replay's earlier seed order (`SweepOracle(paired=False)`), which the default order now
keeps paired (a size's points answer the ladder's seed k with one sweep seed): there "mean" reads
8.2 % at 0.1 and 3.1 % at 0.25, and 16 shuffles collapse to a few draws (most points hold two seeds).

How the target's runs are split between candidates and their seeds is `seeding`, measured in the
same replay on both seed orders (earlier / paired). Kept: "close", every candidate the budget
affords on one seed, then a seed more to the best two while they are within noise (median gap
over the targets 7.5 % / 8.2 % at 0.1, 1.2 % / 3.1 % at 0.25; share of replays within 1 % of the
sweep's best 0.28 / 0.17 at 0.1, 0.33 / 0.17 at 0.25). Measured and left off, neither better on
the median over the targets: "second" (one target run kept back for the best's second seed) and "race"
(half the target's runs kept back, and the candidates raced on their common seeds: one whose
paired difference to the best — the seeds two points share are one initialisation and data
order, as the training code seeds both from the run's seed — sits more than PAIRED_K standard
errors above 0 is dropped and gets no seed, the rest get one, the best first). Both read 12.8 % /
8.6 % at 0.1 and 1.2 % / 3.1 % at 0.25, within 1 % 0.18 / 0.17 and 0.32 / 0.17: at 0.1 most
targets afford one run at the target, so nothing changes, and where three fit (joint_width_1024)
the run kept back is the candidate that was best (0.0 % → 19.7 % / 2.4 % → 7.4 %); at 0.25 both
help joint_digits on the earlier order (11.1 % → 9.4 %), the race tightens the worst shuffle on
joint_width (6.6 % → 4.0 %), and both loosen it on joint_data (60 % → 120 %). Also left off, "both"
(the middle rungs keep two target runs back, not one, so the best recipe's carried and laws'
points are both trained there: on findings §10's one-pass targets each won on one family),
measured on the paired order with 8 shuffles (`replay_ladder.py --shuffles 8 --seedings
close,both`): the median over the targets 9.0 % against the default's 8.2 % at 0.1, 1.7 % against
1.7 % at 0.25, within 1 % 0.00 against 0.17 at 0.1. It helps where the carried point is far off
(joint_digits at 0.1 494 % → 8.3 %, joint_width 6.6 % → 3.7 %) and hurts where a middle rung's
points were what found it (joint_shakespeare_128 at 0.1 1.0 % → 25.8 %, its middle rung left with
fewer points); at 0.25 nothing changes. Pairing buys little
here: on the sweeps' two common seeds, lattice neighbours' seed effects (seed 0's log loss less
seed 1's) correlate by about −0.2 to 0.5, mostly 0 to 0.3 (`replay_ladder.py --pairing`), so a
paired difference is mostly 0.7 to 1.0 times as noisy as two independent points', and one common
seed rarely drops a candidate.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ...checks import check_positive, check_positive_int
from ...errors import WdscaleError
from ...rules import RULES
from ..analysis.study_analysis import core_seconds, params_samples, run_losses
from ..plan.config import ModelFn
from ..plan.study_plan import (
    Point,
    Resolved,
    StudyPlan,
    coarse_grids,
    meta_params,
    refined_key,
    resolve,
    size_knobs,
    with_refined,
)
from ..plan.tasks import Task, get_task
from ..run.execution import DEFAULT_EXECUTION, Execution
from ..run.jobs import Source
from ..run.runner import keep_refined, run_study
from ..run.store import load_runs
from .refine import MAX_SEEDS, log_step, measured_optima, setting_means

DEFAULT_BUDGET = 0.1  # of one recipe's sweep at the target: the goal
MAX_BUDGET = 10.0  # ten sweeps: a budget beyond that is a typo (1e308 made the Optuna search run for ever)
MAX_SEED_ROUNDS = 4
MAX_BRACKET_ROUNDS = 4  # local steps at a middle rung until its optimum is bracketed
MAX_LAW_STEPS = 2  # how far (lattice steps) the laws' point at the target may sit from the carried one
NOISE_POINTS = 3  # each recipe's best points at the bottom rung given a second seed
NOISE_FLOOR = 0.01  # the relative seed noise assumed before any point has two seeds
NOISE_NEAR = 0.1  # the seed noise is pooled over points within this fraction of the best loss
METHODS = ("ladder", "mutransfer", "laws")  # `tune_study`'s: the climb, and the two peers it shares code with
RESCORE_DIR = "rescore"  # a search's re-scoring runs: a study of their own, apart from the search's compute
RESCORE_FIRST_SEED = 1000  # re-scoring seeds start here (or past every seed the search trained)
MAX_RESCORE_SEEDS = 64
# how a rung's optimum is chosen among its trained points (`rung_optima`)
OPTIMA = ("mean", "risk", "spread", "seeded", "local")
RISK_K = 1.0  # "risk": standard errors added to a point's seed-mean
# how the target's runs are split between candidates and their seeds (`tune_study`'s seeding)
SEEDINGS = ("close", "second", "race", "both")
PAIRED_K = 2.0  # "race": a candidate is dropped once its paired difference to the best is this many s.e. above 0

Trainer = Callable[[StudyPlan], pd.DataFrame]  # a plan's runs answered: every run of the tune, as `load_runs`


def check_budget(budget: float) -> float:
    """A fraction of one recipe's sweep in (0, MAX_BUDGET], or one error naming it."""
    if check_positive("budget", budget) > MAX_BUDGET:
        raise WdscaleError(
            f"budget={budget!r} is not allowed: a fraction of one recipe's sweep at the target, at most {MAX_BUDGET:g}"
        )
    return float(budget)


def ladder(target: int, rungs: int = 3, factor: int = 4) -> list[int]:
    """target/factor^(rungs−1), …, target/factor, target (whole numbers ≥ 1, distinct)."""
    check_positive_int("target", target)
    sizes = sorted({max(1, round(target / factor**k)) for k in range(rungs)})
    if len(sizes) < 2:
        raise WdscaleError(f"target {target} is too small for a ladder: give a target ≥ {factor}")
    return sizes


@dataclass(frozen=True)
class Box:
    """One recipe's search space at the target: lr in [lr_lo, lr_hi], its setting in [setting_lo,
    setting_hi] (both searched in log)."""

    rule: str
    lr_lo: float
    lr_hi: float
    setting_lo: float
    setting_hi: float


@dataclass(frozen=True)
class Rescore:
    """A search's pick re-trained at the target on seeds the search never used, and scored there.

    seeds: the fresh seeds; loss, loss_lo, loss_hi: their mean and its 90 % interval (Student t
    over the seeds where there are 3 or more, else the search's pooled seed noise); core_s, work:
    what the re-scoring cost (core-seconds; parameters × samples), never counted as the search's.
    """

    seeds: tuple
    loss: float
    loss_lo: float
    loss_hi: float
    core_s: float
    work: float


@dataclass(frozen=True)
class TuneResult:
    """What the climb found, measured at the target.

    rule, lr, setting: the recommended recipe and point (the lowest seed-mean loss trained at the
    target); loss, loss_lo, loss_hi: that mean and its 90 % interval (Student t over its seeds
    where it has 3 or more; else the seed noise pooled over the climb's seeded points); seeds: how
    many. candidates: every point trained at the target (rule, lr, setting, mean, sem,
    n). core_s: the compute the climb took (wall time × threads, every rung); sweep_core_s: what
    one recipe's sweep of the bottom grid at the target would take (its points, one seed each, ×
    the measured cost of one target run); work and sweep_work: the same in parameters × samples
    seen, which no machine load changes, sweep_work counted before any run; fraction: work /
    sweep_work; budget: the fraction the climb was given (None: none); method: "ladder", or the
    Optuna search of `optuna_search`; core_fraction: core_s / sweep_core_s, the spend in the unit
    that follows the runs' real cost. rungs: the sizes climbed (the target last); skipped: those
    the budget could not afford. ties: where the pick rests on a tie (another candidate within
    seed noise at the target, or a recipe within noise at the rung below that the target never
    trained); warnings: the pick at the edge of the lrs or settings trained for its recipe (a
    bound, as `advise` says of an edge optimum). call: a ready `wdscale.optimizer(...)`.
    given_core_s: the compute a peer was given in core-seconds (`optuna_search`'s match_compute:
    a ladder's), None where it was given a budget; overshoot: how far the spend went past what
    was given (the last trial may cross it). box: the space an Optuna search searched, per recipe.
    rescore: the pick re-trained on fresh seeds (`rescore_pick`), None where it was not.
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
    budget: Optional[float] = None
    method: str = "ladder"  # or the Optuna search it was measured against (`optuna_search`)
    skipped: tuple = ()  # rungs the budget could not afford (not climbed)
    ties: tuple = ()  # what the pick is within seed noise of: where it rests on a tie, not a measurement
    warnings: tuple = ()  # the pick at the edge of what was trained, as `advise` warns of an edge optimum
    given_core_s: Optional[float] = None  # a peer given the ladder's core-seconds (match_compute)
    box: tuple = ()  # an Optuna search's space, one Box per recipe
    rescore: Optional[Rescore] = None  # the pick on fresh seeds, apart from the search's compute

    @property
    def fraction(self) -> float:
        return self.work / self.sweep_work if self.sweep_work > 0 else math.nan

    @property
    def core_fraction(self) -> float:
        """core_s / sweep_core_s: the spend in measured core-seconds, which follows what the runs
        really cost (at small sizes a run's fixed costs outweigh its parameters)."""
        return self.core_s / self.sweep_core_s if self.sweep_core_s > 0 else math.nan

    @property
    def overshoot(self) -> float:
        """How far the spend went past what was given, as a fraction of it (0: exactly; negative:
        under): in core-seconds where it was given core-seconds, else in parameters × samples."""
        if self.given_core_s is not None:
            return self.core_s / self.given_core_s - 1 if self.given_core_s > 0 else math.nan
        return self.fraction / self.budget - 1 if self.budget else math.nan

    def __str__(self) -> str:
        sym = "τ" if self.setting_name == "tau" else "λ"
        if self.method in ("ladder", "laws"):
            how = f"by climbing {', '.join(map(str, self.rungs))}"
            if self.skipped:
                how += f" ({', '.join(map(str, self.skipped))} skipped: over the budget)"
            if self.method == "laws":
                how += " and training the laws' point once at the target"
        elif self.method == "mutransfer":
            how = f"by μTransfer from {self.axis} {self.rungs[0]} (its best carried, one run at the target)"
        else:
            how = f"by {self.method} there"
        over = (
            f"; measured in core-seconds it cost {100 * self.core_fraction:.0f} % of a sweep, over the budget: at "
            "these sizes a run's cost does not follow its parameters (fixed costs per run), so a sweep at the "
            "target may cost little more"
            if self.budget is not None and self.core_fraction > self.budget
            else ""
        )
        lines = [
            f"tuned for {self.axis} {self.target} {how} (every number below measured at the target):",
            f"  recommended: {self.rule}, lr {self.lr:.4g}, {sym} {self.setting:.4g}: val loss {self.loss:.4f} "
            f"[{self.loss_lo:.4f}, {self.loss_hi:.4f}] over {self.seeds} seeds",
            f"  compute: {100 * self.fraction:.0f} % of one recipe's sweep at the target in parameters × samples "
            f"({self.work:.3g} against {self.sweep_work:.3g}: its grid's points, one seed each); "
            f"{100 * self.core_fraction:.0f} % in measured core-seconds ({self.core_s:.3g} core-s against about "
            f"{self.sweep_core_s:.3g})"
            + (f"; the budget was {100 * self.budget:.0f} %" if self.budget is not None else "")
            + (
                f"; given {self.given_core_s:.3g} core-s (a ladder's), {100 * self.overshoot:+.0f} % past it"
                if self.given_core_s is not None
                else ""
            )
            + over,
        ]
        if self.rescore is not None:
            r = self.rescore
            lines.append(
                f"  re-scored on {len(r.seeds)} fresh seed(s) ({r.seeds[0]}…{r.seeds[-1]}, never used by the search): "
                f"val loss {r.loss:.4f} [{r.loss_lo:.4f}, {r.loss_hi:.4f}] ({r.core_s:.3g} core-s, not counted above)"
            )
        lines += [
            f"  searched: {b.rule} lr {b.lr_lo:.4g} … {b.lr_hi:.4g}, setting {b.setting_lo:.4g} … {b.setting_hi:.4g}"
            for b in self.box
        ]
        lines += [f"  a tie: {t}" for t in self.ties]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append("  candidates at the target:")
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


def placed_point(optima: pd.DataFrame, rule: str, below: list[int], size: int) -> Optional[tuple[float, float]]:
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


def finite_optima(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (rule, size): the trained point with the lowest seed-mean loss, where any is finite."""
    o = measured_optima(runs, metric)
    return o[np.isfinite(o["mean"])].reset_index(drop=True)


def check_optimum(optimum: str) -> str:
    """`optimum` if it is one of OPTIMA; else one clear error naming what is allowed."""
    if optimum not in OPTIMA:
        raise WdscaleError(f"unknown optimum {optimum!r}; allowed: {', '.join(OPTIMA)}")
    return optimum


def rung_optima(
    runs: pd.DataFrame, metric: str, optimum: str = "mean", steps: Optional[dict[str, tuple[float, float]]] = None
) -> pd.DataFrame:
    """Per (rule, size): the trained point the climb takes as the recipe's optimum there, chosen as
    `optimum` says (the columns of `finite_optima`; `mean` stays the point's own seed-mean):

    - "mean": the lowest seed-mean loss (`finite_optima`);
    - "risk": the lowest mean × (1 + RISK_K · σ / √n), σ the pooled relative seed noise (`_noise`):
      a point's seed-mean plus RISK_K of its standard errors, so a point on one seed must beat one
      on two by more than its extra noise;
    - "spread": as "risk", σ the larger of the pooled noise and the point's own relative spread
      over its seeds, so a point whose two seeds disagree (one lucky) pays for it;
    - "seeded": the lowest seed-mean among the points with two seeds or more (all, where none has):
      a point is a rung's optimum only once a second seed confirmed it (the climb then gives a
      second seed to each climbing recipe's best two points at a middle rung, not its best one);
    - "local": the lowest local mean — the mean of the log seed-means of the point and of its
      finite neighbours one lattice step away in lr, setting or both (each weighted by its seeds;
      `steps`: each rule's (lr step, setting step) in decades), so one lucky point among worse
      neighbours does not win over a point in a good neighbourhood.

    Args:
        runs: the climb's runs.
        metric: what is minimised.
        optimum: one of OPTIMA.
        steps: per rule, the lattice's (lr, setting) steps in decades ("local" only).

    Returns:
        One row per (rule, size) with a finite point: rule, size, lr, setting, mean, sem, n.
    """
    check_optimum(optimum)
    if optimum == "mean":
        return finite_optima(runs, metric)
    m = setting_means(runs, metric)
    m = m[np.isfinite(m["mean"])].reset_index(drop=True)
    if m.empty:
        return m
    if optimum == "seeded":
        confirmed = m["n"].ge(2).groupby([m["rule"], m["size"]]).transform("any")
        score = m["mean"].where(m["n"].ge(2) | ~confirmed, np.inf)
    elif optimum in ("risk", "spread"):
        sigma = pd.Series(_noise(runs, metric), index=m.index)
        if optimum == "spread":
            sigma = np.maximum(sigma, (m["sem"] * np.sqrt(m["n"]) / m["mean"]).fillna(0.0))
        score = m["mean"] * (1 + RISK_K * sigma / np.sqrt(m["n"]))
    else:
        score = pd.Series(np.nan, index=m.index)
        for (rule, _), g in m.groupby(["rule", "size"]):
            lr_step, s_step = (steps or {}).get(str(rule), (0.5, 0.5))
            x, y = np.log10(g["lr"].to_numpy(float)), np.log10(g["setting"].to_numpy(float))
            near = np.abs(x[:, None] - x[None, :]) <= 1.01 * lr_step
            near &= np.abs(y[:, None] - y[None, :]) <= 1.01 * s_step
            w = near * g["n"].to_numpy(float)[None, :]
            score[g.index] = np.exp(w @ np.log(g["mean"].to_numpy(float)) / w.sum(axis=1))
    m = m.assign(_score=score.to_numpy())
    return m.loc[m.groupby(["rule", "size"])["_score"].idxmin()].drop(columns="_score").reset_index(drop=True)


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
    seeds: int = 1,
    max_seeds: int = 4,
    budget: Optional[float] = DEFAULT_BUDGET,
    bottom_seeds: int = 1,
    metric: str = "val_loss",
    method: str = "ladder",
    rescore_seeds: int = 0,
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
    trainer: Optional[Trainer] = None,
    optimum: str = "mean",
    seeding: str = "close",
) -> TuneResult:
    """Climb the ladder to the target's best (lr, setting); see the module docstring. Two peers
    share its code: "mutransfer" trains the μP recipe's bottom grid alone (the ladder's bottom
    rung, its second seeds included) and carries its best (lr, setting) to the target, one run
    there; "laws" climbs the lower rungs as the ladder does at the same budget (the same runs) and
    trains at the target only the best recipe's laws' point (the ladder's second candidate), once.

    Args:
        plan: the family and the bottom rung's grid: task, size_axis, rules (the recipes), the lr
            grid (`lrs` or `lr_decades`; default 2 decades at 2 per decade around the base lr),
            the setting grid (decades, points_per_decade), epochs, schedule, … Its sizes and seeds
            are replaced by the ladder and `bottom_seeds`.
        out_dir: the tune's directory (a study's: store, plan, exports).
        target: the size to tune for, on the plan's size axis.
        rungs: the sizes climbed (the last is the target); default `ladder(target)`.
        seeds: seeds per candidate at the target.
        max_seeds: the most seeds a candidate at the target gets while the best two are within noise.
        budget: the climb's compute, as a fraction of one recipe's sweep at the target (its grid's
            points, one seed each; parameters × samples, counted before any run): it sets how many
            recipes climb, how far a middle rung is bracketed, how many candidates and seeds the
            target gets. None: no limit but `max_seeds`. At least one run is trained at the target
            whatever the budget (the result then says how far over it went).
        bottom_seeds: seeds per point of the bottom grid (each recipe's best three points get two
            either way, so the seed noise is measured).
        metric: what is minimised.
        method: "ladder" (the climb), "mutransfer" or "laws" (the peers above; one seed at the
            target, so `seeds` and `max_seeds` stay at 1 and 4).
        rescore_seeds: re-train the pick at the target on this many fresh seeds and score it there
            (`rescore_pick`: stored apart, in the directory's `rescore/`); 0: none.
        source, task, model_fn, execution: as `run_study`.
        trainer: what answers the climb's runs: given the plan so far, it returns every run of the
            tune, as `load_runs` does (default: `run_study` into `out_dir`, then `load_runs`). The
            replay of a committed sweep (`replay.py`) answers from the sweep's stored runs and
            trains nothing; it takes no `rescore_seeds`.
        optimum: how each rung's optimum is chosen among its trained points, the point the rung
            above is placed from and the target's candidates are carried from (`rung_optima`:
            "mean", "risk", "spread", "seeded" or "local").
        seeding: how the target's runs are split between candidates and their seeds (`SEEDINGS`):
            "close" (the default): as many candidates as the budget allows, then a seed more to
            the best two while they are within noise (or the best alone while it has one), as
            the budget still allows; "second": one run kept back from the candidates for the
            best's second seed; "race": half the target's runs kept back, and a paired race
            (`_race`) gives them to the candidates not told apart from the best on their common
            seeds, dropping the rest; "both": the middle rungs keep two target runs back, not one
            (fewer points there), so the budget affords the first two candidates — the best
            recipe's carried and laws' points. With no budget, "second" and "race" keep nothing
            back.

    Returns:
        The recommended recipe and point with its loss measured at the target, the candidates,
        and the compute against a sweep's (and its fresh-seed score, with rescore_seeds).

    Raises:
        WdscaleError: a bad value, an unknown method, "mutransfer" without the mup recipe, a
            ladder that does not end at the target, a rung whose model cannot be built (every
            rung is built on the meta device before any run), a budget that cannot afford the
            bottom rung's grid beside one run at the target, or no candidate that trained at the
            target.
    """
    if method not in METHODS:
        raise WdscaleError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    check_optimum(optimum)
    if seeding not in SEEDINGS:
        raise WdscaleError(f"unknown seeding {seeding!r}; allowed: {', '.join(SEEDINGS)}")
    if check_rescore_seeds(rescore_seeds) and trainer is not None:
        raise WdscaleError("rescore_seeds trains the pick for real: give no trainer with it")
    check_positive_int("target", target)
    check_positive_int("seeds", seeds)
    check_positive_int("bottom_seeds", bottom_seeds)
    if check_positive_int("max_seeds", max_seeds) < seeds:
        raise WdscaleError(f"max_seeds={max_seeds} is fewer than seeds={seeds}")
    if max_seeds > MAX_SEEDS:
        raise WdscaleError(f"max_seeds={max_seeds!r} is not allowed: a whole number from 1 to {MAX_SEEDS}")
    if method != "ladder" and (seeds, max_seeds) != (1, 4):
        raise WdscaleError(f"method {method!r} trains one run at the target: leave seeds and max_seeds out")
    if budget is not None:
        check_budget(budget)
    sizes = sorted(set(rungs)) if rungs else ladder(int(target))
    if sizes[-1] != target or len(sizes) < 2:
        raise WdscaleError(f"rungs {rungs} must hold at least two sizes and end at the target {target}")
    if method == "mutransfer":
        if "mup" not in plan.rules:
            raise WdscaleError(f"method 'mutransfer' carries the mup recipe, not among the rules {plan.rules}: add mup")
        sizes = [sizes[0], sizes[-1]]  # the bottom rung alone, then the target
        plan = only_rule(plan, "mup")
    if plan.lrs is None and not plan.lr_decades:
        plan = dataclasses.replace(plan, lr_decades=2.0, lr_points_per_decade=2)
    plan = dataclasses.replace(plan, sizes=sizes, grid_sizes=[sizes[0]], base_size=sizes[0], seeds=bottom_seeds)
    # what decides the climb, kept with its runs: the same directory tuned with other arguments is
    # refused (its runs would steer the climb away from what a fresh directory finds)
    arguments = dict(search=method, target=target, seeds=seeds, max_seeds=max_seeds, budget=budget,
                     metric=metric, plan=plan.to_dict())  # fmt: skip
    if seeding != "close":  # only where it differs: a directory tuned before the keyword resumes
        arguments["seeding"] = seeding
    out = Path(out_dir)
    plan = keep_refined(plan, out)
    task = task if task is not None else get_task(plan.task)
    resolved = resolve(plan, task, model_fn)
    grids = coarse_grids(plan, task, model_fn)
    lr_step = 1.0 / plan.lr_points_per_decade
    lr_anchor = resolved.lr
    work = {size: run_work(resolved, model_fn or task.make_model, size) for size in sizes}  # every rung built
    allowance = budget * sweep_points(resolved, grids) * work[target] if budget is not None else math.inf
    _plan_budget(plan, resolved, grids, work, sizes, seeds, budget, allowance)
    steps = {rule: (lr_step, log_step(grid)) for rule, grid in grids.items()}

    def optima_of(runs: pd.DataFrame) -> pd.DataFrame:
        return rung_optima(runs, metric, optimum, steps)

    def train(p: StudyPlan) -> pd.DataFrame:
        if trainer is not None:
            runs = trainer(p)
        else:
            run_study(p, out, source=source, task=task, model_fn=model_fn, execution=execution, tune=arguments)
            runs = load_runs(out)
        return runs[runs["task"] == plan.task]

    def left(runs: pd.DataFrame, upto: Optional[int] = None) -> float:
        """What the budget still allows (parameters × samples) after the runs at sizes ≤ `upto`: each
        decision counts only the rungs it follows, so a resumed climb (its later runs stored) decides
        as the first one did."""
        spent = runs if upto is None else runs[runs["size"] <= upto]
        return allowance - float(params_samples(spent).sum())

    # the target's runs the climb keeps back for: "both" two (the best recipe's carried and laws'
    # points, each of which won on one family of findings §10's one-pass targets), else one
    reserve = 2 if seeding == "both" and method == "ladder" else 1
    runs = train(plan)  # the bottom rung's grid (and whatever an interrupted climb had placed)
    plan, runs = _second_seeds(plan, runs, sizes[0], plan.rules, NOISE_POINTS, metric, train)
    contenders = _contenders(runs, sizes[0], plan.rules, metric)
    for i, size in enumerate(sizes[1:-1], start=1):  # the middle rungs
        below = left(runs, upto=sizes[i - 1])
        fits = math.floor((below - reserve * work[target]) / (9 * work[size])) if math.isfinite(allowance) else 99
        if fits < 1 and not any(runs["size"] == size):  # each climbing recipe costs a 3 × 3 block here
            _say(f"the budget cannot afford {plan.size_axis} {size} beside a run at the target: rung skipped")
            continue
        contenders = contenders[: max(1, fits)]
        optima = optima_of(runs)
        additions: dict[str, dict[Point, int]] = {}
        for rule in contenders:
            at = placed_point(optima, rule, sizes[:i], size)
            if at is not None:
                s_anchor, s_step = grids[rule][0], log_step(grids[rule])
                lr, setting = _lattice(at[0], lr_anchor, lr_step), _lattice(at[1], s_anchor, s_step)
                _cross(additions, rule, size, lr, setting, lr_anchor, lr_step, s_anchor, s_step)
        plan = with_refined(plan, additions)
        _say(f"{sum(len(v) for v in additions.values())} points placed at {plan.size_axis} {size} "
             f"for {', '.join(contenders)}")  # fmt: skip
        runs = train(plan)
        for _ in range(MAX_BRACKET_ROUNDS):
            # a bracketing step's ≤ 5 new points a recipe (and with two target runs kept back, the
            # second seeds after it) must leave the target's runs
            step = (5 + reserve - 1) * len(contenders) * work[size]
            if left(runs, upto=size) - step < reserve * work[target]:
                break
            plan, runs, added = _bracket(plan, runs, size, contenders, grids, lr_anchor, lr_step, optima_of, train)
            if not added:
                break
        plan, runs = _second_seeds(plan, runs, size, contenders, 2 if optimum == "seeded" else 1, metric, train)
        contenders = _contenders(runs, size, contenders, metric)
    climbed = [size for size in sizes[:-1] if (runs["size"] == size).any()]  # a skipped rung is not below
    skipped = [size for size in sizes[:-1] if size not in climbed]
    candidates = _target_candidates(optima_of(runs), contenders, climbed, target, grids, lr_anchor, lr_step)
    below = left(runs, upto=sizes[-2])
    if math.isfinite(allowance):  # the target's runs the budget affords, less those kept back for seeds
        runs_fit = math.floor(below / work[target])
        kept = {"close": 0, "both": 0, "second": min(1, runs_fit - seeds), "race": runs_fit // 2}[seeding]
        fits = math.floor((runs_fit - max(0, kept)) / seeds)
    else:
        fits = len(candidates)
    tried = max(1, fits)
    if method != "ladder":  # a peer: the best recipe's carried point (mutransfer) or laws' point, one run
        optima = optima_of(runs)
        best = _ranked(optima[(optima["size"] == climbed[-1]) & optima["rule"].isin(contenders)]).iloc[0]
        carried, law = _carried_and_law(best, optima, climbed, target, grids, lr_anchor, lr_step)
        candidates, tried = [(str(best["rule"]), *(law if method == "laws" else carried))], 1
    additions = {}
    for rule, lr, setting in candidates[:tried]:
        _add(additions, rule, target, lr, setting, seeds)
    plan = with_refined(plan, additions)
    _say(f"{sum(len(v) for v in additions.values())} candidates at {plan.size_axis} {target}, {seeds} seed(s) each")
    runs = train(plan)
    while _at_target(runs, target, metric).empty and tried < len(candidates):  # no answer yet: past the budget
        _say("no candidate at the target trained to a finite loss: the next one, past the budget")
        rule, lr, setting = candidates[tried]
        tried += 1
        plan = with_refined(plan, {refined_key(rule, target): {(lr, setting): seeds}})
        runs = train(plan)
    dropped: set[tuple[str, float, float]] = set()
    if method == "ladder" and seeding == "race":
        plan, runs, dropped = _race(plan, runs, target, seeds, max_seeds, metric, train, left, work[target])
    for _ in range(
        MAX_SEED_ROUNDS if method == "ladder" and seeding != "race" else 0
    ):  # seeds where the best two are within noise
        at_target = _at_target(runs, target, metric)
        if at_target.empty or int(at_target["n"].iloc[0]) >= max_seeds:
            break
        best = at_target.iloc[0]
        close = len(at_target) > 1 and _within_noise(best, at_target.iloc[1], _noise(runs, metric))
        tied = [best, at_target.iloc[1]] if close else [best] if int(best["n"]) < 2 else []
        if not tied:
            break  # the best is told apart from the rest, and has two seeds
        if seeding == "second":  # as many of them as the budget affords, the best first
            tied = tied[: max(0, math.floor(left(runs) / work[target]))]
        if not tied or left(runs) < len(tied) * work[target]:
            _say("the budget is spent" + ("; the best two are still within noise" if close else ""))
            break
        more = min(max_seeds, int(max(c["n"] for c in tied)) + 1)
        additions = {}
        for c in tied:
            _add(additions, str(c["rule"]), target, float(c["lr"]), float(c["setting"]), more)
        plan = with_refined(plan, additions)
        runs = train(plan)
    result = measured_result(
        runs, plan, sizes, target, grids, metric, resolved, work[target], budget, skipped=skipped,
        contenders=contenders, dropped=dropped,
    )  # fmt: skip
    result = dataclasses.replace(result, method=method)
    if rescore_seeds:
        result = rescore_pick(result, plan, out, rescore_seeds, runs, metric=metric, source=source, task=task,
                              model_fn=model_fn, execution=execution)  # fmt: skip
    return result


def bottom_runs(resolved: Resolved, grids: dict[str, list[float]], rules: list[str], bottom_seeds: int) -> int:
    """The runs the bottom rung trains: every recipe's joint grid at `bottom_seeds` seeds, and a
    second seed at each recipe's best NOISE_POINTS points where it has one."""
    grid = len(resolved.lrs) * sum(len(grids[r]) for r in rules)
    return grid * bottom_seeds + (NOISE_POINTS * len(rules) if bottom_seeds < 2 else 0)


def _plan_budget(plan, resolved, grids, work, sizes, seeds, budget, allowance) -> None:
    """The budget planned before any run: the bottom rung's grid beside `seeds` runs at the target
    must fit in it (else refused, with the budget that would), and what the bottom takes is said."""
    n = bottom_runs(resolved, grids, plan.rules, plan.seeds)
    bottom, target = n * work[sizes[0]], seeds * work[sizes[-1]]
    axis = plan.size_axis
    if budget is None:
        _say(f"no budget: {n} runs at {axis} {sizes[0]} ({bottom:.3g} parameters × samples), then the rungs above")
        return
    sweep = allowance / budget
    if bottom + target > allowance:
        raise WdscaleError(
            f"budget {budget:g} ({allowance:.3g} parameters × samples: that fraction of one recipe's sweep at "
            f"{axis} {sizes[-1]}) cannot afford the bottom rung's grid ({n} runs at {axis} {sizes[0]}: {bottom:.3g}) "
            f"beside {seeds} run(s) at the target ({target:.3g}); it needs a budget ≥ "
            f"{math.ceil(100 * (bottom + target) / sweep) / 100:g}: give that (--budget), a smaller bottom rung "
            "(rungs=), or a coarser grid (fewer rules, lrs or settings)"
        )
    _say(
        f"budget {budget:g} of one recipe's sweep at {axis} {sizes[-1]} ({allowance:.3g} parameters × samples): "
        f"the bottom rung's {n} runs at {axis} {sizes[0]} take {100 * bottom / allowance:.0f} % of it, "
        f"the rest goes to the rungs above and the target"
    )


def _say(text: str) -> None:
    print(f"tune: {text}", file=sys.stderr)


def run_work(r: Resolved, model_fn: ModelFn, size: int) -> float:
    """One run's compute at `size` in parameters × samples seen, counted before it is trained (the
    model built on the meta device; a factory that cannot build there, for real)."""
    knobs = size_knobs(r, size)
    try:
        n = meta_params(model_fn, knobs["width"], knobs["depth"])
    except Exception:  # a user's factory that loads data or checks devices
        try:
            with torch.random.fork_rng():
                n = sum(p.numel() for p in model_fn(knobs["width"], knobs["depth"]).parameters())
        except Exception as e:
            axis = r.plan.size_axis
            raise WdscaleError(
                f"the model cannot be built at {axis} {size} (width {knobs['width']}, depth {knobs['depth']}): "
                f"{type(e).__name__}: {' '.join(str(e).split())[:200]}; give the sizes it takes as rungs= "
                f"(--rungs), ending at the target"
            ) from None
    return float(n) * knobs["n_train"] * r.epochs


def _noise(runs: pd.DataFrame, metric: str) -> float:
    """The relative seed-to-seed standard deviation of the loss, pooled (on log losses) over every
    point trained with two seeds or more whose mean is within NOISE_NEAR of the best at its size
    (near a cliff of divergence seeds scatter far more than where the decision is made);
    NOISE_FLOOR where none is."""
    ok = runs[runs["status"] != "failed"]
    ok = ok.assign(log=np.log(run_losses(ok, metric)))
    ok = ok[np.isfinite(ok["log"])]
    keys = ["rule", "size", "lr", "setting"]
    g = ok.groupby(keys)["log"]
    ss = g.apply(lambda v: float(((v - v.mean()) ** 2).sum()))
    points = pd.DataFrame({"mean": g.mean(), "n": g.size(), "ss": ss})
    points = points.reset_index()
    best = points.groupby("size")["mean"].transform("min")
    near = points[(points["n"] > 1) & (points["mean"] <= best + math.log1p(NOISE_NEAR))]
    dof = float((near["n"] - 1).sum())
    return math.sqrt(float(near["ss"].sum()) / dof) if dof > 0 else NOISE_FLOOR


def _within_noise(a: pd.Series, b: pd.Series, noise: float) -> bool:
    """b's mean is within 2 standard errors of the difference of a's (relative, pooled noise)."""
    return bool(b["mean"] / a["mean"] - 1 <= 2 * noise * math.sqrt(1 / a["n"] + 1 / b["n"]))


def _ranked(optima: pd.DataFrame) -> pd.DataFrame:
    """Recipes' optima best first. Where two tie exactly — μP at its base width is AdamW, so at the
    bottom rung its runs are AdamW's — nothing measured tells them apart, and the recipe that
    scales with width against its base (`Rule.needs_base`: built to hold its optimum as the model
    grows, Yang et al. 2022) goes first; then by name."""
    scales = optima["rule"].map(lambda r: not (r in RULES and RULES[r].needs_base))
    key = optima.assign(_mean=optima["mean"].round(12), _scales=scales)
    return key.sort_values(["_mean", "_scales", "rule"]).drop(columns=["_mean", "_scales"])


def _contenders(runs: pd.DataFrame, size: int, rules: list[str], metric: str) -> list[str]:
    """The recipes whose best point at `size` is within noise of the best recipe's, best first."""
    o = finite_optima(runs[runs["size"] == size], metric)
    o = _ranked(o[o["rule"].isin(rules)]).reset_index(drop=True)
    if o.empty:
        return list(rules)
    noise = _noise(runs[runs["size"] <= size], metric)  # the rungs climbed so far, as when first decided
    return [str(r["rule"]) for _, r in o.iterrows() if _within_noise(o.iloc[0], r, noise)]


def _as_placed(runs: pd.DataFrame) -> pd.DataFrame:
    """Each point's first seed only: what a climb decides from at a rung before seeds are added."""
    return runs[runs["seed"] == runs["seed"].min()] if len(runs) else runs


def _second_seeds(plan, runs, size, rules, per_rule, metric, train) -> tuple:
    """Two seeds at each recipe's `per_rule` best points at `size`, ranked by their first seed (as
    placed: a second seed moves a mean, and a climb resumed from the store must pick the same
    points): what the seed noise is measured from, and what tells the recipes apart."""
    m = setting_means(_as_placed(runs[(runs["size"] == size) & runs["rule"].isin(rules)]), metric)
    m = m[np.isfinite(m["mean"])].sort_values("mean").groupby("rule").head(per_rule)
    additions: dict[str, dict[Point, int]] = {}
    for _, o in m[m["n"] < 2].iterrows():
        _add(additions, str(o["rule"]), size, float(o["lr"]), float(o["setting"]), 2)
    if additions:
        plan = with_refined(plan, additions)
        runs = train(plan)
    return plan, runs


def _bracket(plan, runs, size, rules, grids, lr_anchor, lr_step, optima_of, train) -> tuple:
    """One local step at a middle rung: each climbing recipe's best point here (`optima_of`: the
    climb's `rung_optima`) gets whichever of its eight neighbours are not trained yet. Returns
    (plan, runs, points added)."""
    here = _as_placed(runs[(runs["size"] == size) & runs["rule"].isin(rules)])  # before any second seed
    additions: dict[str, dict[Point, int]] = {}
    for _, o in optima_of(here).iterrows():
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
    """The points tried at the target, most promising first (the budget takes a prefix): for each
    recipe still in contention, best first, its optimum at the rung below carried over (the
    recipe's own transfer), then the laws' point (the straight lines of log lr* and log setting*
    through the rungs below, extrapolated; held within MAX_LAW_STEPS lattice steps of the carried
    point, since a line through a few noisy rungs can land far off: on joint_width one put μP's
    lr at 0.3); for the best recipe, then the carried point moved one lr step along its η·λ ridge
    in the direction its lr law moves (a fixed η·λ is what transferred across width under AdamW:
    Kosson et al. 2026; findings §6)."""
    last = _ranked(optima[(optima["size"] == below[-1]) & optima["rule"].isin(rules)])
    out: list[tuple[str, float, float]] = []
    for k, (_, o) in enumerate(last.iterrows()):
        rule = str(o["rule"])
        (lr0, s0), law = _carried_and_law(o, optima, below, size, grids, lr_anchor, lr_step)
        out += [(rule, lr0, s0), (rule, *law)]
        fitted = placed_point(optima, rule, below, size)  # where its lr law moves, before the lattice
        direction = np.sign(math.log(fitted[0] / float(o["lr"]))) if fitted is not None and len(below) > 1 else 0.0
        if k == 0 and direction:
            lr_k = _lattice(lr0 * 10 ** (direction * lr_step), lr_anchor, lr_step)
            out.append((rule, lr_k, _lattice(lr0 * s0 / lr_k, grids[rule][0], log_step(grids[rule]))))
    return list(dict.fromkeys(out))  # in order, each point once


def _carried_and_law(
    optimum: pd.Series, optima: pd.DataFrame, below: list[int], size: int, grids, lr_anchor: float, lr_step: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A recipe's two points at `size` on the lattice: its optimum at the rung below carried over,
    and its laws' point (the lines of log lr* and log setting* through the rungs below; held
    within MAX_LAW_STEPS of the carried point; the carried point itself with one rung below)."""
    rule = str(optimum["rule"])
    s_anchor, s_step = grids[rule][0], log_step(grids[rule])
    lr0 = _lattice(float(optimum["lr"]), lr_anchor, lr_step)
    s0 = _lattice(float(optimum["setting"]), s_anchor, s_step)
    law = placed_point(optima, rule, below, size) or (lr0, s0)
    return (lr0, s0), (_within_steps(law[0], lr0, lr_anchor, lr_step), _within_steps(law[1], s0, s_anchor, s_step))


def _within_steps(value: float, centre: float, anchor: float, step: float) -> float:
    """`value` moved back to within MAX_LAW_STEPS steps of `centre` on the lattice anchor·10^(k·step)."""
    k_value, k_centre = (round(math.log10(v / anchor) / step) for v in (value, centre))
    k = max(k_centre - MAX_LAW_STEPS, min(k_centre + MAX_LAW_STEPS, k_value))
    return float(f"{anchor * 10 ** (k * step):.4g}")


def _at_target(runs: pd.DataFrame, target: int, metric: str, dropped: frozenset | set = frozenset()) -> pd.DataFrame:
    """The candidates at the target with a finite seed-mean, best first; those `dropped` by a race
    (rule, lr, setting) last, however low their mean (a column says which)."""
    m = setting_means(runs, metric)
    m = m[(m["size"] == target) & np.isfinite(m["mean"])]
    out = [(str(r), float(a), float(b)) in dropped for r, a, b in m[["rule", "lr", "setting"]].itertuples(index=False)]
    m = m.assign(dropped=np.array(out, dtype=bool))
    return m.sort_values(["dropped", "mean", "rule", "lr", "setting"]).reset_index(drop=True)


def _log_losses(runs: pd.DataFrame, size: int, metric: str) -> pd.DataFrame:
    """The runs at `size` as a table of log losses: one row per point (rule, lr, setting), one
    column per seed (+inf where a seed diverged or did not learn; nan where not trained or failed)."""
    at = runs[(runs["size"] == size) & (runs["status"] != "failed")]
    if at.empty:
        return pd.DataFrame()
    at = at.assign(log=np.log(run_losses(at, metric)))
    table = at.pivot_table(index=["rule", "lr", "setting"], columns="seed", values="log", aggfunc="first")
    return table.dropna(how="all")


def _paired(a: pd.Series, b: pd.Series) -> tuple[float, int]:
    """a − b (log losses) over their common seeds — those where both are finite — averaged, and
    how many (nan, 0 where none): the seeds a point shares with another are one initialisation and
    data order, so the seed's own luck, shared, drops out of the difference."""
    both = np.isfinite(a.to_numpy(float)) & np.isfinite(b.to_numpy(float))
    if not both.any():
        return math.nan, 0
    return float(np.mean(a.to_numpy(float)[both] - b.to_numpy(float)[both])), int(both.sum())


def _paired_noise(runs: pd.DataFrame, metric: str) -> float:
    """The standard deviation of one seed's paired difference of two points' log losses, pooled
    over every pair of points at one size with two common seeds or more whose means are within
    NOISE_NEAR of the best there (as `_noise`); √2 · `_noise` — two independent points — where
    no pair has two."""
    ss, dof = 0.0, 0
    for size in sorted(runs["size"].unique()):
        t = _log_losses(runs, int(size), metric)
        if t.empty:
            continue
        finite = t.where(np.isfinite(t))  # a diverged seed says nothing of the noise, as in `_noise`
        values, means = finite.to_numpy(float), finite.mean(axis=1).fillna(np.inf).to_numpy(float)
        near = np.flatnonzero((np.isfinite(values).sum(axis=1) > 1) & (means <= np.min(means) + math.log1p(NOISE_NEAR)))
        for i, j in ((i, j) for k, i in enumerate(near) for j in near[k + 1 :]):
            both = np.isfinite(values[i]) & np.isfinite(values[j])
            if both.sum() > 1:
                e = values[i][both] - values[j][both]
                ss, dof = ss + float(((e - e.mean()) ** 2).sum()), dof + int(both.sum()) - 1
    return math.sqrt(ss / dof) if dof > 0 else math.sqrt(2) * _noise(runs, metric)


def _race(plan, runs, target, seeds, max_seeds, metric, train, left, cost) -> tuple:
    """The target's candidates raced on paired seeds ("race"): round by round (each candidate's
    seeds from `seeds` up to `max_seeds`), the best is the lowest seed-mean among those still in
    the race; a candidate whose paired difference to it (`_paired`: over their common seeds, in
    log loss) sits above 0 by more than PAIRED_K standard errors (`_paired_noise`: the pooled
    noise of one seed's paired difference, over √(common seeds)) is dropped, a candidate with a
    seed that diverged too; the best and the rest get a seed more, the best first and then the
    nearest, as far as the budget goes (`left`, `cost`: one target run's). Ends when the budget
    is spent, the best alone is left with two seeds or more, or every one has `max_seeds`. Each
    round decides from the seeds below its own (a resumed race decides as the first did).
    Returns (plan, runs, the dropped points as (rule, lr, setting))."""
    first, dropped = plan.first_seed, set[tuple[str, float, float]]()
    for level in range(seeds, max_seeds):  # the round that brings the race to level + 1 seeds
        seen = runs[(runs["size"] != target) | (runs["seed"] < first + level)]
        table = _log_losses(seen, target, metric)
        means = _at_target(seen, target, metric, dropped)
        means = means[~means["dropped"]]
        if means.empty:
            break
        best = means.iloc[0]
        key = (str(best["rule"]), float(best["lr"]), float(best["setting"]))
        sigma = _paired_noise(seen, metric)
        ahead: list[tuple[float, tuple[str, float, float]]] = [(-math.inf, key)]
        for point in table.index:
            point = (str(point[0]), float(point[1]), float(point[2]))
            if point == key or point in dropped:
                continue
            diff, n = _paired(table.loc[point], table.loc[key])
            if np.isinf(table.loc[point]).any() or (n and diff - PAIRED_K * sigma / math.sqrt(n) > 0):
                dropped.add(point)
                _say(f"race: {point[0]} lr {point[1]:.4g} setting {point[2]:.4g} dropped ({100 * diff:+.1f} % paired "
                     f"over {n} seed(s) against the best, noise {100 * sigma:.1f} % a seed)")  # fmt: skip
            else:
                ahead.append((diff if n else math.inf, point))
        if len(ahead) == 1 and int(best["n"]) >= 2:
            break  # the best alone, on two seeds or more
        asked = seen[seen["size"] == target].groupby(["rule", "lr", "setting"]).size()
        additions: dict[str, dict[Point, int]] = {}
        spare = left(seen)
        for _, (rule, lr, setting) in sorted(ahead, key=lambda a: a[0]):
            need = (level + 1 - int(asked.get((rule, lr, setting), 0))) * cost  # what `seen` lacks of level + 1
            if spare < need:
                break
            _add(additions, rule, target, lr, setting, level + 1)
            spare -= need
        if not additions:
            if spare < cost:
                _say("race: the budget is spent")
            break
        plan = with_refined(plan, additions)
        runs = train(plan)
    return plan, runs, dropped


def _sweep_core_s(runs: pd.DataFrame, target: int, n_points: float) -> float:
    """One recipe's sweep at the target in core-seconds: its points × the median measured cost of
    one target run (which the machine's load at the time moves; parameters × samples do not)."""
    at = runs[runs["size"] == target]
    return n_points * float(core_seconds(at).median()) if len(at) else 0.0


def _ties(runs: pd.DataFrame, at_target: pd.DataFrame, best: pd.Series, contenders, metric: str) -> list[str]:
    """Where the pick rests on a tie, in words: another recipe's candidate at the target within
    seed noise of it, or a recipe within noise at the rung below that the target never trained
    (the budget took the first in order: nothing measured put the pick ahead of it)."""
    noise, out = _noise(runs, metric), []
    rule = str(best["rule"])
    for _, c in at_target.iloc[1:].iterrows():
        if str(c["rule"]) != rule and not c.get("dropped", False) and _within_noise(best, c, noise):
            out.append(
                f"{c['rule']} (lr {c['lr']:.4g}, setting {c['setting']:.4g}: {c['mean']:.4f}) is within seed noise "
                f"({100 * noise:.2g} %) of {rule}'s {best['mean']:.4f} at the target: the pick is not a measured "
                "difference"
            )
    trained = set(at_target["rule"].astype(str))
    for other in contenders:
        if other != rule and other not in trained:
            out.append(
                f"{other} was within seed noise of {rule} at the rung below and never trained at the target "
                "(the budget): the pick of one over the other is not a measured difference"
            )
    return out


def _edge_warnings(runs: pd.DataFrame, rule: str, lr: float, setting: float, sym: str) -> list[str]:
    """The pick at the edge of the lrs or settings trained for its recipe at any rung: the climb
    never looked beyond it, so the optimum may lie there (a bound, as `advise` says of an edge)."""
    mine = runs[(runs["rule"] == rule) & (runs["status"] != "failed")]
    out = []
    for name, value, col, knob in (("lr", lr, "lr", "lr_decades"), (sym, setting, "setting", "decades")):
        lo, hi = float(mine[col].min()), float(mine[col].max())
        if lo < hi and (math.isclose(value, lo, rel_tol=1e-3) or math.isclose(value, hi, rel_tol=1e-3)):
            out.append(
                f"the pick's {name} {value:.4g} sits on the edge of the {name}s trained ({lo:.4g} … {hi:.4g}): "
                f"the optimum may lie beyond it, so it is a bound; widen the grid ({knob}) and tune again"
            )
    return out


def sweep_points(resolved: Resolved, grids: dict[str, list[float]]) -> float:
    """The points of one recipe's sweep: the lr grid × the (median) recipe's setting grid."""
    return len(resolved.lrs) * float(np.median([len(g) for g in grids.values()]))


def measured_result(
    runs, plan, sizes, target, grids, metric, resolved, target_work, budget, *, skipped=(), contenders=(),
    dropped=frozenset(),
) -> TuneResult:  # fmt: skip
    """The result measured at the target; `target_work`: one target run's parameters × samples;
    `skipped`: the rungs not climbed; `contenders`: the recipes within noise at the last rung climbed;
    `dropped`: the candidates a race dropped (never the pick, listed last)."""
    at_target = _at_target(runs, target, metric, dropped)
    if at_target.empty:
        raise WdscaleError(f"no candidate trained at the target {target} (every one failed, diverged or did not learn)")
    best = at_target.iloc[0]
    rule, lr, setting, n = str(best["rule"]), float(best["lr"]), float(best["setting"]), int(best["n"])
    if n >= 3:  # its own seeds
        half = float(stats.t.ppf(0.95, n - 1) * best["sem"])
    else:  # too few for their own spread: the seed noise pooled over the climb's seeded points
        half = float(stats.norm.ppf(0.95) * _noise(runs, metric) * best["mean"] / math.sqrt(n))
    setting_name = RULES[rule].takes if rule in RULES else "weight_decay"
    knobs = size_knobs(resolved, target)
    facts = (
        f"data=wdscale.DataFacts(n_samples={knobs['n_train']}, batch_size={knobs['batch_size']}, "
        f"epochs={resolved.epochs})"
    )
    call = (
        f'wdscale.optimizer(model, "{plan.optimizer}", rule="{rule}", lr={lr:.4g}, {setting_name}={setting:.4g}, '
        f"base=<your model at {plan.size_axis} {sizes[0]}>, {facts})"
    )
    n_points = sweep_points(resolved, grids)
    return TuneResult(
        target=int(target),
        axis=plan.size_axis,
        rungs=tuple(int(s) for s in sizes if s not in skipped),
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
        sweep_core_s=_sweep_core_s(runs, target, n_points),
        work=float(params_samples(runs).sum()),
        sweep_work=n_points * float(target_work),
        call=call,
        budget=budget,
        skipped=tuple(int(s) for s in skipped),
        ties=tuple(_ties(runs, at_target, best, contenders, metric)),
        warnings=tuple(_edge_warnings(runs, rule, lr, setting, "τ" if setting_name == "tau" else "λ")),
    )


def only_rule(plan: StudyPlan, rule: str) -> StudyPlan:
    """The plan of one of its recipes (its grid and extension kept, the others' dropped)."""
    return only_rules(plan, [rule])


def only_rules(plan: StudyPlan, rules: Sequence[str]) -> StudyPlan:
    """The plan of some of its recipes, in the order given (their grids and extensions kept)."""
    keep = lambda d: {k: v for k, v in d.items() if k in rules}  # noqa: E731
    settings = keep(plan.settings) if plan.settings is not None else None
    return dataclasses.replace(plan, rules=list(rules), settings=settings, extend=keep(plan.extend))


def check_rescore_seeds(n: int) -> int:
    """A count of fresh seeds from 0 (none) to MAX_RESCORE_SEEDS, or one error naming it."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_RESCORE_SEEDS:
        raise WdscaleError(f"rescore_seeds={n!r} is not allowed: a whole number from 0 (none) to {MAX_RESCORE_SEEDS}")
    return int(n)


def rescore_pick(
    result: TuneResult,
    plan: StudyPlan,
    out_dir: Union[str, Path],
    n_seeds: int,
    search_runs: pd.DataFrame,
    *,
    metric: str = "val_loss",
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
    others: Sequence[tuple[str, float, float]] = (),
) -> TuneResult:
    """The search's pick re-trained at the target on `n_seeds` seeds it never used and scored there:
    a pick chosen on its own seed is flattered by that seed (the more points a search tried, the
    more), so every method's pick is compared on fresh ones. The runs are a study of their own in
    `out_dir/rescore` (the search's plan, its base size included, at seeds from RESCORE_FIRST_SEED
    or past every seed the search trained), so they are never counted as the search's compute nor
    read by a resumed search; the same call again trains none of them again.

    Args:
        result: the search's result (its rule, lr, setting and target).
        plan: the search's plan (task, rules, base size, schedule, …: everything a run is but its seed).
        out_dir: the search's directory.
        n_seeds: fresh seeds, 1 to MAX_RESCORE_SEEDS.
        search_runs: the search's own runs (the seeds it trained, and its pooled seed noise).
        metric, source, task, model_fn, execution: as the search's.
        others: more (rule, lr, setting) picks re-trained on the same fresh seeds in the same
            study (several Optuna searches in one directory: each search's pick), scored apart.

    Returns:
        `result` with `rescore` set.

    Raises:
        WdscaleError: a bad seed count, or a directory whose rescore study holds another plan.
    """
    if check_rescore_seeds(n_seeds) < 1:
        raise WdscaleError(f"n_seeds={n_seeds!r} is not allowed: a whole number from 1 to {MAX_RESCORE_SEEDS}")
    first = max(RESCORE_FIRST_SEED, int(search_runs["seed"].max()) + 1 if len(search_runs) else 0)
    target, rule = result.target, result.rule
    picks = [(rule, result.lr, result.setting), *[(str(r), float(lr), float(s)) for r, lr, s in others]]
    rules = list(dict.fromkeys(p[0] for p in picks))  # the result's rule first: one pick's plan as before
    fresh = dataclasses.replace(only_rules(plan, rules), refined={}, grid_sizes=[], seeds=1, first_seed=first)
    additions: dict[str, dict[Point, int]] = {}
    for r, lr, s in picks:
        additions.setdefault(refined_key(r, target), {})[(lr, s)] = n_seeds
    fresh = with_refined(fresh, additions)
    out = Path(out_dir) / RESCORE_DIR
    arguments = dict(search="rescore", of=result.method, target=target, first_seed=first)
    _say(f"re-scoring {rule} lr {result.lr:.4g} setting {result.setting:.4g} at {plan.size_axis} {target} on "
         f"{n_seeds} fresh seed(s) from {first}, in {out}")  # fmt: skip
    run_study(fresh, out, source=source, task=task, model_fn=model_fn, execution=execution, tune=arguments)
    runs = load_runs(out)
    seeds = range(first, first + n_seeds)
    mine = runs[
        (runs["task"] == plan.task)
        & (runs["rule"] == rule)
        & (runs["size"] == target)
        & runs["seed"].isin(seeds)
        & np.isclose(runs["lr"], result.lr, rtol=1e-6)
        & np.isclose(runs["setting"], result.setting, rtol=1e-6)
    ]
    losses = run_losses(mine, metric)
    mean = float(np.mean(losses))
    if len(losses) >= 3 and np.isfinite(losses).all():
        half = float(stats.t.ppf(0.95, len(losses) - 1) * np.std(losses, ddof=1) / math.sqrt(len(losses)))
    else:  # too few for their own spread: the search's pooled seed noise
        half = float(stats.norm.ppf(0.95) * _noise(search_runs, metric) * mean / math.sqrt(max(1, len(losses))))
    rescore = Rescore(
        seeds=tuple(int(v) for v in sorted(mine["seed"])),
        loss=mean,
        loss_lo=mean - half,
        loss_hi=mean + half,
        core_s=float(core_seconds(mine).sum()),
        work=float(params_samples(mine).sum()),
    )
    return dataclasses.replace(result, rescore=rescore)


def reach_box(resolved: Resolved, grids: dict[str, list[float]], rungs: list[int]) -> list[Box]:
    """Per recipe, the (lr, setting) box the ladder over `rungs` reaches at the target (the last
    rung) before any bracketing, on the lattices its points lie on: the bottom grid, one step
    further at each middle rung (the 3 × 3 block around the point placed there), and at the target
    MAX_LAW_STEPS more (its laws' point, held within that of the carried one; the η·λ ridge step
    moves one lr step). Bracketing at a middle rung, and a laws' line through a noisy rung, can go
    further, as far as the budget and the losses take them: `optuna_search` widens this box to
    every point a ladder's directory trained (`match_compute`), so its peer searches whatever the
    ladder reached.

    Args:
        resolved: the plan resolved (its lr grid and base lr, the lr lattice's anchor).
        grids: each recipe's setting grid at the bottom rung.
        rungs: the ladder's sizes, the target last.

    Returns:
        One Box per recipe, in the grids' order.
    """
    lr_step = 1.0 / resolved.plan.lr_points_per_decade
    middle = len(set(rungs)) - 2

    def reach(values: list[float], anchor: float, step: float, ridge: int) -> tuple[float, float]:
        k = [math.log10(v / anchor) / step for v in values]
        wider = middle + max(MAX_LAW_STEPS, ridge)
        lo, hi = math.floor(min(k) + 1e-3) - wider, math.ceil(max(k) - 1e-3) + wider  # grids hold 4 digits
        return float(f"{anchor * 10 ** (lo * step):.4g}"), float(f"{anchor * 10 ** (hi * step):.4g}")

    lr_lo, lr_hi = reach(resolved.lrs, resolved.lr, lr_step, 1)
    boxes = []
    for rule, grid in grids.items():
        s_step = log_step(grid)
        boxes.append(Box(rule, lr_lo, lr_hi, *reach(grid, grid[0], s_step, math.ceil(lr_step / s_step - 1e-9))))
    return boxes
