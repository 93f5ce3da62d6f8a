"""Optuna at the target, at a given compute: the baseline the ladder of `tune` is measured against.

Optuna's TPE sampler (Bergstra et al. 2011, "Algorithms for hyper-parameter optimization") searches
(recipe, log lr, log setting) at the target itself, each trial one run at one seed stored as a
study's run, until the budget (a fraction of one recipe's sweep at the target, in parameters ×
samples, as `tune`'s) is spent. `tpe_hyperband` adds Optuna's HyperbandPruner (Li et al. 2018) over
epochs. The pruner is replayed on each run's per-epoch validation losses: the run is trained to
its end, each epoch's loss reported in turn, and the run counted only to the epoch where Hyperband
stopped it. Under a constant lr a run's losses up to an epoch do not depend on how many epochs
follow, so that count is what stopping there would have cost; a scheduled run's lr at an epoch
does depend on its length, so a schedule is refused. The search's lr range is the bottom grid's of
`tune` (the plan's lr grid), its setting range each recipe's coarse grid, its `base` the ladder's
bottom: the same space the ladder climbs. Resumable: the sampler is seeded and every trial's value
is read back from the store, so running it again asks the same points and trains none again.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from ...checks import check_positive_int
from ...errors import WdscaleError
from ..analysis.study_analysis import params_samples, run_losses
from ..plan.config import ModelFn
from ..plan.study_plan import StudyPlan, coarse_grids, refined_key, resolve, with_refined
from ..plan.tasks import Task, get_task
from ..run.execution import DEFAULT_EXECUTION, Execution
from ..run.jobs import Source
from ..run.runner import keep_refined, run_study
from ..run.store import load_runs
from .tune import DEFAULT_BUDGET, TuneResult, check_budget, ladder, measured_result, run_work, sweep_points

SEARCHES = ("tpe", "tpe_hyperband")
MAX_SAMPLER_SEEDS = 1000  # searches into one directory (10^12 once ran for ever)
TRIALS_FILE = "trials.csv"  # each trial: its point, its state and the epochs its compute is counted to


def optuna_search(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    target: int,
    *,
    search: str = "tpe",
    budget: float = DEFAULT_BUDGET,
    base: Optional[int] = None,
    seed: int = 0,
    sampler_seeds: int = 1,
    metric: str = "val_loss",
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
) -> TuneResult:
    """Optuna's TPE (or TPE with its HyperbandPruner over epochs) at the target, for `budget` of one
    recipe's sweep there; see the module docstring.

    Args:
        plan: the family and the search space: task, size_axis, rules (the recipes), the lr grid's
            range and each recipe's setting grid's range, epochs, …; its sizes are replaced by
            the target.
        out_dir: the search's directory (a study's: store, plan, exports, and `trials.csv`).
        target: the size searched, on the plan's size axis.
        search: "tpe" or "tpe_hyperband".
        budget: the compute, as a fraction of one recipe's sweep at the target (parameters ×
            samples; a pruned trial counted to its last epoch).
        base: the base size of per-layer rules (default: the bottom of `tune`'s ladder).
        seed: the sampler's seed.
        sampler_seeds: how many searches, each at the whole budget, with sampler seeds seed,
            seed + 1, …, into the same directory (a point two of them ask is trained once; each
            counts it): one search is one draw of the sampler, and the findings compare medians.
        metric: what is minimised.
        source, task, model_fn, execution: as `run_study`.

    Returns:
        The first search's best completed trial (the lowest loss of a run trained to its end), as
        `tune`'s result; every search's trials are in `trials.csv`.

    Raises:
        WdscaleError: an unknown search, a bad budget, a pruner under a schedule, Optuna missing,
            or no trial that trained to a finite loss.
    """
    if search not in SEARCHES:
        raise WdscaleError(f"unknown search {search!r}; allowed: {', '.join(SEARCHES)}")
    check_budget(budget)
    if check_positive_int("sampler_seeds", sampler_seeds) > MAX_SAMPLER_SEEDS:
        raise WdscaleError(
            f"sampler_seeds={sampler_seeds!r} is not allowed: a whole number from 1 to {MAX_SAMPLER_SEEDS}"
        )
    if search == "tpe_hyperband" and plan.schedule != "constant":
        raise WdscaleError(
            f"tpe_hyperband stops runs early, which a {plan.schedule!r} schedule does not allow (its lr at an "
            "epoch depends on the run's length): use search='tpe', or a constant schedule"
        )
    try:
        import optuna
    except ImportError:  # an optional dependency
        raise WdscaleError("the Optuna baseline needs optuna: pip install 'wdscale[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if plan.lrs is None and not plan.lr_decades:
        plan = dataclasses.replace(plan, lr_decades=2.0, lr_points_per_decade=2)
    base = base if base is not None else ladder(int(target))[0]
    # the base size stays a size of the plan (a study has two or more) with nothing trained there
    plan = dataclasses.replace(plan, sizes=sorted({base, target}), grid_sizes=[], base_size=base, seeds=1)
    # kept with its runs: the same directory searched with other arguments is refused (`run.identity`)
    arguments = dict(search=search, target=target, budget=budget, seed=seed, sampler_seeds=sampler_seeds,
                     metric=metric, plan=plan.to_dict())  # fmt: skip
    out = Path(out_dir)
    plan = keep_refined(plan, out)
    task = task if task is not None else get_task(plan.task)
    resolved = resolve(plan, task, model_fn)
    grids = coarse_grids(plan, task, model_fn)
    per_run = run_work(resolved, model_fn or task.make_model, target)
    n_points = sweep_points(resolved, grids)
    allowance = budget * n_points * per_run
    lo, hi = min(resolved.lrs), max(resolved.lrs)

    def one_search(sampler_seed: int) -> list[dict[str, Any]]:
        nonlocal plan
        pruner = (  # one per search: Hyperband keeps its brackets' state per study
            optuna.pruners.HyperbandPruner(min_resource=1, max_resource=resolved.epochs, reduction_factor=3)
            if search == "tpe_hyperband"
            else optuna.pruners.NopPruner()
        )
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=sampler_seed), pruner=pruner)
        trials: list[dict[str, Any]] = []
        spent = 0.0
        while spent + per_run <= allowance or not trials:
            trial = study.ask()
            rule = trial.suggest_categorical("rule", list(plan.rules))
            lr = float(f"{trial.suggest_float('lr', lo, hi, log=True):.4g}")
            g = grids[rule]
            setting = float(f"{trial.suggest_float(f'setting_{rule}', min(g), max(g), log=True):.4g}")
            plan = with_refined(plan, {refined_key(rule, target): {(lr, setting): 1}})
            run_study(plan, out, source=source, task=task, model_fn=model_fn, execution=execution, tune=arguments)
            run = _the_run(load_runs(out), rule, lr, setting, target)
            history = [float(v) for v in np.atleast_1d(run["history"])] if run is not None else []
            loss = float(run_losses(run.to_frame().T, metric)[0]) if run is not None else math.inf
            epochs, state = len(history) or 1, "complete"
            for k, value in enumerate(history[:-1]):  # the pruner replayed on the run's epochs
                trial.report(value if math.isfinite(value) else 1e30, k + 1)
                if trial.should_prune():
                    epochs, state = k + 1, "pruned"
                    break
            if state == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, loss if math.isfinite(loss) else 1e30)
            counted = per_run * epochs / max(1, len(history) or 1)
            spent += counted
            trials.append(dict(sampler_seed=sampler_seed, trial=trial.number, rule=rule, lr=lr, setting=setting,
                               state=state, epochs=epochs, loss=loss, work=counted))  # fmt: skip
            print(f"{search} (sampler seed {sampler_seed}): trial {trial.number} {rule} lr {lr:.4g} setting "
                  f"{setting:.4g}: {state} ({epochs} epochs), loss {loss:.4f}", file=sys.stderr)  # fmt: skip
        return trials

    table = pd.DataFrame([t for k in range(sampler_seeds) for t in one_search(seed + k)])
    table.to_csv(out / TRIALS_FILE, index=False)
    runs = load_runs(out)
    runs = runs[runs["task"] == plan.task]
    first = table[table["sampler_seed"] == seed]
    complete = first[first["state"] == "complete"]
    keep = np.zeros(len(runs), dtype=bool)
    for rule, lr, setting in complete[["rule", "lr", "setting"]].itertuples(index=False):
        keep |= _at(runs, rule, lr, setting, target)
    result = measured_result(runs[keep], plan, [base, target], target, grids, metric, resolved, per_run, budget)
    return dataclasses.replace(result, work=float(first["work"].sum()), rungs=(target,), method=search)


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
