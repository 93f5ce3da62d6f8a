"""Optuna at the target, at a given compute: the baseline the ladder of `tune` is measured against.

Optuna's TPE sampler (Bergstra et al. 2011, "Algorithms for hyper-parameter optimization") searches
(recipe, log lr, log setting) at the target itself, each trial one run at one seed stored as a
study's run, until the compute given is spent: a fraction of one recipe's sweep at the target in
parameters × samples (`tune`'s budget), or a ladder's measured core-seconds (`match_compute`, the
unit that follows what runs cost where a run's fixed costs outweigh its parameters). Trials go on
until the compute is reached, the last one crossing it (rounding down once left the ladder 1.01-1.31×
TPE's compute); the overshoot is reported. `tpe_hyperband` adds Optuna's HyperbandPruner (Li et al.
2018) over epochs, or over `ONE_PASS_EVALS` evenly spaced evaluations of a one-pass run. The
pruner is replayed on each run's validation losses: the run is trained to its end, each
evaluation's loss reported in turn, and the run counted only to the evaluation where Hyperband
stopped it. Every trial is planned for the full run (its schedule spans the full length), so the
losses up to an evaluation are exactly those a trial stopped there would have reported, and that
count is what stopping there would have cost. (Under a decaying schedule a run's loss mid-way sits
above where a shorter run would have ended: the pruner judges trials at the same point of the same
schedule, as Optuna's pruners do in a user's scheduled training.)

Fairly: the space searched is every (lr, setting) the ladder reaches at the target (`reach_box`:
its bottom grid widened by the steps its middle rungs' blocks, its laws' point and its ridge step
take; with `match_compute`, widened to every point the ladder's directory trained, its bracketing
included), and to a reference sweep's points at the target (`reference`): the first searches, in
the bottom grid's lr range alone, stopped a decade below the optimum. TPE's random start is a
third of the trials the compute affords (at least 1; Optuna's default of 10 made every search of
2-11 trials random search), and a search whose every trial was one of them is reported as
"random". Its `base` is the ladder's bottom: per-layer rules scale as the ladder's do. Resumable:
the sampler is seeded, the study named after its search and seed (Hyperband brackets a trial by a
hash of the two), and every trial's value and cost are read back from the store, so running it
again asks the same points, prunes the same trials and trains none again.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from ...checks import check_positive_int
from ...errors import WdscaleError
from ..analysis.study_analysis import core_seconds, params_samples, run_losses
from ..plan.config import ModelFn
from ..plan.study_plan import StudyPlan, coarse_grids, refined_key, resolve, with_refined
from ..plan.tasks import Task, get_task
from ..run.execution import DEFAULT_EXECUTION, Execution
from ..run.jobs import Source
from ..run.runner import keep_refined, run_study
from ..run.store import load_runs
from .tune import (
    DEFAULT_BUDGET,
    Box,
    TuneResult,
    check_budget,
    check_rescore_seeds,
    ladder,
    measured_result,
    reach_box,
    rescore_pick,
    run_work,
    sweep_points,
)

SEARCHES = ("tpe", "tpe_hyperband")
MAX_SAMPLER_SEEDS = 1000  # searches into one directory (10^12 once ran for ever)
TRIALS_FILE = "trials.csv"  # each trial: its point, its state and the evaluations its compute is counted to
# (the column is named `epochs`: one per epoch, or ONE_PASS_EVALS in a one-pass run)
# a one-pass run's evaluations for Hyperband: two rungs of its reduction factor 3 below the full run
ONE_PASS_EVALS = 9


def optuna_search(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    target: int,
    *,
    search: str = "tpe",
    budget: Optional[float] = DEFAULT_BUDGET,
    base: Optional[int] = None,
    rungs: Optional[list[int]] = None,
    match_compute: Union[str, Path, None] = None,
    reference: Sequence[Union[str, Path]] = (),
    rescore_seeds: int = 0,
    seed: int = 0,
    sampler_seeds: int = 1,
    metric: str = "val_loss",
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
) -> TuneResult:
    """Optuna's TPE (or TPE with its HyperbandPruner over epochs) at the target, for `budget` of one
    recipe's sweep there or a ladder's measured core-seconds; see the module docstring.

    Args:
        plan: the family: task, size_axis, rules (the recipes), the lr grid and each recipe's
            setting grid (the ladder's bottom grid, whose reach is the space searched), epochs, …;
            its sizes are replaced by the target.
        out_dir: the search's directory (a study's: store, plan, exports, and `trials.csv`).
        target: the size searched, on the plan's size axis.
        search: "tpe" or "tpe_hyperband".
        budget: the compute, as a fraction of one recipe's sweep at the target (parameters ×
            samples; a pruned trial counted to its last epoch); trials go on until it is reached
            (the last may cross it). Not used with match_compute (leave it at its default or None).
        base: the base size of per-layer rules (default: the bottom of the ladder).
        rungs: the ladder whose reach is the space searched (`reach_box`; default `ladder(target)`).
        match_compute: a ladder's directory (a tune to the same target): trials go on until this
            search has spent at least its core-seconds (wall time × threads, every rung), the last
            trial crossing it; the overshoot is reported.
        reference: study directories (e.g. the reference sweep at the target) whose lrs and
            settings trained at the target the space is widened to cover, per recipe.
        rescore_seeds: re-train every search's pick on this many fresh seeds (`rescore_pick`); the
            result's `rescore` is the first search's.
        seed: the sampler's seed.
        sampler_seeds: how many searches, each at the whole budget, with sampler seeds seed,
            seed + 1, …, into the same directory (a point two of them ask is trained once; each
            counts it): one search is one draw of the sampler, and the findings compare medians.
        metric: what is minimised.
        source, task, model_fn, execution: as `run_study`.

    Returns:
        The first search's best completed trial (the lowest loss of a run trained to its end), as
        `tune`'s result, its method "random" (or "random_hyperband") where every trial was one of
        TPE's random start; every search's trials are in `trials.csv` (their point, state, epochs,
        compute in both units, whether TPE or its random start chose it, and the box searched).

    Raises:
        WdscaleError: an unknown search, a bad budget, a budget beside match_compute, a
            match_compute directory without runs at the target, a reference without runs at the
            target, a pruner under a schedule, Optuna missing, a trial whose run recorded no
            wall time (its core-seconds unknown) under match_compute, or no trial that trained to
            a finite loss.
    """
    if search not in SEARCHES:
        raise WdscaleError(f"unknown search {search!r}; allowed: {', '.join(SEARCHES)}")
    if match_compute is not None:
        if budget is not None and budget != DEFAULT_BUDGET:
            raise WdscaleError(
                f"give the compute one way: budget={budget!r} or match_compute={str(match_compute)!r}, not both"
            )
        budget = None
    elif budget is None:
        raise WdscaleError("an Optuna search needs a budget (a fraction > 0 of one recipe's sweep) or match_compute")
    else:
        check_budget(budget)
    check_rescore_seeds(rescore_seeds)
    if check_positive_int("sampler_seeds", sampler_seeds) > MAX_SAMPLER_SEEDS:
        raise WdscaleError(
            f"sampler_seeds={sampler_seeds!r} is not allowed: a whole number from 1 to {MAX_SAMPLER_SEEDS}"
        )
    try:
        import optuna
    except ImportError:  # an optional dependency
        raise WdscaleError("the Optuna baseline needs optuna: pip install 'wdscale[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if plan.lrs is None and not plan.lr_decades:
        plan = dataclasses.replace(plan, lr_decades=2.0, lr_points_per_decade=2)
    ladder_sizes = sorted(set(rungs)) if rungs else ladder(int(target))
    if ladder_sizes[-1] != target or len(ladder_sizes) < 2:
        raise WdscaleError(f"rungs {rungs} must hold at least two sizes and end at the target {target}")
    base = base if base is not None else ladder_sizes[0]
    given_core_s, ladder_run_core_s = _ladder_compute(match_compute, plan.task, target)
    # the base size stays a size of the plan (a study has two or more) with nothing trained there
    search_plan = dataclasses.replace(plan, sizes=sorted({base, target}), grid_sizes=[], base_size=base, seeds=1)
    out = Path(out_dir)
    task = task if task is not None else get_task(plan.task)
    resolved = resolve(search_plan, task, model_fn)
    if search == "tpe_hyperband" and resolved.epochs == 1 and plan.evals_per_epoch == 1 and source is None:
        # one pass of wdscale's loop: the pruner's rungs are evaluations within it (Hyperband needs
        # more than one; a user's training reports its own)
        search_plan = dataclasses.replace(search_plan, evals_per_epoch=ONE_PASS_EVALS)
        resolved = resolve(search_plan, task, model_fn)
    resources = resolved.epochs * search_plan.evals_per_epoch
    grids = coarse_grids(search_plan, task, model_fn)
    boxes = {b.rule: b for b in reach_box(resolved, grids, ladder_sizes)}
    if match_compute is not None:  # whatever the ladder reached, its bracketing included, at any rung
        boxes = _covering(boxes, Path(match_compute), plan.task, None)
    for where in reference:
        boxes = _covering(boxes, Path(where), plan.task, target)
    per_run = run_work(resolved, model_fn or task.make_model, target)
    n_points = sweep_points(resolved, grids)
    allowance = budget * n_points * per_run if budget is not None else math.inf
    # the trials the compute affords, for TPE's random start: a third of them (Optuna's default of
    # 10 made a search of 2-11 trials random search alone)
    if given_core_s is not None:
        afford = math.ceil(given_core_s / ladder_run_core_s - 1e-9)
    else:
        afford = math.ceil(allowance / per_run - 1e-9)
    n_startup = max(1, round(afford / 3))
    # kept with its runs: the same directory searched with other arguments is refused (`run.identity`)
    arguments = dict(search=search, target=target, budget=budget, seed=seed, sampler_seeds=sampler_seeds,
                     metric=metric, plan=search_plan.to_dict(), n_startup_trials=n_startup,
                     given_core_s=given_core_s, box=[dataclasses.astuple(b) for b in boxes.values()])  # fmt: skip
    search_plan = keep_refined(search_plan, out)

    def one_search(sampler_seed: int) -> list[dict[str, Any]]:
        nonlocal search_plan
        pruner = (  # one per search: Hyperband keeps its brackets' state per study
            optuna.pruners.HyperbandPruner(min_resource=1, max_resource=resources, reduction_factor=3)
            if search == "tpe_hyperband"
            else optuna.pruners.NopPruner()
        )
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=n_startup)
        # named, not Optuna's random name: Hyperband puts a trial in a bracket by a hash of the
        # study's name and the trial's number, so a resumed search must have the same name to ask
        # (and prune) what it did before
        study = optuna.create_study(sampler=sampler, pruner=pruner, study_name=f"wdscale-{search}-{sampler_seed}")
        trials: list[dict[str, Any]] = []
        spent, spent_core = 0.0, 0.0
        while not trials or (spent_core < given_core_s if given_core_s is not None else spent < allowance):
            trial = study.ask()
            rule = trial.suggest_categorical("rule", list(plan.rules))
            box = boxes[rule]
            lr = float(f"{trial.suggest_float('lr', box.lr_lo, box.lr_hi, log=True):.4g}")
            s_lo, s_hi = box.setting_lo, box.setting_hi
            setting = float(f"{trial.suggest_float(f'setting_{rule}', s_lo, s_hi, log=True):.4g}")
            search_plan = with_refined(search_plan, {refined_key(rule, target): {(lr, setting): 1}})
            run_study(search_plan, out, source=source, task=task, model_fn=model_fn, execution=execution,
                      tune=arguments)  # fmt: skip
            run = _the_run(load_runs(out), rule, lr, setting, target)
            history = [float(v) for v in np.atleast_1d(run["history"])] if run is not None else []
            loss = float(run_losses(run.to_frame().T, metric)[0]) if run is not None else math.inf
            run_core_s = float(core_seconds(run.to_frame().T).iloc[0]) if run is not None else 0.0
            reached, state = len(history) or 1, "complete"
            for k, value in enumerate(history[:-1]):  # the pruner replayed on the run's evaluations
                trial.report(value if math.isfinite(value) else 1e30, k + 1)
                if trial.should_prune():
                    reached, state = k + 1, "pruned"
                    break
            if state == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, loss if math.isfinite(loss) else 1e30)
            share = reached / max(1, len(history) or 1)
            if given_core_s is not None and run_core_s * share <= 0:
                raise WdscaleError(
                    f"the run at {rule} lr {lr:.4g} setting {setting:.4g} recorded no wall time: its core-seconds, "
                    "which match_compute counts, are unknown"
                )
            spent += per_run * share
            spent_core += run_core_s * share
            trials.append(dict(sampler_seed=sampler_seed, trial=trial.number, rule=rule, lr=lr, setting=setting,
                               state=state, epochs=reached, loss=loss, work=per_run * share,
                               core_s=run_core_s * share,
                               sampled_by="random" if trial.number < n_startup else "tpe",
                               lr_lo=box.lr_lo, lr_hi=box.lr_hi, setting_lo=s_lo, setting_hi=s_hi))  # fmt: skip
            print(f"{search} (sampler seed {sampler_seed}): trial {trial.number} {rule} lr {lr:.4g} setting "
                  f"{setting:.4g}: {state} ({reached} of {resources} evaluations), loss {loss:.4f}",
                  file=sys.stderr)  # fmt: skip
        return trials

    table = pd.DataFrame([t for k in range(sampler_seeds) for t in one_search(seed + k)])
    table.to_csv(out / TRIALS_FILE, index=False)
    runs = load_runs(out)
    runs = runs[runs["task"] == plan.task]
    sizes = [base, target]

    def completed(sampler_seed: int) -> pd.DataFrame:
        """The runs of one search's trials that ran to their end (a pruned trial is no answer)."""
        done = table[(table["sampler_seed"] == sampler_seed) & (table["state"] == "complete")]
        keep = np.zeros(len(runs), dtype=bool)
        for rule, lr, setting in done[["rule", "lr", "setting"]].itertuples(index=False):
            keep |= _at(runs, rule, lr, setting, target)
        return runs[keep]

    first = table[table["sampler_seed"] == seed]
    result = measured_result(completed(seed), search_plan, sizes, target, grids, metric, resolved, per_run, budget)
    random_only = bool((first["sampled_by"] == "random").all())
    method = search.replace("tpe", "random") if random_only else search
    result = dataclasses.replace(
        result, work=float(first["work"].sum()), core_s=float(first["core_s"].sum()), rungs=(target,), method=method,
        given_core_s=given_core_s, box=tuple(boxes.values()),
    )  # fmt: skip
    if rescore_seeds:  # every search's pick on the same fresh seeds (one search is one draw of the sampler)
        others = []
        for k in range(seed + 1, seed + sampler_seeds):
            mine = completed(k)
            if len(mine):
                r = measured_result(mine, search_plan, sizes, target, grids, metric, resolved, per_run, budget)
                others.append((r.rule, r.lr, r.setting))
        result = rescore_pick(result, search_plan, out, rescore_seeds, runs, metric=metric, source=source, task=task,
                              model_fn=model_fn, execution=execution, others=others)  # fmt: skip
    return result


def _ladder_compute(where: Union[str, Path, None], task: str, target: int) -> tuple[Optional[float], float]:
    """A ladder's core-seconds (every run of its directory: the re-scoring runs live apart) and the
    median core-seconds of one of its runs at the target; (None, nan) without a directory."""
    if where is None:
        return None, math.nan
    runs = load_runs(where)
    runs = runs[runs["task"] == task]
    at = runs[runs["size"] == target]
    if at.empty:
        raise WdscaleError(
            f"match_compute {str(where)!r} holds no run of task {task!r} at the target {target}: give the directory "
            "of a tune to this target"
        )
    total, one = float(core_seconds(runs).sum()), float(core_seconds(at).median())
    if not (total > 0 and one > 0):
        raise WdscaleError(f"match_compute {str(where)!r}: its runs recorded no wall time, so no core-seconds")
    return total, one


def _covering(boxes: dict[str, Box], where: Path, task: str, size: Optional[int]) -> dict[str, Box]:
    """Each recipe's box widened to cover every lr and setting a study trained at `size` (None: at any)."""
    runs = load_runs(where)
    at = runs[(runs["task"] == task) & ((runs["size"] == size) if size is not None else True)]
    if at.empty:
        raise WdscaleError(f"reference {str(where)!r} holds no run of task {task!r} at the target {size}")
    out = dict(boxes)
    for rule, b in boxes.items():
        mine = at[at["rule"] == rule]
        if len(mine):
            out[rule] = Box(rule, min(b.lr_lo, float(mine["lr"].min())), max(b.lr_hi, float(mine["lr"].max())),
                            min(b.setting_lo, float(mine["setting"].min())),
                            max(b.setting_hi, float(mine["setting"].max())))  # fmt: skip
    return out


def _the_run(runs: pd.DataFrame, rule: str, lr: float, setting: float, size: int) -> Optional[pd.Series]:
    """The stored run at (rule, lr, setting) at `size` (seed 0), if it is there."""
    m = runs[_at(runs, rule, lr, setting, size)]
    return m.iloc[0] if len(m) else None


def _at(runs: pd.DataFrame, rule: str, lr: float, setting: float, size: int) -> np.ndarray:
    """Which runs are at (rule, lr, setting) at `size`."""
    return (
        (runs["rule"] == rule).to_numpy()
        & (runs["size"] == size).to_numpy()
        & np.isclose(runs["lr"], lr, rtol=1e-6)
        & np.isclose(runs["setting"], setting, rtol=1e-6)
    )


def counted_work(out_dir: Union[str, Path], sampler_seed: int = 0) -> float:
    """One search's compute as counted (pruned trials to their last epoch), from its trials file;
    with none, every stored run in full."""
    path = Path(out_dir) / TRIALS_FILE
    if path.is_file():
        trials = pd.read_csv(path)
        return float(trials.loc[trials["sampler_seed"] == sampler_seed, "work"].sum())
    return float(params_samples(load_runs(out_dir)).sum())
