"""The driver: a study's plan -> jobs -> a backend (local processes by default) -> the store.

A job (`jobs.py`) is either a batch of runs that differ only in hyperparameters and seed (trained together by
the batched engine) or a single run (the sequential torch.optim loop). Which one follows from the
model's structure and size (`engine.choose_path`), and every run trains with the same intra-op
thread count in every backend, so a run's numbers follow from its config, path and threads (all
three stored with it) and not from the worker count, the backend or a timing. Every finished run
is committed to the store the moment its result arrives.

One store holds one plan: a plan may grow (more sizes, rules, seeds, `--extend`) but a stored run
that the new plan does not contain is refused; one driver at a time (a lock file); workers die with
their driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from ...errors import WdscaleError
from ..plan.config import ModelFn, RunConfig, RunResult, TaskData
from ..plan.study_plan import StudyPlan, describe, make_runs, refined_point, with_refined
from ..plan.tasks import Task, get_task
from ..train.loop import logits_of
from .command import check_flags_only
from .execution import DEFAULT_EXECUTION, Execution
from .identity import check_identity, trained_by
from .jobs import Source, cut_jobs, resolve_source
from .processes import config_label
from .store import Store

log = logging.getLogger("wdscale.study")


@dataclass
class RunSummary:
    planned: int
    already_done: int
    ran: int
    statuses: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    off_plan_steps: int = 0  # finished runs whose optimizer steps differ from the plan's


# a diverged run stops early and a failed one wherever it raised: only a run that finished counts as
# off the plan's steps (its rules' data facts and schedule assumed the plan's)
_FINISHED = ("ok", "not_learned")


def steps_off_plan(config: RunConfig, result: RunResult) -> bool:
    """A finished run whose optimizer steps differ from the plan's (`config.total_steps`)."""
    return result.status in _FINISHED and result.steps != config.total_steps


def describe_counts(summary: RunSummary) -> str:
    """'3 ok, 1 failed; 2 off the plan's steps': the end-of-study line's counts."""
    text = ", ".join(f"{v} {k}" for k, v in summary.statuses.items())
    if summary.off_plan_steps:
        text += f"; {summary.off_plan_steps} off the plan's steps"
    return text


def check_data(data: TaskData) -> None:
    """The data's shapes, labels and values, before any run (each of these failed every run, or
    made every run diverge, one by one): one error naming what is wrong."""
    for split, x, y in (("train", data.x_train, data.y_train), ("val", data.x_val, data.y_val)):
        if len(x) == 0:
            raise WdscaleError(f"x_{split} is empty: a study needs training and validation samples")
        if len(x) != len(y):
            raise WdscaleError(f"x_{split} has {len(x)} samples and y_{split} {len(y)}: they must match")
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum()) if x.ndim > 1 else int((~torch.isfinite(x)).sum())
            raise WdscaleError(f"x_{split} holds NaN or infinite values (in {bad} of its samples): clean or drop them")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= data.n_classes:
            raise WdscaleError(
                f"y_{split} holds labels {lo}..{hi}; with {data.n_classes} classes they must lie in "
                f"0..{data.n_classes - 1}"
            )
    if tuple(data.x_val.shape[1:]) != tuple(data.x_train.shape[1:]):
        raise WdscaleError(
            f"x_val's samples have shape {tuple(data.x_val.shape[1:])}, x_train's {tuple(data.x_train.shape[1:])}: "
            "they must match"
        )
    if tuple(data.y_val.shape[1:]) != tuple(data.y_train.shape[1:]):
        raise WdscaleError(
            f"y_val's samples have shape {tuple(data.y_val.shape[1:])}, y_train's {tuple(data.y_train.shape[1:])} "
            f"({'one class id per sample' if data.y_train.ndim == 1 else 'one token id per position'}): they must match"
        )


def check_output(data: TaskData, model: nn.Module, where: str) -> None:
    """One forward on two training samples: the model's output must fit the data (one error up
    front, instead of every run failing the same way)."""
    x, y = data.x_train[:2], data.y_train[:2]
    try:
        with torch.no_grad():
            out = logits_of(model(x))
    except Exception as e:
        raise WdscaleError(
            f"the model at {where} fails on the data's inputs {tuple(x.shape)}: "
            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        ) from None
    want = (*y.shape, data.n_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise WdscaleError(
            f"the model at {where} returns {got} for inputs {tuple(x.shape)}; {data.objective} data "
            f"with {data.n_classes} classes needs logits of shape {want}"
        )


def make_study_dir(out: Path) -> None:
    """The study directory, made if missing, and writable: one clear error otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WdscaleError(f"cannot create the study directory {str(out)!r}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise WdscaleError(f"the study directory {str(out)!r} is not writable")


@contextlib.contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """One driver per study directory: a second `study run` on the same --out is refused (it would
    train the same runs again). The lock is the kernel's (flock), so a killed driver releases it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = out / ".wdscale.lock"
    # the lock is on the directory itself, so deleting the lock file (which only names the holder)
    # cannot let a second driver in
    dir_fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = path.read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise WdscaleError(
                f"another `wdscale study run` ({holder}) is running on {str(out)!r}; "
                "wait for it to finish (it stores every run), or use another --out"
            ) from None
        path.write_text(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        try:
            yield
        finally:
            fcntl.flock(dir_fd, fcntl.LOCK_UN)
    finally:
        os.close(dir_fd)


def check_plan_fits_store(store: Store, runs: Sequence[RunConfig], out: Path) -> None:
    """Every stored run must belong to the plan: a plan may grow (sizes, rules, seeds, --extend),
    but one that changes what a run means (epochs, lr, task, ...) would mix two studies."""
    planned = {c.run_id for c in runs}
    foreign = sorted(store.done_ids() - planned)
    if not foreign:
        return
    stored = store.configs(foreign[:200])
    diffs = []
    for f in dataclasses.fields(RunConfig):
        was = {getattr(c, f.name) for c in stored}
        now = {getattr(c, f.name) for c in runs}
        if not was <= now:
            was_s = ", ".join(sorted(map(str, was - now))[:3])
            now_s = ", ".join(sorted(map(str, now))[:3]) + (", ..." if len(now) > 3 else "")
            diffs.append(f"{f.name} {was_s} there, {now_s} here")
    why = "; ".join(diffs[:4]) or "other grid settings"
    raise WdscaleError(
        f"{str(out)!r} holds {len(foreign)} run(s) of another plan ({why}). A study directory holds "
        "one plan: use another --out, or the plan it was made with (its plan.json); a plan may grow "
        "(more sizes, rules, seeds, --extend) but not change"
    )


def keep_refined(plan: StudyPlan, out: Path) -> StudyPlan:
    """The plan with the refined points (`wdscale study refine`) its study directory's store
    already holds, for the rules and sizes it still has: running a refined study again with the
    plan it was made with resumes it, and does not refuse its refined runs."""
    if not (out / "runs.sqlite").is_file():
        return plan
    with Store(out / "runs.sqlite", readonly=True) as store:
        stored = store.plan()
    kept = (stored or {}).get("refined") or {}
    if not kept:
        return plan
    rules = set(plan.rules)
    sizes = None if plan.sizes is None else set(plan.sizes)

    def still_planned(key: str) -> bool:
        rule, _, size = key.partition("@")
        return rule in rules and size.isdigit() and (sizes is None or int(size) in sizes)

    return with_refined(
        plan, {k: {refined_point(e): int(e[1]) for e in pts} for k, pts in kept.items() if still_planned(k)}
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the driver like Ctrl-C: workers are killed, the store is closed cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def run_study(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    *,
    source: Optional[Source] = None,
    task: Optional[Task] = None,
    model_fn: Optional[ModelFn] = None,
    execution: Execution = DEFAULT_EXECUTION,
    retry_failed: bool = False,
    tune: Optional[dict[str, Any]] = None,
) -> RunSummary:
    """Plan → runs → store. Re-running with the same plan and out_dir resumes: stored runs are skipped.

    Everything is checked before anything is written: the plan, the models at every size, the
    model's output against the data, the device, the study directory, the lock and that the store
    holds no run of another plan, nor of another training function or tune (`identity.py`).
    `execution`: where and how the runs train (`Execution`); `tune`: a tune's arguments."""
    device = execution.resolved_device()
    threads = execution.threads
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WdscaleError(f"--out {str(out)!r} is a file; give a directory for the study")
    task = task if task is not None else get_task(plan.task)
    source = source or Source(plan.task)
    plan = keep_refined(plan, out)
    runs = make_runs(plan, task, model_fn)
    origin = resolve_source(source, runs[0])
    if origin.command is not None:  # a per-layer rule cannot travel in a script's flags
        check_flags_only(origin.command, runs, origin.model_fn)
    data = origin.data
    if data is not None:  # the built-in loop's data (a user's training function brings its own)
        most = max(runs, key=lambda c: c.n_train)
        if most.n_train > data.n_train:
            budget = f" (tokens_per_param={plan.tokens_per_param:g})" if plan.tokens_per_param is not None else ""
            raise WdscaleError(
                f"n_train={most.n_train} at {most.size_axis}={most.size}{budget} is more than the {data.n_train} "
                f"training samples of task {plan.task!r}"
            )
        check_data(data)
        # every size's model on the data (a model that fits at the smallest size may not at another:
        # found before the first run, not after the small sizes trained)
        shapes = {(c.width, c.depth): c for c in runs}
        with torch.random.fork_rng():
            for (width, depth), c in shapes.items():
                check_output(data, origin.model_fn(width, depth), f"{c.size_axis}={c.size}")
    make_study_dir(out)
    backend = execution.make_backend()
    with study_lock(out), Store(out / "runs.sqlite") as store:
        check_plan_fits_store(store, runs, out)
        check_identity(store, out, trained_by(origin.train_fn, origin.command), tune)
        plan.save(out / "plan.json")
        store.set_plan(plan.to_dict())
        store.set_planned_runs(len(runs))
        if retry_failed:
            store.forget(store.done_ids(["failed"]))
        done = store.done_ids()
        todo = [c for c in runs if c.run_id not in done]
        summary = RunSummary(planned=len(runs), already_done=len(runs) - len(todo), ran=0)
        print(f"wdscale study: {describe(runs)}", file=sys.stderr)
        print(
            f"  {summary.already_done} already in {out / 'runs.sqlite'}, {len(todo)} to run on {device}, "
            f"{threads} thread{'s' if threads > 1 else ''} per run",
            file=sys.stderr,
        )
        if not todo:
            return summary
        jobs, summary.notes = cut_jobs(todo, source, device=device, batch=execution.batch)
        for note in summary.notes:
            print(f"  {note}", file=sys.stderr)
        bar = _progress(len(todo), execution.progress)

        def on_result(configs: Sequence[RunConfig], results: Sequence[RunResult]) -> None:
            added = store.add_job(configs, results)  # one transaction: the job whole, or nothing
            for c, r, new in zip(configs, results, added):
                if new:
                    summary.ran += 1
                    summary.statuses[r.status] = summary.statuses.get(r.status, 0) + 1
                    summary.off_plan_steps += int(steps_off_plan(c, r))
                    if r.status == "failed":
                        log.warning("run %s (%s) failed: %s", config_label(c), c.run_id, (r.error or "").split("\n")[0])
            bar.update(len(configs))
            postfix = {k: v for k, v in summary.statuses.items() if k != "ok"}
            if summary.off_plan_steps:
                postfix["off-plan steps"] = summary.off_plan_steps
            bar.set_postfix(postfix, refresh=False)

        try:
            with _sigterm_as_interrupt():
                backend.run(jobs, source, device, on_result, threads, out=out)
        finally:
            bar.close()
    print(f"  done: {summary.ran} runs ({describe_counts(summary)})", file=sys.stderr)
    return summary


def _progress(total: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total, unit="run", desc="study", disable=not enabled, dynamic_ncols=True, mininterval=1.0, file=sys.stderr
    )
