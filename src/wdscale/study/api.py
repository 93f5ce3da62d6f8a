"""`wdscale.Study`: the same study on your own model and data."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pandas as pd
import torch
from torch import nn

from ..checks import check_positive_int
from ..errors import WdscaleError, WdscaleTypeError
from ..optim import OPTIMIZER_NAMES
from .analysis.advise import Advice, Holdout, JointAdvice, advise, advise_joint, holdout
from .analysis.joint import is_joint
from .analysis.study_analysis import StudyAnalysis, analyze
from .plan.config import RunConfig, TaskData, two_arg
from .plan.study_plan import StudyPlan, make_runs, preview
from .plan.tasks import Task, get_task
from .report.study_report import write_report
from .run.command import Command
from .run.execution import Execution
from .run.jobs import register_source
from .run.runner import RunSummary, run_study
from .run.store import load_runs
from .search.refine import RefineSummary, SeedsAt, refine_study
from .search.tune import DEFAULT_BUDGET, TuneResult, ladder, tune_study
from .train.user_loop import TrainFn


def as_task_data(data: Any) -> TaskData:
    """TaskData, a callable returning it, or a tuple (x_train, y_train, x_val, y_val) of tensors."""
    if callable(data) and not isinstance(data, TaskData):
        try:
            data = data()
        except Exception as e:  # the user's loader: say that it failed, in one line
            raise WdscaleError(
                f"the data loader {getattr(data, '__name__', data)!r} failed: "
                f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ) from e
    if isinstance(data, TaskData):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 4 and all(isinstance(t, torch.Tensor) for t in data):
        x_tr, y_tr, x_va, y_va = data
        if y_tr.dtype not in (torch.int64, torch.int32) or y_tr.ndim != 1:
            raise WdscaleTypeError(
                "y_train must be a 1-D tensor of class ids (int64); for a language model pass TaskData(objective='lm')"
            )
        if len(x_tr) != len(y_tr) or len(x_va) != len(y_va):
            raise WdscaleError(
                f"x and y lengths differ: train {len(x_tr)} vs {len(y_tr)}, val {len(x_va)} vs {len(y_va)}"
            )
        if len(y_tr) == 0 or len(y_va) == 0:
            raise WdscaleError(f"the data has {len(y_tr)} training and {len(y_va)} validation samples: give both")
        n_classes = int(max(y_tr.max(), y_va.max())) + 1
        return TaskData(x_tr, y_tr.long(), x_va, y_va.long(), n_classes=n_classes)
    raise WdscaleTypeError(
        "data must be a wdscale.study.TaskData, a function returning one, or a tuple "
        f"(x_train, y_train, x_val, y_val) of tensors; got {type(data).__name__}"
    )


def _needs_data(data: Optional[TaskData]) -> TaskData:
    if data is None:  # a study with your training function: it loads its own data
        raise WdscaleError("this study trains with your train_fn, which loads its own data: wdscale has none")
    return data


class Study:
    """A grid of sizes × decay settings × rules × seeds on a built-in task or your own model.

    >>> study = wdscale.Study(model_fn=lambda width: make_net(width), data=(x_tr, y_tr, x_va, y_va),
    ...                       sizes=[64, 256, 1024], rules=["sum", "mean", "timescale"], lr=1e-3, epochs=20,
    ...                       batch_size=128)
    >>> study.run(); study.report()

    Args:
        model_fn: your model family, called with the size (`model_fn(width)`, or
            `model_fn(width, depth)`); None for a built-in task.
        data: your data for wdscale's own loop: a TaskData, a function returning one, or
            (x_train, y_train, x_val, y_val) tensors of class ids; None for a built-in task or
            with `train_fn`.
        train_fn: your training: `train_fn(run) -> final validation loss`, called once per run
            with `run.model`, `run.optimizer` (the rule's groups), `run.config`, `run.steps`,
            `run.device`, `run.lr_lambda` and `run.report(step, val_loss)`; it loads its own data
            (then give n_train=, batch_size=, epochs= and lr=: the rules' data facts and the
            schedule's steps). See docs/your-training.md.
        command: your training script, run once per run as a subprocess: a string
            ("torchrun --nproc-per-node 2 train.py --epochs 3") or a list of arguments. The script
            calls `wdscale.current_run()` (`run.build(make_model)`, `run.finish(val_loss)`), or
            takes the run's `{lr}`, `{setting}`, `{width}`, ... from the command's templates and
            prints a last line `val_loss=<float>`. Give model_fn with it (sizes and the rule's
            groups), and n_train=, batch_size=, epochs=, lr= as with train_fn. See
            docs/your-training.md, "Your script".
        task: a built-in task (default "mnist1d_mlp"); not with model_fn.
        size_axis: "width", "depth", "n_train" or "batch_size".
        sizes: the sizes along that axis (required for your own model).
        rules: the rules to compare (`wdscale rules` lists them).
        optimizer: "sgd", "adam", "adamw" or "muon" (Muon with "match_rms_adamw" for the 2-D hidden
            matrices, AdamW for the rest; decoupled rules only; trained sequentially).
        seeds: seeds per setting.
        settings: an explicit grid of λ (or τ) per rule; else a grid placed on the same effective
            decay for every rule: by default for the run (the hidden weights' τ = 1/(η·λ) from
            100× the run's steps to a thirtieth of them, never below 2 steps).
        extend: decades of stronger (+) or weaker (-) decay added to a rule's grid.
        points_per_decade: grid points per decade.
        decades: width of a centred grid in decades (given: the grid is centred, default 3).
        anchor_total_decay: η·λ × total steps at a centred grid's centre (hidden weights, base
            size; given: the grid is centred there, default 3).
        lr: learning rate at the base size (required for your own model); in a joint study the
            fixed lr of the λ-only view.
        lrs: a joint study: base lrs swept together with the decay setting (each rule is a recipe,
            its own lr scaling applied to every base lr).
        lr_decades: a joint study: an lr grid this many decades wide centred on `lr` (0: lr fixed).
        lr_points_per_decade: lr grid points per decade with `lr_decades`.
        momentum: SGD momentum, in [0, 1).
        epochs: epochs per run (required for your own model).
        batch_size: samples per step (required for your own model).
        n_train: training samples used (default: all).
        width: the fixed width when the axis is not width (for your own model, default: the
            smallest size on a width axis).
        depth: the fixed depth when the axis is not depth.
        base_size: the size where the setting is tuned (default: the smallest).
        decay_vectors: decay biases and norm gains too.
        task_options: extra knobs of a built-in task.
        refined: points added where the decision is made, "rule@size" → [[setting, seeds], ...]
            ([setting, seeds, lr] in a joint study)
            (`Study.refine` adds them; a store's refined points are kept when it runs again).
        schedule: the lr schedule of every run: "constant", "cosine", "linear" (to zero) or "wsd"
            (warmup-stable-decay); one multiplier of every group's lr per step, so each rule's
            per-group ratios hold (`wdscale.schedules`).
        warmup: linear warmup, as a fraction of a run's steps.
        final_lr: cosine, wsd: the lr at the end as a fraction of the peak.
        decay_fraction: wsd: the fraction of a run's steps in the final decay.
        evals_per_epoch: validation evaluations per epoch, evenly spaced (the last at its end; the
            ones within on the first 1/N of the validation set): a one-pass run's curve, for a pruner.
        max_runs: refuse a plan of more runs than this (a typo in seeds or decades is caught).
        tokens_per_param: one pass over a token budget: at every size n_train = this × the
            model's parameters / `tokens_per_sample`, trained for one epoch (epochs and n_train
            then need not be given).
        shrink_cap: stop the centred grid short of decay whose per-step shrink factor
            1 − lr·weight_decay reaches 0 (runs there cannot learn); False keeps the whole grid.
        tokens_per_sample: tokens one sample trains on (a language model's context) for
            `tokens_per_param`, with your own model (a built-in task knows its own).
        grid_sizes: the sizes where the grid is trained (default: every size; elsewhere only the
            refined points are: what `tune` uses).
        first_seed: every point's first seed (its n seeds are first_seed … first_seed + n − 1;
            what `tune`'s re-scoring on fresh seeds uses).
        out: the study directory (its store, plan and report).
        name: your study's name (letters, digits, '_', '-', '.'); the task column of its runs.
        execution: where and how the runs train: backend, workers, device, batching, threads,
            progress bar (`wdscale.Execution`; default: local worker processes, one per core).

    Raises:
        WdscaleError: a bad combination (model_fn without data, task with model_fn), a missing
            required setting for your own model, or a bad value.
    """

    def __init__(
        self,
        model_fn: Optional[Callable[..., nn.Module]] = None,
        data: Any = None,
        *,
        train_fn: Optional[TrainFn] = None,
        command: Union[str, Sequence[str], None] = None,
        task: Optional[str] = None,
        size_axis: str = "width",
        sizes: Optional[list[int]] = None,
        rules: Optional[list[str]] = None,
        optimizer: str = "adamw",
        seeds: int = 3,
        settings: Optional[dict[str, list[float]]] = None,
        extend: Optional[dict[str, float]] = None,
        points_per_decade: int = 4,
        decades: Optional[float] = None,
        anchor_total_decay: Optional[float] = None,
        lr: Optional[float] = None,
        lrs: Optional[list[float]] = None,
        lr_decades: float = 0.0,
        lr_points_per_decade: int = 2,
        momentum: float = 0.9,
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        n_train: Optional[int] = None,
        width: Optional[int] = None,
        depth: Optional[int] = None,
        base_size: Optional[int] = None,
        decay_vectors: bool = False,
        task_options: Optional[dict[str, Any]] = None,
        refined: Optional[dict[str, list[list[float]]]] = None,
        schedule: str = "constant",
        warmup: float = 0.0,
        final_lr: float = 0.0,
        decay_fraction: float = 0.2,
        evals_per_epoch: int = 1,
        grid_sizes: Optional[list[int]] = None,
        max_runs: int = 200_000,
        tokens_per_param: Optional[float] = None,
        tokens_per_sample: int = 1,
        shrink_cap: bool = True,
        first_seed: int = 0,
        out: Union[str, Path] = "wdscale-study",
        name: str = "custom",
        execution: Optional[Execution] = None,
    ) -> None:
        parsed = None
        if command is not None:
            if train_fn is not None or data is not None:
                raise WdscaleError(
                    "command= trains each run in your script: give model_fn (your model family, for the sizes and "
                    "the rule's groups) and neither data nor train_fn"
                )
            if model_fn is None:
                raise WdscaleError("command= needs model_fn too: your model family, called with the size")
            parsed = Command.parse(command)
        if train_fn is not None and not callable(train_fn):
            raise WdscaleTypeError(f"train_fn must be a function train_fn(run) -> float, not {type(train_fn).__name__}")
        if train_fn is not None and model_fn is None:
            raise WdscaleError(
                "train_fn trains your model: give model_fn too (your model family, called with the size)"
            )
        if train_fn is None and command is None and (model_fn is None) != (data is None):
            raise WdscaleError(
                "give both model_fn and data (your own model), model_fn and train_fn (your own training), or "
                "neither (a built-in task)"
            )
        if model_fn is not None and task is not None:
            raise WdscaleError("give either task= or model_fn/data, not both")
        self.out = Path(out)
        if execution is not None and not isinstance(execution, Execution):
            raise WdscaleTypeError(f"execution must be a wdscale.Execution, not {type(execution).__name__}")
        self.execution = execution or Execution()
        plan: dict[str, Any] = dict(
            size_axis=size_axis, sizes=sizes, optimizer=optimizer, seeds=seeds, settings=settings,
            extend=extend or {}, points_per_decade=points_per_decade, decades=decades,
            anchor_total_decay=anchor_total_decay, lr=lr, lrs=lrs, lr_decades=lr_decades,
            lr_points_per_decade=lr_points_per_decade, momentum=momentum, epochs=epochs,
            batch_size=batch_size, n_train=n_train, width=width, depth=depth, base_size=base_size,
            decay_vectors=decay_vectors, task_options=task_options or {}, refined=refined or {},
            schedule=schedule, warmup=warmup, final_lr=final_lr, decay_fraction=decay_fraction,
            evals_per_epoch=evals_per_epoch, grid_sizes=grid_sizes, max_runs=max_runs,
            tokens_per_param=tokens_per_param, shrink_cap=shrink_cap, first_seed=first_seed,
        )  # fmt: skip
        if rules is not None:
            plan["rules"] = rules
        if model_fn is None:
            self.plan = StudyPlan(task=task or "mnist1d_mlp", **plan)
            self.task = get_task(self.plan.task)
            self.source = None
            self.model_fn = None
            return
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise WdscaleError(f"name {name!r} may hold letters, digits, '_', '-' and '.' only")
        task_data = as_task_data(data) if data is not None else None
        if not sizes:
            raise WdscaleError("give sizes=[...] for your own model (e.g. widths 64 to 1024)")
        width = width or (min(sizes) if size_axis == "width" else None)
        if width is None:
            raise WdscaleError(f"give width= (the fixed width) for a study along {size_axis!r}")
        one_pass = tokens_per_param is not None  # epochs 1, n_train from each size's parameters
        needed: list[tuple[str, Any]] = [("lr", lr), ("epochs", 1 if one_pass else epochs), ("batch_size", batch_size)]
        if task_data is None and not one_pass:  # the rules' data facts: wdscale does not see your data
            needed.append(("n_train", n_train if size_axis != "n_train" else sizes))
        for key, value in needed:
            if value is None:
                why = (
                    "the rules' data facts (N, B, epochs) and the schedule's steps come from the study's arguments"
                    if task_data is None
                    else "the built-in tasks have defaults, yours does not"
                )
                raise WdscaleError(f"give {key}= for your own {'training' if task_data is None else 'model'} ({why})")
        assert lr is not None and batch_size is not None  # checked just above
        check_positive_int("tokens_per_sample", tokens_per_sample)
        self.model_fn = two_arg(model_fn, size_axis)
        self.plan = StudyPlan(task=name, **{**plan, "width": width})
        self.task = Task(
            name=name,
            description="your own model and data",
            objective=task_data.objective if task_data is not None else "classification",
            default_widths=tuple(sizes),
            base_width=width,
            default_depth=depth or 1,
            default_n_train=task_data.n_train if task_data is not None else int(n_train or max(sizes)),
            default_batch_size=batch_size,
            default_epochs=epochs or 1,
            default_lr=dict.fromkeys(OPTIMIZER_NAMES, lr),
            loader=lambda seed=0: _needs_data(task_data),
            model_factory=self.model_fn,
            tokens_per_sample=tokens_per_sample,
        )
        self.source = register_source(name, self.model_fn, task_data, train_fn, parsed)

    def runs(self) -> list[RunConfig]:
        """The planned runs.

        Raises:
            WdscaleError: a bad plan, or a model_fn that fails at some size.
        """
        return make_runs(self.plan, self.task, self.model_fn)

    def preview(self) -> str:
        """The plan before anything trains: each rule's grid as its setting and as τ in fractions
        of the run, the run count and the compute (`wdscale study run --dry-run`).

        Raises:
            WdscaleError: a bad plan, or a model_fn that fails at some size.
        """
        return preview(self.plan, self.task, self.model_fn)

    def run(self, *, progress: Optional[bool] = None, retry_failed: bool = False) -> RunSummary:
        """Train every planned run not yet in the store (the same call again resumes).

        Args:
            progress: show a progress bar (default: the study's `execution.progress`).
            retry_failed: train again the runs stored as failed.

        Returns:
            How many runs were planned, already stored, and trained now, by status.

        Raises:
            WdscaleError: anything that would make the runs wrong, before any run starts.
        """
        return run_study(
            self.plan,
            self.out,
            source=self.source,
            task=self.task,
            model_fn=self.model_fn,
            execution=self._execution(progress),
            retry_failed=retry_failed,
        )

    def refine(
        self, *, points: int = 3, max_seeds: int = 6, seeds_at: SeedsAt = "all", progress: Optional[bool] = None
    ) -> RefineSummary:
        """Add runs where the decision is made, after `run`: a finer grid (`points` steps per
        coarse step) out to one coarse step around each size's measured optimum; seeds up to
        `max_seeds` at the optimum and the settings within noise of it (at every size, or with
        `seeds_at="ends"` only at the smallest and largest); the proxy's (smallest size's)
        optimum trained at every larger size. The plan grows to hold them (kept in the
        store); nothing stored is trained again. See `wdscale.study.search.refine`.

        Returns:
            The grown plan, the runs added and their core-seconds against the coarse grid's.

        Raises:
            WdscaleError: a bad value, or a study with no trained runs yet.
        """
        summary = refine_study(
            self.plan,
            self.out,
            points=points,
            max_seeds=max_seeds,
            seeds_at=seeds_at,
            source=self.source,
            task=self.task,
            model_fn=self.model_fn,
            execution=self._execution(progress),
        )
        self.plan = summary.plan
        return summary

    def tune(
        self,
        target: int,
        *,
        rungs: Optional[list[int]] = None,
        seeds: int = 1,
        max_seeds: int = 4,
        budget: Optional[float] = DEFAULT_BUDGET,
        bottom_seeds: int = 1,
        method: str = "ladder",
        rescore_seeds: int = 0,
        progress: Optional[bool] = None,
    ) -> TuneResult:
        """The best (lr, setting) for size `target`, by climbing a ladder of sizes (default
        target/16, target/4, target): a joint grid per recipe (each rule) at the bottom, the
        recipes within noise of the best climbing, a few points placed at each rung above from
        what the rungs below measured, and as many candidates at the target as the budget allows.
        The rungs are the study's sizes where they reach the target (those below it, then the
        target), else the ladder (said on stderr); the Study itself is not changed. Its lr grid
        (`lrs`, `lr_decades`; default 2 decades) and setting grid are the bottom rung's. Resumable
        like `run` (see `wdscale.study.search.tune`).

        Args:
            target: the size to tune for, on the study's size axis.
            rungs: the sizes climbed, ending at the target (default: the study's sizes, see above).
            seeds: seeds per candidate at the target.
            max_seeds: the most a candidate at the target gets while the best two are within noise.
            budget: the climb's compute as a fraction of one recipe's sweep at the target (default
                0.1; None: no limit but max_seeds).
            bottom_seeds: seeds per point of the bottom grid.
            method: "ladder" (the climb), or a peer it is measured against: "mutransfer" (μP's
                bottom grid, its best carried to the target, one run there) or "laws" (the lower
                rungs climbed, then the laws' point, one run at the target).
            rescore_seeds: re-train the pick on this many fresh seeds at the target and score it
                there (stored apart, in the directory's `rescore/`; 0: none).
            progress: show progress bars (default: the study's execution).

        Returns:
            The recommended recipe and point, its loss measured at the target with a 90 %
            interval, the candidates, the compute spent and a sweep's.

        Raises:
            WdscaleError: a bad value, an unknown method, or no candidate that trained at the target.
        """
        rungs = rungs or self._rungs(int(target))
        return tune_study(
            self.plan,
            self.out,
            int(target),
            rungs=rungs,
            seeds=seeds,
            max_seeds=max_seeds,
            budget=budget,
            bottom_seeds=bottom_seeds,
            method=method,
            rescore_seeds=rescore_seeds,
            source=self.source,
            task=self.task,
            model_fn=self.model_fn,
            execution=self._execution(progress),
        )

    def _rungs(self, target: int) -> Optional[list[int]]:
        """The study's sizes below the target, then the target, where they reach it (and hold one
        below it); else None (the ladder), said on stderr."""
        sizes = sorted(set(self.plan.sizes or ()))
        below = [s for s in sizes if s < target]
        if sizes and sizes[-1] >= target and below:
            return [*below, target]
        if sizes:
            print(
                f"tune: the study's sizes {', '.join(map(str, sizes))} do not reach {target} from below: climbing "
                f"the ladder {', '.join(map(str, ladder(target)))} (give rungs= to choose)",
                file=sys.stderr,
            )
        return None

    def _execution(self, progress: Optional[bool]) -> Execution:
        return self.execution if progress is None else dataclasses.replace(self.execution, progress=progress)

    def results(self) -> pd.DataFrame:
        """All stored runs, one row each (from the store, or its runs.parquet export)."""
        return load_runs(self.out)

    def analyze(self, metric: str = "val_loss") -> StudyAnalysis:
        """The optimum per size, its drift and the transfer regret per rule (`analysis.analyze`)."""
        return analyze(self.results(), metric=metric)

    def report(self, title: Optional[str] = None) -> dict[str, Path]:
        """Write report.md, report.html and figures/ into the study directory.

        Returns:
            The paths written ("md", "html", and each figure's relative path).
        """
        return write_report(self.results(), self.out, title=title or f"wdscale study: {self.plan.task}")

    def advise(self, target: int, metric: str = "val_loss") -> Union[Advice, JointAdvice]:
        """Each rule's optimum predicted at size `target` on the study's size axis, with its 90 %
        interval, and the rule with the smallest measured transfer regret (`advise.advise`);
        `print()` it. With a built-in task or your model_fn, the recommended rule's per-group
        settings at the target are in its table. A joint study (lrs swept) predicts each recipe's
        lr and setting (`advise.advise_joint`)."""
        runs = self.results()
        if is_joint(runs):
            return advise_joint(runs, int(target), metric=metric)
        return advise(runs, int(target), axis=self.plan.size_axis, model_factory=self.task.make_model, metric=metric)

    def holdout(self, metric: str = "val_loss") -> list[Holdout]:
        """The laws refitted without the largest size and checked against the runs trained there."""
        return holdout(self.results(), metric=metric)
