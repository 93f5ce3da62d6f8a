"""Run a study's jobs as Ray tasks; the driver alone writes the SQLite store.

A job (one run, or a batch of runs for the batched engine) is one Ray task needing `cpus_per_task`
CPUs. A worker process that dies mid-task makes Ray retry the task (at most `max_retries` times);
a run that fails for its own reasons comes back as a "failed" result and is not retried. Results are
keyed by run hash in the store, so a retried task can never write a run twice.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ...errors import WdscaleError
from ..plan.config import RunResult
from .jobs import Job, OnResult, Origin, Source, execute, install, registered


def _ray():
    try:
        import ray
    except ImportError:
        raise WdscaleError("the ray backend needs Ray: pip install 'wdscale[ray]'") from None
    return ray


def _run_job(job: Job, source: Source, device: str, custom: Optional[Origin], threads: int) -> list[RunResult]:
    """The Ray task: a custom source's model_fn and data or train_fn travel with it (cloudpickle); it trains
    on the study's intra-op thread count, whatever Ray set for the worker."""
    install(source, custom)
    return execute(job, source, device, threads)


@dataclass
class RayBackend:
    """`address=None` starts a local Ray on this machine (no dashboard, no usage stats)."""

    address: Optional[str] = None
    workers: Optional[int] = None  # CPUs for a local Ray; ignored when joining a cluster
    cpus_per_task: float = 1.0
    max_retries: int = 3
    gpus_per_run: Optional[float] = None  # num_gpus per task (default 1 on a GPU study, else 0)
    run_timeout: Optional[float] = None  # seconds a task may take before it is cancelled and its runs stored failed

    def n_workers(self, threads: int = 1) -> int:
        ray = _ray()
        self._init(ray)
        return max(1, int(ray.cluster_resources().get("CPU", 1) // max(self.cpus_per_task, threads)))

    def _init(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            ray.init(num_cpus=self.workers or os.cpu_count(), **kwargs)

    def run(
        self,
        jobs: Sequence[Job],
        source: Source,
        device: str,
        on_result: OnResult,
        threads: int = 1,
        out: Optional[Path] = None,
    ) -> None:
        entry = registered(source)
        if entry is not None and entry.command is not None:
            raise WdscaleError("command runs start on this machine: use the local backend (--backend local)")
        ray = _ray()
        self._init(ray)
        custom = None if entry is None else ray.put(entry)
        remote = ray.remote(
            num_cpus=max(self.cpus_per_task, threads),
            num_gpus=self.gpus_per_run if self.gpus_per_run is not None else (1 if device.startswith("cuda") else 0),
            max_retries=self.max_retries,
            retry_exceptions=False,
        )(_run_job)
        pending = {remote.remote(job, source, device, custom, threads): job for job in jobs}
        started: dict[Any, float] = {}
        at_once = self.n_workers(threads)
        try:
            while pending:
                # a task's clock starts when it can have started: among the first `at_once` still pending
                for ref in list(pending)[:at_once]:
                    started.setdefault(ref, time.monotonic())
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0 if self.run_timeout else None)
                if self.run_timeout is not None:  # past its time: cancelled, its runs stored failed
                    now = time.monotonic()
                    late = [r for r in pending if r not in done and now - started.get(r, math.inf) > self.run_timeout]
                    for ref in late:
                        ray.cancel(ref, force=True)
                        job = pending.pop(ref)
                        msg = f"timed out after {self.run_timeout:g} s (--run-timeout)"
                        on_result(job.configs, [RunResult(c.run_id, "failed", error=msg) for c in job.configs])
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries exhausted: record, go on
                        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[0]
                        msg = f"Ray task failed after {self.max_retries} retries: {type(e).__name__}: {first}"
                        results = [RunResult(run_id=c.run_id, status="failed", error=msg) for c in job.configs]
                    on_result(job.configs, results)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
