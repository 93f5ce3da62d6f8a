"""Replay: `tune_study` climbed on a committed joint sweep, its runs answered by the sweep's, nothing trained.

A change to the ladder is kept only if it does better where it can be measured, and training a
ladder at every target for every change is hours; a joint sweep (every recipe's lr × setting grid
trained at every size, 2+ seeds a point, some points refined) already holds most runs a ladder asks
for. `replay_tune` climbs `tune_study` with a `SweepOracle` as its trainer: each run the ladder asks
for — (rule, size, lr, setting, seed) — is answered by the sweep's stored run there:

- **the point**: the sweep's point of that rule and size whose lr and setting both lie within
  `rtol` (relative, default 1e-3: the grids hold 4 significant digits, so a lattice point placed
  by the ladder and the sweep's grid point that means the same differ by ~2e-4) — the nearest in
  log where two do (a coarse point and a refined one rounded apart);
- **the seed**: the ladder's k-th seed of a point (k = seed − the plan's first seed) is the sweep's
  k-th seed there, in the order `shuffle` draws (0: the sweep's own order; any other value ranks
  the sweep's seeds by keys drawn from it and the size, so a replay repeated with other shuffles
  gives the spread a ladder's luck of the seeds has). The order is one per size, not per point:
  in the sweep as in a ladder, seed k is one initialisation and data order at every point of a
  size (the training code seeds the model's init and the batch order from the run's seed alone,
  whatever its lr, setting or rule), and the points a rung compares share it (paired), which a
  shuffle keeps. A point refined to more seeds holds the coarse points' seeds and more, so a
  shuffle orders a size's seeds by how many of its points hold them first (the seeds every point
  holds, in the shuffle's order, then the next): the ladder's seed k is then one sweep seed at
  every point of the size that holds k + 1 seeds, never the first seed at one point and a
  refined point's fifth at another;
- **unavailable**: a point the sweep never trained, or a seed beyond those it trained there, is
  answered as a run that *failed* (status "failed", no loss): the ladder ignores it as it ignores a
  run that crashed (nothing learned about the point: it is neither good nor diverged), but it is
  charged its compute (parameters × samples at that size), as a real run would be. The oracle
  counts them (`SweepOracle.unavailable`): a replay that asked for many points off the sweep
  measured a different ladder from the one that trains.

The run's other facts (width, depth, n_train, epochs, base width, schedule) must match the
sweep's at that rule and size, or the sweep is no oracle for the plan and the replay refuses.
The pick is scored as §10 scores a tune (`sweep_gap`): the sweep's seed-mean loss at the pick
against the sweep's best seed-mean at the target over every recipe — the sweep's own seeds at the
pick, not the ladder's (which are a subset of them), so a pick that is good only on the seeds it
drew is not flattered.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from ...errors import WdscaleError
from ..analysis.study_analysis import run_losses
from ..plan.config import ModelFn
from ..plan.study_plan import StudyPlan, coarse_grids, make_runs, resolve
from ..plan.tasks import Task, get_task
from ..run.store import load_runs
from .refine import log_step
from .tune import DEFAULT_BUDGET, TuneResult, tune_study

DEFAULT_RTOL = 1e-3
FACTS = ("width", "depth", "n_train", "epochs", "base_width", "base_depth", "optimizer", "schedule")
UNAVAILABLE = "not in the sweep (replay): a point or seed the sweep never trained"


class SweepOracle:
    """A committed sweep's runs, answering a tune's plans in place of training (see the module).

    Args:
        sweep: the sweep's runs (one or more studies' `load_runs`, concatenated; a run of the same
            rule, size, lr, setting and seed in two is kept once, the first).
        task, model_fn: the task and model the plans are made with (as `tune_study`'s).
        shuffle: 0: the ladder's k-th seed of a point is the sweep's k-th; else the sweep's seeds
            there ranked by how many of the size's points hold them, then by keys drawn from
            (shuffle, the size, the seed): one order per size.
        paired: False: the seeds ranked by the keys alone, as the replay did before pairing was
            kept (a point refined to six seeds may then answer the ladder's first seed with one
            the coarse points lack): kept to compare a measurement with the earlier one.
        rtol: how near (relative) a planned lr and setting must lie to the sweep's to be its point.
    """

    def __init__(
        self,
        sweep: pd.DataFrame,
        task: Task,
        model_fn: Optional[ModelFn] = None,
        *,
        shuffle: int = 0,
        rtol: float = DEFAULT_RTOL,
        paired: bool = True,
    ) -> None:
        sweep = sweep[sweep["status"] != "failed"]
        sweep = sweep.drop_duplicates(["rule", "size", "lr", "setting", "seed"]).reset_index(drop=True)
        self.sweep = sweep
        self.task, self.model_fn, self.shuffle, self.rtol = task, model_fn, int(shuffle), float(rtol)
        self.paired = bool(paired)
        self.points: dict[tuple[str, int], pd.DataFrame] = {}
        for (rule, size), g in sweep.groupby(["rule", "size"]):
            per_point = g.sort_values("seed").groupby(["lr", "setting"]).apply(lambda p: list(p.index))
            self.points[(str(rule), int(size))] = per_point.rename("rows").reset_index()
        # per size, how many of its points hold each seed: a shuffle orders the seeds every point holds first
        self.holders: dict[int, dict[int, int]] = {
            int(size): g.groupby("seed")[["rule", "lr", "setting"]].apply(len).astype(int).to_dict()
            for size, g in sweep.groupby("size")
        }
        self.answered: dict[tuple, dict[str, Any]] = {}  # the runs asked for so far, by key
        self.unavailable = 0  # of them, the ones the sweep did not hold
        self.unavailable_at: dict[int, int] = {}  # … per size
        self.asked = 0

    def __call__(self, plan: StudyPlan) -> pd.DataFrame:
        """Every run of `plan`, answered from the sweep.

        Args:
            plan: the tune's plan so far (its grid and placed points).

        Returns:
            Every run answered so far, one row each, as `load_runs` returns a study's runs.

        Raises:
            WdscaleError: a rule and size the sweep never trained, or a run whose facts differ.
        """
        for c in make_runs(plan, self.task, self.model_fn):
            key = (c.rule, c.size, c.lr, c.setting, c.seed)
            if key not in self.answered:
                self.answered[key] = self._answer(c, c.seed - plan.first_seed)
        return pd.DataFrame(list(self.answered.values()))

    def _answer(self, c: Any, k: int) -> dict[str, Any]:
        """One planned run (a RunConfig; `k`: its seed's index from the plan's first) answered."""
        self.asked += 1
        points = self.points.get((c.rule, c.size))
        if points is None:
            raise WdscaleError(f"the sweep holds no run of {c.rule} at {c.size_axis} {c.size}: it is no oracle here")
        rows = self._rows(points, c.lr, c.setting)
        some = self.sweep.loc[points["rows"].iloc[0][0]]
        for name in FACTS:
            if str(getattr(c, name)) != str(some[name]):
                raise WdscaleError(
                    f"the plan's run of {c.rule} at {c.size_axis} {c.size} has {name}={getattr(c, name)!r}, the "
                    f"sweep's {some[name]!r}: the sweep is no oracle for this plan"
                )
        if rows is not None and k < len(rows):
            row = self.sweep.loc[self._ordered(rows, int(c.size))[k]].to_dict()
        else:
            self.unavailable += 1
            self.unavailable_at[int(c.size)] = self.unavailable_at.get(int(c.size), 0) + 1
            at = self.sweep[self.sweep["size"] == c.size]
            row = dict(some, status="failed", error=UNAVAILABLE, wall_time=float(at["wall_time"].median()))
            for metric in ("train_loss", "val_loss", "best_val_loss", "val_acc", "best_val_acc"):
                row[metric] = math.nan
        # the ladder's own lattice values and seed, so its points read back as it placed them
        row.update(rule=c.rule, size=c.size, lr=c.lr, setting=c.setting, seed=c.seed, run_id=c.run_id)
        return row

    def _rows(self, points: pd.DataFrame, lr: float, setting: float) -> Optional[list[int]]:
        """The sweep's rows (seed order) of its point nearest (lr, setting) within rtol, or None."""
        d_lr = np.abs(np.log(points["lr"].to_numpy(float) / lr))
        d_s = np.abs(np.log(points["setting"].to_numpy(float) / setting))
        near = (d_lr <= math.log1p(self.rtol)) & (d_s <= math.log1p(self.rtol))
        if not near.any():
            return None
        i = int(np.argmin(np.where(near, d_lr + d_s, np.inf)))
        return list(points["rows"].iloc[i])

    def _ordered(self, rows: list[int], size: int) -> list[int]:
        """A point's rows in the order the ladder's seeds take them: the sweep's seed order with
        shuffle 0, else the seeds held by more of the size's points first and, among those held
        by as many, by a key per (shuffle, size, seed): every point of a size shares the order, and
        the ladder's k-th seed is one sweep seed at every point holding k + 1 (paired)."""
        if self.shuffle == 0:
            return rows
        seeds = self.sweep.loc[rows, "seed"].to_numpy(int)
        holders = self.holders[size] if self.paired else {}
        keys = [(-holders.get(int(s), 0), np.random.default_rng([self.shuffle, size, int(s)]).random()) for s in seeds]
        return [rows[i] for i in sorted(range(len(rows)), key=lambda i: keys[i])]


@dataclass(frozen=True)
class Replay:
    """A tune replayed on a sweep and scored there.

    result: what `tune_study` returned (its pick, candidates and compute, the ladder's seeds);
    None where every candidate it asked for at the target was off the sweep (no answer: the replay
    cannot say what the ladder would have found). pick_loss: the sweep's seed-mean loss at the pick
    (every seed it trained there; +inf where a seed diverged; nan without a result); best_loss: the
    sweep's lowest seed-mean loss at the target over every recipe; gap: pick_loss / best_loss − 1.
    asked, unavailable: the runs the ladder asked for, and those the sweep did not hold (answered
    as failed); at_target: of those, the ones at the target (a candidate the ladder ranked first
    but the sweep lacks leaves the pick to the next: the replay then measures another ladder).
    """

    result: Optional[TuneResult]
    pick_loss: float
    best_loss: float
    gap: float
    asked: int
    unavailable: int
    at_target: int = 0


def sweep_means(sweep: pd.DataFrame, size: int, metric: str = "val_loss") -> pd.DataFrame:
    """Per (rule, lr, setting) at `size`: the sweep's seed-mean loss (+inf where a seed diverged or
    did not learn; failed runs dropped) and its seeds, as §10's table counts them.

    Args:
        sweep: the sweep's runs.
        size: the size.
        metric: the loss.

    Returns:
        Columns rule, lr, setting, mean, n.
    """
    at = sweep[(sweep["size"] == size) & (sweep["status"] != "failed")]
    at = at.assign(loss=run_losses(at, metric))
    g = at.groupby(["rule", "lr", "setting"])["loss"]
    return pd.DataFrame({"mean": g.mean(), "n": g.size()}).reset_index()


def sweep_gap(
    sweep: pd.DataFrame, target: int, rule: str, lr: float, setting: float, *, metric: str = "val_loss",
    rtol: float = DEFAULT_RTOL,
) -> tuple[float, float, float]:  # fmt: skip
    """A pick at the target scored on the sweep: (the sweep's seed-mean at the pick, the sweep's best
    seed-mean there over every recipe, their gap: pick / best − 1). The pick's point is the sweep's
    nearest within rtol (nan, with a nan gap, where the sweep has none).

    Args:
        sweep: the sweep's runs.
        target: the size scored at.
        rule, lr, setting: the pick.
        metric: the loss.
        rtol: how near the sweep's lr and setting must lie to the pick's.

    Returns:
        (pick_loss, best_loss, gap).
    """
    m = sweep_means(sweep, target, metric)
    if m.empty:
        raise WdscaleError(f"the sweep holds no run at size {target}")
    best = float(m["mean"].min())
    mine = m[(m["rule"] == rule) & np.isclose(m["lr"], lr, rtol=rtol) & np.isclose(m["setting"], setting, rtol=rtol)]
    if mine.empty:
        return math.nan, best, math.nan
    d = np.abs(np.log(mine["lr"] / lr)) + np.abs(np.log(mine["setting"] / setting))
    pick = float(mine.loc[d.idxmin(), "mean"])
    return pick, best, pick / best - 1


def lattice_gap(
    sweep: pd.DataFrame, plan: StudyPlan, target: int, rungs: list[int], *, task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None, metric: str = "val_loss",
) -> float:  # fmt: skip
    """The floor of any climb on this lattice: the gap of the sweep's best seed-mean at the target
    among its points on the climb's lattice (every point a ladder places lies on it: the bottom
    grid's lr and setting steps, from its anchors) to its best over every point (a refined point
    between the lattice's may be lower).

    Args:
        sweep: the sweep's runs.
        plan: the tune's plan.
        target: the size scored at.
        rungs: the ladder (its first rung is the base the grids are made at).
        task, model_fn: as `tune_study`'s.
        metric: the loss.

    Returns:
        best on the lattice / best − 1 (inf where no lattice point at the target is finite).
    """
    task = task if task is not None else get_task(plan.task)
    base = dataclasses.replace(plan, sizes=sorted(rungs), grid_sizes=[min(rungs)], base_size=min(rungs))
    resolved = resolve(base, task, model_fn)
    grids = coarse_grids(base, task, model_fn)
    lr_step = 1.0 / base.lr_points_per_decade
    m = sweep_means(sweep, target, metric)
    best = float(m["mean"].min())

    def on(value: float, anchor: float, step: float) -> bool:
        k = math.log10(value / anchor) / step
        return abs(k - round(k)) * step < math.log10(1 + DEFAULT_RTOL)

    keep = [
        rule in grids and on(lr, resolved.lr, lr_step) and on(setting, grids[rule][0], log_step(grids[rule]))
        for rule, lr, setting in m[["rule", "lr", "setting"]].itertuples(index=False)
    ]
    return float(m.loc[keep, "mean"].min()) / best - 1 if any(keep) else math.inf


def sweep_plan(study_dir: Union[str, Path]) -> StudyPlan:
    """A committed sweep's plan as a tune's starting plan: its refined points dropped (the tune
    places its own) and its sizes left for the ladder to replace.

    Args:
        study_dir: the sweep's directory (its plan.json).

    Returns:
        The plan, as `tune_study` takes it.
    """
    plan = StudyPlan.from_stored(json.loads((Path(study_dir) / "plan.json").read_text()))
    return dataclasses.replace(plan, refined={}, grid_sizes=None)


def load_sweep(study_dirs: Union[str, Path, list[Union[str, Path]]]) -> pd.DataFrame:
    """One or more committed studies' runs, concatenated (the first's run kept where two hold the
    same rule, size, lr, setting and seed): studies of one preset at different sizes make one
    sweep with more rungs (joint_width's 128 beside joint_width_1024's 1024).

    Args:
        study_dirs: one study directory or several (of one preset: the oracle refuses a run whose
            width, epochs, … differ from the plan's).

    Returns:
        Their runs, one row each.
    """
    dirs = [study_dirs] if isinstance(study_dirs, (str, Path)) else list(study_dirs)
    runs = pd.concat([load_runs(d) for d in dirs], ignore_index=True)
    return runs.drop_duplicates(["rule", "size", "lr", "setting", "seed"]).reset_index(drop=True)


def replay_tune(
    sweep: pd.DataFrame,
    plan: StudyPlan,
    target: int,
    *,
    rungs: Optional[list[int]] = None,
    budget: Optional[float] = DEFAULT_BUDGET,
    shuffle: int = 0,
    rtol: float = DEFAULT_RTOL,
    paired: bool = True,
    metric: str = "val_loss",
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    **tune_options: Any,
) -> Replay:
    """`tune_study` climbed with the sweep as its oracle (nothing trained), its pick scored on the sweep.

    Args:
        sweep: the sweep's runs (`load_sweep`), holding every rung's grid.
        plan: the tune's plan (`sweep_plan`: the sweep's, its refined points dropped).
        target: the size tuned for (the sweep's reference).
        rungs: the sizes climbed, the target last: sizes the sweep trained (default `ladder`'s).
        budget: as `tune_study`'s.
        shuffle: which seeds of the sweep answer the ladder's (`SweepOracle`).
        paired: False: the earlier seed order, which does not keep a size's points paired
            (`SweepOracle`).
        rtol: how near a planned point must lie to the sweep's.
        metric: what is minimised and scored.
        task, model_fn: as `tune_study`'s (default: the plan's task).
        tune_options: any other `tune_study` keyword (seeds, max_seeds, the ladder's variants).

    Returns:
        The tune's result, its pick's loss on the sweep against the sweep's best, the gap, and how
        many of the runs it asked for the sweep did not hold (no result, a nan gap, where the sweep
        held none of its candidates at the target).

    Raises:
        WdscaleError: what `tune_study` refuses (a budget below its bottom grid's), or a sweep that
            is no oracle for the plan.
    """
    task = task if task is not None else get_task(plan.task)
    oracle = SweepOracle(sweep, task, model_fn, shuffle=shuffle, rtol=rtol, paired=paired)
    with tempfile.TemporaryDirectory(prefix="wdscale-replay-") as out:  # stays empty: nothing is stored
        try:
            result = tune_study(plan, Path(out) / "tune", target, rungs=rungs, budget=budget, metric=metric,
                                task=task, model_fn=model_fn, trainer=oracle, **tune_options)  # fmt: skip
        except WdscaleError as e:
            if "no candidate trained at the target" not in str(e) or not oracle.unavailable_at.get(target):
                raise
            best = float(sweep_means(sweep, target, metric)["mean"].min())
            return Replay(
                None, math.nan, best, math.nan, oracle.asked, oracle.unavailable, oracle.unavailable_at[target]
            )
    pick, best, gap = sweep_gap(sweep, target, result.rule, result.lr, result.setting, metric=metric, rtol=rtol)
    return Replay(result, pick, best, gap, oracle.asked, oracle.unavailable, oracle.unavailable_at.get(target, 0))
