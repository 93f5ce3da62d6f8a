"""Jobs: what a backend runs. A job is a batch of same-shaped runs for the batched engine, or one
run for the sequential loop; `execute` trains one job in whichever process a backend chose.

Where a run's data and model come from (`Source`, and the registry of a user's own model and data)
lives here too, so that every backend finds them the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ...optim import decay_mode
from ..plan.config import ModelFn, RunConfig, RunResult, TaskData
from ..plan.tasks import get_task
from ..train.engine import choose_k, choose_path, train_batched
from ..train.loop import train_run
from ..train.user_loop import TrainFn, train_user_run
from .command import Command

log = logging.getLogger("wdscale.study")

# what a backend calls, in the driver, with each finished job's configs and results (the store
# writes them in one transaction: a job is stored whole or not at all)
OnResult = Callable[[Sequence[RunConfig], Sequence[RunResult]], None]


# -- where a run's data and model come from ---------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Names the data and model family of a study so a worker process can find them: a built-in
    task by name (`custom` None), or a user's model_fn and data registered under `custom` in the
    driver before workers start (forked workers inherit the registry; Ray ships the entry)."""

    task: str
    custom: Optional[str] = None


@dataclass(frozen=True)
class Origin:
    """What a run trains on: its model family, and either data for the built-in loop, the user's
    own training function, or the user's command (which bring their own data)."""

    model_fn: ModelFn
    data: Optional[TaskData] = None
    train_fn: Optional[TrainFn] = None
    command: Optional[Command] = None

    @property
    def own_training(self) -> bool:
        """The user trains (a function or a command): one run at a time, never batched."""
        return self.train_fn is not None or self.command is not None


# a user's model family and data or training function, by name: filled in the driver, and on Ray
# workers from what the job carries
_REGISTRY: dict[str, Origin] = {}


def register_source(
    name: str,
    model_fn: ModelFn,
    data: Optional[TaskData] = None,
    train_fn: Optional[TrainFn] = None,
    command: Optional[Command] = None,
) -> Source:
    """Make a user's model family and data (or training function, or command) findable by
    workers; returns its Source."""
    _REGISTRY[name] = Origin(model_fn, data, train_fn, command)
    return Source(task=name, custom=name)


def registered(source: Source) -> Optional[Origin]:
    """What a custom source registered (for a backend to ship to its workers); None for a task."""
    return None if source.custom is None else _REGISTRY[source.custom]


def install(source: Source, entry: Optional[Origin]) -> None:
    """On a worker that did not inherit the registry: put a shipped entry back."""
    if source.custom is not None and entry is not None:
        _REGISTRY[source.custom] = entry


def resolve_source(source: Source, config: RunConfig) -> Origin:
    """The model family and data (or training function) a run trains on."""
    if source.custom is not None:
        return _REGISTRY[source.custom]
    task = get_task(config.task)
    # seed 0: every run of a study sees the same data; the run's seed drives init and batch order
    return Origin(task.make_model, task.load(0, **dict(config.task_options)))


# -- jobs -------------------------------------------------------------------------------------------


@dataclass
class Job:
    configs: list[RunConfig]
    batched: bool


def batch_key(c: RunConfig) -> tuple:
    """Runs with the same key can share one batched pass: same shapes, data, steps and decay mode."""
    return (
        c.task,
        c.task_options,
        c.size_axis,
        c.size,
        c.width,
        c.depth,
        c.n_train,
        c.batch_size,
        c.base_width,
        c.base_depth,
        c.optimizer,
        c.epochs,
        c.momentum,
        c.decay_vectors,
        c.schedule,
        c.warmup,
        c.final_lr,
        c.decay_fraction,
        decay_mode(c.rule, c.optimizer),
    )


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count for the body, restored after: a run's last bits depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_timed(train: Callable[[], RunResult], on_cpu: bool) -> RunResult:
    """A run with the CPU seconds its process spent training it (on a CPU device only: a GPU run's
    cost is not its process's CPU time)."""
    start = time.process_time()
    result = train()
    return dataclasses.replace(result, cpu_time=time.process_time() - start) if on_cpu else result


def execute(job: Job, source: Source, device: str, threads: int = 1) -> list[RunResult]:
    """Run one job (in whichever process the backend chose) on `threads` intra-op threads.
    Never raises for a run's own failure. Each result carries its CPU seconds on a CPU device
    (a batched job's shared equally by its runs): the cost a busy machine does not inflate."""
    origin = resolve_source(source, job.configs[0])
    on_cpu = torch.device(device).type == "cpu"
    with intra_op_threads(threads):
        results = None
        if origin.train_fn is not None:
            train_fn = origin.train_fn
            results = [
                _cpu_timed(functools.partial(train_user_run, c, train_fn, origin.model_fn, device=device), on_cpu)
                for c in job.configs
            ]
        elif job.batched:
            data, model_fn = origin.data, origin.model_fn
            assert data is not None  # a source without a training function has data
            try:
                start = time.process_time()
                results = train_batched(job.configs, data, model_fn, device=device)
                if on_cpu:
                    share = (time.process_time() - start) / len(results)
                    results = [dataclasses.replace(r, cpu_time=share) for r in results]
            except Exception as e:  # the engine could not take this batch: fall back (path "sequential")
                log.warning(
                    "batched job of %d runs failed (%s: %s); running them one by one",
                    len(job.configs),
                    type(e).__name__,
                    e,
                )
        if results is None:
            assert origin.data is not None
            data, model_fn = origin.data, origin.model_fn
            results = [
                _cpu_timed(functools.partial(train_run, c, data, model_fn, device=device), on_cpu) for c in job.configs
            ]
    return [dataclasses.replace(r, threads=threads) for r in results]


# Most runs one batched job trains together. The BLAS kernels behind the engine's bmm give a
# member last-bit differences that depend on its position in the stack (its memory alignment), so
# a job's membership must not depend on the worker count or on timing: groups are cut in plan order
# into jobs of a fixed size. A study resumed after a kill re-forms exactly the jobs it lost (jobs
# are stored whole); a plan that grows trains its new runs in new jobs.
MAX_RUNS_PER_JOB = 32


def cut_jobs(
    todo: Sequence[RunConfig],
    source: Source,
    *,
    device: str,
    batch: bool,
    memory_budget: int = 2 << 30,
    max_k: Optional[int] = None,
) -> tuple[list[Job], list[str]]:
    """Group runs, choose each group's path by rule (not by timing), cut each batched group in
    plan order into jobs of a fixed size (a rule of the model and the memory budget, never of the
    workers); largest jobs first."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in todo:
        groups.setdefault(batch_key(c), []).append(c)
    jobs: list[Job] = []
    notes: list[str] = []
    own = source.custom is not None and resolve_source(source, todo[0]).own_training if todo else False
    for configs in groups.values():
        c0 = configs[0]
        what = f"{c0.size_axis}={c0.size} ({decay_mode(c0.rule, c0.optimizer)} decay, {len(configs)} runs)"
        path, why, size = "sequential", "batched engine switched off (--no-batch)", 1
        if own:
            why = "your training trains one run at a time"
        elif batch:
            path, why, size = _decide(configs, source, device, memory_budget, max_k or MAX_RUNS_PER_JOB)
        if path != "sequential":
            jobs += [Job(configs[i : i + size], True) for i in range(0, len(configs), size)]
            notes.append(f"{what}: {path}, {math.ceil(len(configs) / size)} jobs of ≤{size} ({why})")
        else:
            jobs += [Job([c], False) for c in configs]
            notes.append(f"{what}: sequential ({why})")
    jobs.sort(key=lambda j: -(j.configs[0].width * j.configs[0].depth * j.configs[0].n_train * len(j.configs)))
    return jobs, notes


def _decide(configs, source, device, memory_budget, max_k) -> tuple[str, str, int]:
    """The group's path (a rule of the model's size) and its runs per job (as many as the memory
    budget allows, at most max_k)."""
    origin = resolve_source(source, configs[0])
    data, model_fn = origin.data, origin.model_fn
    assert data is not None  # the built-in loop's data
    c0 = configs[0]
    with torch.random.fork_rng():
        model = model_fn(c0.width, c0.depth)
    path, why = choose_path(model, device, c0.optimizer)
    if path == "sequential":
        return path, why, 1
    x = data.x_train[: c0.batch_size]
    return path, why, max(1, min(max_k, choose_k(model, tuple(x.shape), memory_budget)))
