"""Run a study's grid: jobs -> a backend (local processes by default) -> results into the store.

A job is either a batch of runs that differ only in hyperparameters and seed (trained together by
the batched engine) or a single run (the sequential torch.optim loop). The driver decides which,
per group of same-shaped runs, by measuring both paths once; every finished run is committed to the
store the moment its result arrives.
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence, Union

import torch
from torch import nn

from ..optim import decay_mode
from .config import RunConfig, RunResult, TaskData
from .plan import StudyPlan, describe, make_runs
from .store import Store

log = logging.getLogger("wdscale.study")

ModelFn = Callable[[int, int], nn.Module]


# -- where a run's data and model come from ---------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Names the data and model family of a study so a worker process can find them.

    Built-in tasks are found by name; a user's model_fn and data are registered in the driver before
    workers start (forked workers inherit them; Ray ships them with cloudpickle).
    """

    key: str


_CUSTOM: dict[str, tuple[TaskData, ModelFn]] = {}


def register_custom(key: str, data: TaskData, model_fn: ModelFn) -> Source:
    _CUSTOM[key] = (data, model_fn)
    return Source(f"custom:{key}")


def resolve_source(source: Source, config: RunConfig) -> tuple[TaskData, ModelFn]:
    if source.key.startswith("custom:"):
        return _CUSTOM[source.key[len("custom:"):]]
    from .tasks import get_task

    task = get_task(config.task)
    # seed 0: every run of a study sees the same data; the run's seed drives init and batch order
    return task.load(0, **dict(config.task_options)), task.make_model


# -- jobs -------------------------------------------------------------------------------------------


@dataclass
class Job:
    configs: list[RunConfig]
    batched: bool


def batch_key(c: RunConfig) -> tuple:
    """Runs with the same key can share one batched pass: same shapes, data, steps and decay mode."""
    return (c.task, c.task_options, c.size_axis, c.size, c.width, c.depth, c.n_train, c.batch_size,
            c.base_width, c.base_depth, c.optimizer, c.epochs, c.momentum, c.decay_vectors,
            decay_mode(c.rule, c.optimizer))


def execute(job: Job, source: Source, device: str) -> list[RunResult]:
    """Run one job (in whichever process the backend chose). Never raises for a run's own failure."""
    from .train import train_run

    data, model_fn = resolve_source(source, job.configs[0])
    if job.batched:
        from .engine import train_batched

        try:
            return train_batched(job.configs, data, model_fn, device=device)
        except Exception as e:  # the engine could not take this batch: fall back, run by run
            log.warning("batched job of %d runs failed (%s: %s); running them one by one",
                        len(job.configs), type(e).__name__, e)
    return [train_run(c, data, model_fn, device=device) for c in job.configs]


def plan_jobs(todo: Sequence[RunConfig], source: Source, *, device: str, batch: bool, workers: int,
              memory_budget: int = 2 << 30, max_k: int = 128) -> tuple[list[Job], list[str]]:
    """Group runs, decide batched vs sequential per group (measured), split into jobs; largest first."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in todo:
        groups.setdefault(batch_key(c), []).append(c)
    jobs: list[Job] = []
    notes: list[str] = []
    for configs in groups.values():
        c0 = configs[0]
        what = f"{c0.size_axis}={c0.size} ({decay_mode(c0.rule, c0.optimizer)} decay, {len(configs)} runs)"
        use_batch, why, size = False, "batched engine switched off (--no-batch)", 1
        if batch and len(configs) > 1:
            use_batch, why, size = _decide(configs, source, device, memory_budget, max_k, workers)
        if use_batch:
            jobs += [Job(configs[i:i + size], True) for i in range(0, len(configs), size)]
            notes.append(f"{what}: batched, {math.ceil(len(configs) / size)} jobs of ≤{size} ({why})")
        else:
            jobs += [Job([c], False) for c in configs]
            notes.append(f"{what}: sequential ({why})")
    jobs.sort(key=lambda j: -(j.configs[0].width * j.configs[0].depth * j.configs[0].n_train * len(j.configs)))
    return jobs, notes


def _decide(configs, source, device, memory_budget, max_k, workers) -> tuple[bool, str, int]:
    """Batch or not, and how many runs per job: measured at the job size and thread count the
    workers will use, since the answer depends on both."""
    from .engine import can_batch, choose_k, prefer_batched

    data, model_fn = resolve_source(source, configs[0])
    c0 = configs[0]
    with torch.random.fork_rng():
        model = model_fn(c0.width, c0.depth)
    ok, why = can_batch(model)
    if not ok:
        return False, why, 1
    x = data.x_train[: c0.batch_size]
    k = max(1, min(max_k, len(configs), choose_k(model, tuple(x.shape), memory_budget)))
    # enough jobs to keep every worker busy, none bigger than the memory budget allows
    n_jobs = max(math.ceil(len(configs) / k), min(workers, len(configs)))
    size = math.ceil(len(configs) / n_jobs)
    threads = torch.get_num_threads()
    torch.set_num_threads(_worker_threads(workers))
    try:
        faster, why = prefer_batched(configs[:size], data, model_fn, device=device)
    finally:
        torch.set_num_threads(threads)
    return faster, why, size


def _worker_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# -- backends ---------------------------------------------------------------------------------------


OnResult = Callable[[RunConfig, RunResult], None]


class Backend(Protocol):
    """Runs jobs somewhere and hands each finished run to `on_result` in the driver process."""

    def run(self, jobs: Sequence[Job], source: Source, device: str, on_result: OnResult) -> None: ...


@dataclass
class LocalBackend:
    """Local worker processes (forked, so a user's model_fn needs no pickling); 1 worker runs in-process."""

    workers: Optional[int] = None

    def n_workers(self) -> int:
        return max(1, self.workers or os.cpu_count() or 1)

    def run(self, jobs: Sequence[Job], source: Source, device: str, on_result: OnResult) -> None:
        workers = min(self.n_workers(), len(jobs)) if jobs else 1
        if workers == 1 or device.startswith("cuda"):
            for job in jobs:
                for c, r in zip(job.configs, execute(job, source, device)):
                    on_result(c, r)
            return
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(_worker_threads(workers),)) as pool:
            pending = {pool.submit(execute, job, source, device): job for job in jobs}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        job = pending.pop(fut)
                        for c, r in zip(job.configs, fut.result()):
                            on_result(c, r)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def make_backend(name: str, *, workers: Optional[int] = None, address: Optional[str] = None) -> Backend:
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        from .ray_backend import RayBackend

        return RayBackend(address=address, workers=workers)
    raise ValueError(f"unknown backend {name!r}; known backends: local, ray")


# -- the driver -------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    planned: int
    already_done: int
    ran: int
    statuses: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_study(
    plan: StudyPlan,
    out_dir: Union[str, Path],
    *,
    source: Optional[Source] = None,
    task=None,
    model_fn: Optional[ModelFn] = None,
    backend: Optional[Backend] = None,
    device: Optional[str] = None,
    batch: bool = True,
    retry_failed: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Plan → runs → store. Re-running with the same plan and out_dir resumes: stored runs are skipped."""
    from .tasks import get_task

    task = task if task is not None else get_task(plan.task)
    source = source or Source(f"task:{plan.task}")
    runs = make_runs(plan, task, model_fn)
    data, _ = resolve_source(source, runs[0])
    most = max(c.n_train for c in runs)
    if most > data.n_train:
        raise ValueError(f"n_train={most} is more than the {data.n_train} training samples of task {plan.task!r}")
    device = device or default_device()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out / "plan.json")
    backend = backend or LocalBackend()
    with Store(out / "runs.sqlite") as store:
        if retry_failed:
            store.forget(store.done_ids(["failed"]))
        done = store.done_ids()
        todo = [c for c in runs if c.run_id not in done]
        summary = RunSummary(planned=len(runs), already_done=len(runs) - len(todo), ran=0)
        print(f"wdscale study: {describe(runs)}", file=sys.stderr)
        print(f"  {summary.already_done} already in {out / 'runs.sqlite'}, {len(todo)} to run on {device}",
              file=sys.stderr)
        if not todo:
            return summary
        workers = getattr(backend, "n_workers", lambda: 1)()
        jobs, summary.notes = plan_jobs(todo, source, device=device, batch=batch, workers=workers)
        for note in summary.notes:
            print(f"  {note}", file=sys.stderr)
        bar = _progress(len(todo), progress)

        def on_result(c: RunConfig, r: RunResult) -> None:
            if store.add(c, r):
                summary.ran += 1
                summary.statuses[r.status] = summary.statuses.get(r.status, 0) + 1
                if r.status == "failed":
                    log.warning("run %s failed: %s", c.run_id, r.error)
            bar.update(1)
            bar.set_postfix({k: v for k, v in summary.statuses.items() if k != "ok"}, refresh=False)

        try:
            backend.run(jobs, source, device, on_result)
        finally:
            bar.close()
    print(f"  done: {summary.ran} runs ({', '.join(f'{v} {k}' for k, v in summary.statuses.items())})",
          file=sys.stderr)
    return summary


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", desc="study", disable=not enabled, dynamic_ncols=True,
                mininterval=1.0, file=sys.stderr)
