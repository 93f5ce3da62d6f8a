"""Backends: where jobs run. `LocalBackend` starts each job in a process of its own on this machine,
one per free slot (a CPU worker or a GPU share); `ray_backend.RayBackend` sends jobs to a Ray
cluster. Both hand every finished job's runs to the driver's `on_result`; only the driver writes
the store.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Optional, Protocol

from ...checks import check_positive_int
from ...errors import WdscaleError
from ..plan.config import RunResult
from .command import log_path, log_tail, one_pair
from .jobs import Job, OnResult, Source, registered
from .placement import Slot, check_gpus_per_run, plan_slots
from .processes import Child, CommandJob, Died, ForkedJob, config_label, warm_up
from .ray_backend import RayBackend

log = logging.getLogger("wdscale.study")

RETRIES = 1  # a job whose process died runs once more in a fresh process before its runs are stored failed
# different jobs whose processes died in a row, across at least two sizes, before the study stops:
# the machine (memory, a driver) is failing, not one run
MAX_DEATHS_IN_A_ROW = 6
# the first runs of a study all failed the same way, across two sizes (or the study's one size):
# every run would; stop and say why rather than train on to the end
SAME_FAILURE_STOP = 3


class Backend(Protocol):
    """Runs jobs somewhere, each on `threads` intra-op threads, and hands each finished run to
    `on_result` in the driver process. `out` is the study directory (runs' logs)."""

    def n_workers(self, threads: int = 1) -> int: ...

    def run(
        self,
        jobs: Sequence[Job],
        source: Source,
        device: str,
        on_result: OnResult,
        threads: int = 1,
        out: Optional[Path] = None,
    ) -> None: ...


@dataclass
class LocalBackend:
    """Each job in a process of its own on this machine (forked, so a user's model_fn needs no
    pickling; a command run as the user's command), as many at once as there are slots.

    Args:
        workers: runs at once on CPU (default: cores / threads); on GPUs, at most this many shares.
        gpus_per_run: GPUs per run (default 1 on a GPU study; 2 for a 2-GPU torchrun; 0.5 puts
            two runs on a GPU); each run's processes see only their share.
        gpus: the GPUs to use, e.g. ("0", "1") (default: every visible one).
        run_timeout: seconds a run (a job) may take; past it its processes are killed and its
            runs stored failed (None: no limit).
    """

    workers: Optional[int] = None
    gpus_per_run: Optional[float] = None
    gpus: Optional[tuple[str, ...]] = None
    run_timeout: Optional[float] = None
    slots_used: list[Slot] = field(default_factory=list, repr=False)  # the last run's, for its summary

    def __post_init__(self) -> None:
        if self.workers is not None:
            check_positive_int("workers", self.workers)
        self.gpus_per_run = check_gpus_per_run(self.gpus_per_run)
        self.run_timeout = check_run_timeout(self.run_timeout)

    def n_workers(self, threads: int = 1) -> int:
        """As many as asked, else one per `threads` cores."""
        return self.workers or max(1, (os.cpu_count() or 1) // threads)

    def slots(self, device: str, threads: int = 1) -> list[Slot]:
        """Where runs train: GPU shares, or CPU workers."""
        slots = plan_slots(
            device=device, workers=self.n_workers(threads), gpus_per_run=self.gpus_per_run, gpus=self.gpus
        )
        return slots[: self.workers] if self.workers else slots

    def run(
        self,
        jobs: Sequence[Job],
        source: Source,
        device: str,
        on_result: OnResult,
        threads: int = 1,
        out: Optional[Path] = None,
    ) -> None:
        slots = self.slots(device, threads)[: max(1, len(jobs))]
        self.slots_used = slots
        if jobs:
            warm_up()
        _Scheduler(self, jobs, source, device, on_result, threads, out, slots).run()


def check_run_timeout(value: object) -> Optional[float]:
    """None (no limit) or a number of seconds > 0.

    Raises:
        WdscaleError: 0, a negative number, NaN, or not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise WdscaleError(f"run_timeout={value!r} is not allowed: give the seconds a run may take, a number > 0")
    return float(value)


class _Scheduler:
    """One pass of the local backend: jobs to free slots, outcomes to the store, deaths retried
    once, runs past the timeout killed, and everything it started ended if the driver stops."""

    def __init__(self, backend, jobs, source, device, on_result, threads, out, slots) -> None:
        self.backend, self.source, self.device, self.threads = backend, source, device, threads
        self.on_result, self.out = on_result, out
        self.queue: deque[Job] = deque(jobs)
        self.free: list[Slot] = list(slots)
        self.running: list[Child] = []
        self.tries: dict[int, int] = {}
        self.origin = registered(source)
        self.command = None if self.origin is None else self.origin.command
        self.sizes = {c.size for j in jobs for c in j.configs}
        self.deaths: list[Job] = []  # jobs whose process died (after their retry) since the last success
        self.failures: list[tuple[int, str]] = []  # (size, error) of every failure before any success
        self.succeeded = False
        self.first_failure_shown = False

    def run(self) -> None:
        try:
            while self.queue or self.running:
                while self.queue and self.free:
                    self._start(self.queue.popleft(), self.free.pop(0))
                ready = wait([w for c in self.running for w in c.waitables()], timeout=self._wait_for())
                del ready  # every child is polled: cheap, and a command run without a pidfd has no waitable
                now = time.monotonic()
                for child in list(self.running):
                    outcome = child.poll()
                    timeout = self.backend.run_timeout
                    if outcome is None and timeout is not None and now - child.started > timeout:
                        child.kill()
                        why = f"timed out after {timeout:g} s (--run-timeout)"
                        outcome = [self._failed(c, why) for c in child.job.configs]
                        self._note_logs(child.job, outcome)
                    if outcome is not None:
                        self.running.remove(child)
                        self.free.append(child.slot)
                        self._finish(child.job, outcome)
        finally:
            # interrupted (Ctrl-C, SIGTERM) or stopped: end every run still going, start none
            for child in self.running:
                child.kill()
            self.running.clear()

    def _wait_for(self) -> Optional[float]:
        """How long to block: until the nearest timeout, and at most a second (command runs
        without a pidfd are polled)."""
        if self.backend.run_timeout is None:
            return 1.0
        nearest = min((c.started + self.backend.run_timeout for c in self.running), default=time.monotonic() + 1)
        return max(0.01, min(1.0, nearest - time.monotonic()))

    def _start(self, job: Job, slot: Slot) -> None:
        child: Child
        if self.command is not None:
            assert self.out is not None and self.origin is not None
            (c,) = job.configs
            decay = float("nan")
            if "weight_decay" in self.command.fields:
                pair = one_pair(c, self.origin.model_fn)
                decay = pair[1] if isinstance(pair, tuple) else float("nan")
            child = CommandJob(job, self.command, decay, self.device, self.threads, slot, self.out)
        else:
            # a log per job where the user's code runs (its prints and tracebacks), named by its first run;
            # a built-in task's jobs run wdscale's code alone and need none
            logged = self.out is not None and self.origin is not None
            where = log_path(self.out, job.configs[0].run_id) if logged and self.out is not None else None
            child = ForkedJob(job, self.source, self.device, self.threads, slot, where)
        self.running.append(child)

    def _finish(self, job: Job, outcome) -> None:
        if isinstance(outcome, Died):
            tries = self.tries.get(id(job), 0)
            if tries < RETRIES:
                self.tries[id(job)] = tries + 1
                print(
                    f"wdscale: the process of {self._what(job)} ended without a result ({outcome.cause}); "
                    "running it once more in a fresh process",
                    file=sys.stderr,
                )
                self.queue.appendleft(job)
                return
            results = [self._failed(c, f"its process died twice: {outcome.cause}") for c in job.configs]
            self._note_logs(job, results)
            self.deaths.append(job)
            self.on_result(job.configs, results)
            # the first runs all dying alike is said as such (the more specific stop) before the deaths in a
            # row are counted: with the largest size's jobs first, the sixth death is also the first at a
            # second size, and which stop spoke depended on the workers' timing
            self._check_same_failure(job, results)
            self._check_deaths()
            return
        results = outcome
        self._note_logs(job, results)
        self.on_result(job.configs, results)
        if any(r.status != "failed" for r in results):
            self.succeeded, self.deaths = True, []
        self._check_same_failure(job, results)

    def _failed(self, config, error: str) -> RunResult:
        path = "command" if self.command is not None else ("user" if self.origin is not None else "")
        return RunResult(run_id=config.run_id, status="failed", error=error, path=path)

    def _note_logs(self, job: Job, results: Sequence[RunResult]) -> None:
        """A failed run's error names its log; the first failure is shown with the log's tail."""
        if self.out is None:
            return
        where = log_path(self.out, job.configs[0].run_id)  # the job's log: its first run's
        for c, r in zip(job.configs, results):
            if r.status != "failed":
                continue
            if where.is_file() and str(where) not in (r.error or ""):
                r.error = f"{r.error}; log {where}"
            if not self.first_failure_shown:
                self.first_failure_shown = True
                tail = log_tail(where) if where.is_file() else ""
                print(f"wdscale: run {config_label(c)} failed: {r.error}", file=sys.stderr)
                if tail and tail not in (r.error or ""):
                    print("  " + tail.replace("\n", "\n  "), file=sys.stderr)

    def _what(self, job: Job) -> str:
        c = job.configs[0]
        if len(job.configs) == 1:
            return f"run {config_label(c)}"
        return f"a job of {len(job.configs)} runs at {c.size_axis}={c.size}"

    def _check_deaths(self) -> None:
        sizes = {c.size for j in self.deaths for c in j.configs}
        if len(self.deaths) >= MAX_DEATHS_IN_A_ROW and (len(sizes) >= 2 or len(self.sizes) == 1):
            raise WdscaleError(
                f"the processes of {len(self.deaths)} different jobs in a row died (at sizes "
                f"{', '.join(map(str, sorted(sizes)))}), each twice: the machine is failing (out of memory? "
                "killed from outside?), not one run. Every finished run is stored: run the study again to resume "
                "(fewer --workers if memory is short)"
            )

    def _check_same_failure(self, job: Job, results: Sequence[RunResult]) -> None:
        if self.succeeded:
            return
        for c, r in zip(job.configs, results):
            self.failures.append((c.size, _first_line(r.error)))
        errors = {e for _, e in self.failures}
        sizes = {s for s, _ in self.failures}
        if len(self.failures) >= SAME_FAILURE_STOP and len(errors) == 1 and (len(sizes) >= 2 or len(self.sizes) == 1):
            raise WdscaleError(
                f"the study's first {len(self.failures)} runs (sizes {', '.join(map(str, sorted(sizes)))}) all failed "
                f"the same way: {next(iter(errors))}. Stopped rather than train every run into the same failure; "
                "the failed runs are stored (fix the cause, then run again with --retry-failed)"
            )


def _first_line(error: Optional[str]) -> str:
    """An error without its log's path and tail: what two runs' failures share."""
    text = (error or "").split("\n", 1)[0]
    return text.split("; log ", 1)[0]


def make_backend(
    name: str,
    *,
    workers: Optional[int] = None,
    address: Optional[str] = None,
    gpus_per_run: Optional[float] = None,
    gpus: Optional[tuple[str, ...]] = None,
    run_timeout: Optional[float] = None,
) -> Backend:
    """ "local" (processes on this machine) or "ray" (a Ray cluster; Ray itself is imported only
    when the backend starts)."""
    if name == "local":
        return LocalBackend(workers, gpus_per_run=gpus_per_run, gpus=gpus, run_timeout=run_timeout)
    if name == "ray":
        return RayBackend(address=address, workers=workers, gpus_per_run=gpus_per_run, run_timeout=run_timeout)
    raise WdscaleError(f"unknown backend {name!r}; known backends: local, ray")
