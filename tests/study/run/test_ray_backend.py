"""The Ray backend against a real local Ray instance (no dashboard, no usage stats, no network)."""

import os
import signal

import pytest
from torch import nn

ray = pytest.importorskip("ray")

import user_model  # noqa: E402
from ray import cloudpickle  # noqa: E402
from user_model import fragile_study, load  # noqa: E402

from wdscale.study import Study, StudyPlan, make_runs, run_study  # noqa: E402
from wdscale.study.plan.tasks import get_task  # noqa: E402
from wdscale.study.run.execution import Execution  # noqa: E402
from wdscale.study.run.ray_backend import RayBackend  # noqa: E402
from wdscale.study.run.store import Store  # noqa: E402

TINY = dict(
    task="digits_mlp",
    sizes=[8, 16],
    rules=["sum", "decoupled"],
    seeds=1,
    decades=1.0,
    points_per_decade=2,
    epochs=2,
    depth=1,
)


@pytest.fixture(scope="module")
def local_ray():
    # the test helpers' module is not importable on Ray workers: ship it by value
    cloudpickle.register_pickle_by_value(user_model)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("batch", [False, True])
def test_ray_gives_the_same_runs_and_results_as_local(local_ray, tmp_path, batch):
    # the in-process local run and the Ray workers train each run on the same path with the same
    # intra-op thread count (1), whatever the driver's own torch setting is
    plan = StudyPlan(**TINY)
    run_study(plan, tmp_path / "local", execution=Execution(workers=1, batch=batch, progress=False))
    run_study(plan, tmp_path / "ray", execution=Execution(backend=RayBackend(), batch=batch, progress=False))
    a, b = (Store(tmp_path / d / "runs.sqlite").frame().set_index("run_id").sort_index() for d in ("local", "ray"))
    assert list(a.index) == sorted(c.run_id for c in make_runs(plan, get_task("digits_mlp")))
    assert list(a.index) == list(b.index)
    assert a.status.tolist() == b.status.tolist() and set(a.status) <= {"ok", "not_learned"}
    assert a.path.tolist() == b.path.tolist() and set(a.path) == {"batched-bmm" if batch else "sequential"}
    assert (a.threads == 1).all() and (b.threads == 1).all()
    # same config, path and threads on one machine: the same numbers (a tolerance, not bits, on principle)
    assert a.val_loss.tolist() == pytest.approx(b.val_loss.tolist(), rel=1e-9)


def test_a_killed_worker_is_retried_and_every_run_lands_once(local_ray, tmp_path):
    marker = tmp_path / "killed-once"
    driver = os.getpid()

    def model_fn(width):
        # the first time a Ray worker builds the width-16 model, the worker process dies (SIGKILL)
        if width == 16 and os.getpid() != driver and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    study = Study(
        model_fn,
        load(),
        out=tmp_path / "s",
        sizes=[8, 16],
        rules=["sum"],
        settings={"sum": [1e-3, 1e-2, 1e-1]},
        seeds=2,
        lr=1e-2,
        epochs=2,
        batch_size=50,
        execution=Execution(backend="ray", batch=False),
    )
    study.run(progress=False)
    assert marker.exists(), "a worker should have been killed"
    df = study.results()
    assert len(df) == len(study.runs()) == 12 and df.run_id.is_unique
    assert (df.status == "ok").all()


def test_a_failing_run_is_recorded_as_failed_not_retried(local_ray, tmp_path):
    study = fragile_study(tmp_path, execution=Execution(backend="ray"))
    study.run(progress=False)
    df = study.results()
    assert len(df) == 6
    failed = df[df.status == "failed"]
    assert set(failed["size"]) == {16} and failed.error.str.contains("boom at width 16").all()
