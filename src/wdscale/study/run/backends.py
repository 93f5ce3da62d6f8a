"""Backends: where jobs run. `LocalBackend` forks worker processes on this machine;
`ray_backend.RayBackend` sends jobs to a Ray cluster. Both train each job with `jobs.execute` and
hand every finished job's runs to the driver's `on_result`; only the driver writes the store.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Optional, Protocol

from ...checks import check_positive_int
from ...errors import WdscaleError
from .jobs import Job, OnResult, Source, execute
from .ray_backend import RayBackend

MAX_WORKER_DEATHS = 3  # pools restarted after a worker died, before the study stops (its runs kept)


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
        if self.workers is not None:
            check_positive_int("workers", self.workers)

    def n_workers(self, threads: int = 1) -> int:
        """As many as asked, else one per `threads` cores."""
        return self.workers or max(1, (os.cpu_count() or 1) // threads)

    def run(self, jobs: Sequence[Job], source: Source, device: str, on_result: OnResult, threads: int = 1) -> None:
        workers = min(self.n_workers(threads), len(jobs)) if jobs else 1
        if workers == 1 or device.startswith("cuda"):
            for job in jobs:
                on_result(job.configs, execute(job, source, device, threads))
            return
        remaining, deaths = list(jobs), 0
        while remaining:
            remaining = self._run_pool(remaining, workers, source, device, on_result, threads)
            if remaining:
                deaths += 1
                if deaths > MAX_WORKER_DEATHS:
                    raise WdscaleError(
                        f"worker processes died {deaths} times (killed from outside, or out of memory?) with "
                        f"{sum(len(j.configs) for j in remaining)} runs left; every finished run is stored: "
                        "run the study again to resume (fewer --workers if memory is short)"
                    )
                print(
                    f"wdscale: a worker process died; {len(remaining)} unfinished jobs start again in new workers",
                    file=sys.stderr,
                )

    @staticmethod
    def _run_pool(
        jobs: Sequence[Job], workers: int, source: Source, device: str, on_result: OnResult, threads: int
    ) -> list[Job]:
        """Run jobs in one pool; the jobs a dead worker took down (the pool breaks: every job not
        finished by then) are returned, to run again in a fresh pool."""
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))
        lost: list[Job] = []
        try:
            pending = {pool.submit(execute, job, source, device, threads): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        lost.append(job)  # its worker (or another) died: the pool is gone
                        continue
                    on_result(job.configs, results)
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM): stop the others now rather than wait for their
            # jobs; finished runs are already in the store
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return lost


def _init_worker(driver_pid: int) -> None:
    """Tie the worker's life to the driver's: the kernel kills it when the driver dies (Linux),
    and a watchdog thread exits it if it is ever re-parented (other systems, and the moment
    between fork and prctl)."""
    if sys.platform.startswith("linux"):
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
    """ "local" (worker processes on this machine) or "ray" (a Ray cluster; Ray itself is imported
    only when the backend starts)."""
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(address=address, workers=workers)
    raise WdscaleError(f"unknown backend {name!r}; known backends: local, ray")
