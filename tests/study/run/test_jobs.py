"""A job's runs carry the CPU seconds their process spent: the compute a busy machine does not inflate."""

import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from wdscale.study.analysis.study_analysis import core_seconds
from wdscale.study.plan.study_plan import StudyPlan, make_runs
from wdscale.study.plan.tasks import get_task
from wdscale.study.run.jobs import Job, Source, execute

TINY = dict(task="digits_mlp", sizes=[8, 16], rules=["decoupled"], seeds=2, decades=1.0, points_per_decade=1,
            epochs=3, depth=1)  # fmt: skip


def _configs():
    return [c for c in make_runs(StudyPlan(**TINY), get_task("digits_mlp")) if c.size == 16]


@pytest.mark.parametrize("batched", [False, True])
def test_each_run_carries_its_cpu_seconds(batched):
    results = execute(Job(_configs(), batched=batched), Source("digits_mlp"), "cpu")
    assert all(math.isfinite(r.cpu_time) and r.cpu_time > 0 for r in results)
    # one thread: a run's CPU seconds are within its wall time (the job's, shared, when batched)
    assert all(r.cpu_time <= r.wall_time * 1.05 + 0.05 for r in results)
    if batched:
        assert len({r.cpu_time for r in results}) == 1


def test_core_seconds_are_cpu_seconds_where_measured_else_wall_time_times_threads():
    runs = pd.DataFrame({"wall_time": [2.0, 2.0, 3.0], "threads": [1, 2, None], "cpu_time": [0.9, math.nan, None]})
    assert core_seconds(runs).tolist() == [0.9, 4.0, 3.0]
    assert core_seconds(runs.drop(columns="cpu_time")).tolist() == [2.0, 4.0, 3.0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins a core (Linux)")
def test_a_core_shared_with_a_busy_process_doubles_the_wall_time_not_the_cpu_seconds():
    """Wall time × threads once stood for compute: a run sharing its core with another process took
    twice the wall time, and a peer matched to it was given twice the compute."""
    before = os.sched_getaffinity(0)
    core = min(before)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spinner.pid, {core})
        os.sched_setaffinity(0, {core})
        results = execute(Job(_configs(), batched=False), Source("digits_mlp"), "cpu")
    finally:
        os.sched_setaffinity(0, before)
        spinner.kill()
        spinner.wait()
    cpu, wall = sum(r.cpu_time for r in results), sum(r.wall_time for r in results)
    # the scheduler splits the core about evenly: the wall time counts the spinner's half too
    assert cpu < 0.75 * wall, (cpu, wall)
