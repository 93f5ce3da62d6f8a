"""Run a study's grid: jobs -> a backend (local processes by default) -> results into the store.

A job is either a batch of runs that differ only in hyperparameters and seed (trained together by
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
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Sequence, Union

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
        return _CUSTOM[source.key[len("custom:") :]]
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


def execute(job: Job, source: Source, device: str, threads: int = 1) -> list[RunResult]:
    """Run one job (in whichever process the backend chose) on `threads` intra-op threads.
    Never raises for a run's own failure."""
    from .train import train_run

    data, model_fn = resolve_source(source, job.configs[0])
    with intra_op_threads(threads):
        results = None
        if job.batched:
            from .engine import train_batched

            try:
                results = train_batched(job.configs, data, model_fn, device=device)
            except Exception as e:  # the engine could not take this batch: fall back (path "sequential")
                log.warning(
                    "batched job of %d runs failed (%s: %s); running them one by one",
                    len(job.configs),
                    type(e).__name__,
                    e,
                )
        if results is None:
            results = [train_run(c, data, model_fn, device=device) for c in job.configs]
    return [dataclasses.replace(r, threads=threads) for r in results]


# Most runs one batched job trains together. The BLAS kernels behind the engine's bmm give a
# member last-bit differences that depend on its position in the stack (its memory alignment), so
# a job's membership must not depend on the worker count or on timing: groups are cut in plan order
# into jobs of a fixed size. A study resumed after a kill re-forms exactly the jobs it lost (jobs
# are stored whole); a plan that grows trains its new runs in new jobs.
MAX_RUNS_PER_JOB = 32


def plan_jobs(
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
    for configs in groups.values():
        c0 = configs[0]
        what = f"{c0.size_axis}={c0.size} ({decay_mode(c0.rule, c0.optimizer)} decay, {len(configs)} runs)"
        path, why, size = "sequential", "batched engine switched off (--no-batch)", 1
        if batch:
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
    from .engine import choose_k, choose_path

    data, model_fn = resolve_source(source, configs[0])
    c0 = configs[0]
    with torch.random.fork_rng():
        model = model_fn(c0.width, c0.depth)
    path, why = choose_path(model, device)
    if path == "sequential":
        return path, why, 1
    x = data.x_train[: c0.batch_size]
    return path, why, max(1, min(max_k, choose_k(model, tuple(x.shape), memory_budget)))


# -- backends ---------------------------------------------------------------------------------------


OnResult = Callable[[RunConfig, RunResult], None]


class Backend(Protocol):
    """Runs jobs somewhere, each on `threads` intra-op threads, and hands each finished run to
    `on_result` in the driver process."""

    def n_workers(self, threads: int = 1) -> int: ...

    def run(self, jobs: Sequence[Job], source: Source, device: str, on_result: OnResult, threads: int = 1) -> None: ...


@dataclass
class LocalBackend:
    """Local worker processes (forked, so a user's model_fn needs no pickling); 1 worker runs
    in-process. Workers die with the driver, however it ends (SIGKILL included)."""

    workers: Optional[int] = None

    def __post_init__(self) -> None:
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"workers must be a whole number ≥ 1, got {self.workers!r}")

    def n_workers(self, threads: int = 1) -> int:
        """As many as asked, else one per `threads` cores."""
        return self.workers or max(1, (os.cpu_count() or 1) // threads)

    def run(self, jobs: Sequence[Job], source: Source, device: str, on_result: OnResult, threads: int = 1) -> None:
        workers = min(self.n_workers(threads), len(jobs)) if jobs else 1
        if workers == 1 or device.startswith("cuda"):
            for job in jobs:
                for c, r in zip(job.configs, execute(job, source, device, threads)):
                    on_result(c, r)
            return
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            pending = {pool.submit(execute, job, source, device, threads): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    for c, r in zip(job.configs, fut.result()):
                        on_result(c, r)
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM) or a worker died: stop the others now rather than
            # wait for their jobs; finished runs are already in the store
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _init_worker(driver_pid: int) -> None:
    """Tie the worker's life to the driver's: the kernel kills it when the driver dies (Linux),
    and a watchdog thread exits it if it is ever re-parented (other systems, and the moment
    between fork and prctl)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != driver_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="wdscale-driver-watch", daemon=True).start()


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


def check_device(device: str) -> str:
    """`cpu`, `cuda` or `cuda:N`, and only a CUDA device that torch can see."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: studies run on cpu or cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r}: CUDA is not available here (torch.cuda.is_available() is False); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number ≥ 1 (torch intra-op threads per run), got {threads!r}")
    return threads


def check_output(data: TaskData, model: nn.Module, where: str) -> None:
    """One forward on two training samples: the model's output must fit the data (one error up
    front, instead of every run failing the same way)."""
    x, y = data.x_train[:2], data.y_train[:2]
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        raise ValueError(
            f"the model at {where} fails on the data's inputs {tuple(x.shape)}: "
            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        ) from None
    want = (*y.shape, data.n_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model at {where} returns {got} for inputs {tuple(x.shape)}; {data.kind} data "
            f"with {data.n_classes} classes needs logits of shape {want}"
        )


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
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ValueError(
                f"another `wdscale study run` ({holder}) is running on {str(out)!r}; "
                "wait for it to finish (it stores every run), or use another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    raise ValueError(
        f"{str(out)!r} holds {len(foreign)} run(s) of another plan ({why}). A study directory holds "
        "one plan: use another --out, or the plan it was made with (its plan.json); a plan may grow "
        "(more sizes, rules, seeds, --extend) but not change"
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
    task=None,
    model_fn: Optional[ModelFn] = None,
    backend: Optional[Backend] = None,
    device: Optional[str] = None,
    batch: bool = True,
    threads: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Plan → runs → store. Re-running with the same plan and out_dir resumes: stored runs are skipped.

    Everything is checked before anything is written: the plan, the models at every size, the
    model's output against the data, the device, the study directory, the lock and that the store
    holds no run of another plan. `threads`: torch intra-op threads per run, in every backend."""
    from .tasks import get_task

    check_threads(threads)
    device = check_device(device or default_device())
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a directory for the study")
    task = task if task is not None else get_task(plan.task)
    source = source or Source(f"task:{plan.task}")
    runs = make_runs(plan, task, model_fn)
    data, fn = resolve_source(source, runs[0])
    most = max(c.n_train for c in runs)
    if most > data.n_train:
        raise ValueError(f"n_train={most} is more than the {data.n_train} training samples of task {plan.task!r}")
    with torch.random.fork_rng():
        check_output(data, fn(runs[0].width, runs[0].depth), f"{runs[0].size_axis}={runs[0].size}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the study directory {str(out)!r}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"the study directory {str(out)!r} is not writable")
    backend = backend or LocalBackend()
    with study_lock(out), Store(out / "runs.sqlite") as store:
        check_plan_fits_store(store, runs, out)
        plan.save(out / "plan.json")
        store.set_plan(plan.to_dict())
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
        jobs, summary.notes = plan_jobs(todo, source, device=device, batch=batch)
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
            with _sigterm_as_interrupt():
                backend.run(jobs, source, device, on_result, threads)
        finally:
            bar.close()
    print(f"  done: {summary.ran} runs ({', '.join(f'{v} {k}' for k, v in summary.statuses.items())})", file=sys.stderr)
    return summary


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="run", desc="study", disable=not enabled, dynamic_ncols=True, mininterval=1.0, file=sys.stderr
    )
