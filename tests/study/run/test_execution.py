"""`Execution`: one frozen value for how a study runs, checked when it is made."""

import dataclasses

import pytest

import wdscale
from wdscale.study.run.backends import LocalBackend
from wdscale.study.run.execution import Execution
from wdscale.study.run.ray_backend import RayBackend


def test_it_builds_the_backend_it_names():
    assert isinstance(Execution().make_backend(), LocalBackend)
    assert Execution(workers=3).make_backend().n_workers() == 3
    ray = Execution(backend="ray", address="HEAD:6379", workers=2).make_backend()
    assert isinstance(ray, RayBackend) and ray.address == "HEAD:6379"
    given = LocalBackend(workers=1)
    assert Execution(backend=given).make_backend() is given
    assert Execution(device="cpu").resolved_device() == "cpu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Execution().threads = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"backend": "slurm"}, "unknown backend 'slurm'; known backends: local, ray"),
        ({"workers": 0}, "workers=0"),
        ({"threads": 1.5}, "threads=1.5"),
        ({"address": "HEAD:6379"}, "address='HEAD:6379' has no effect with the 'local' backend"),
        ({"backend": LocalBackend(), "workers": 2}, "set on a backend object itself"),
        ({"batch": "no"}, "batch='no' is not allowed"),
        ({"device": 0}, "device=0 is not allowed"),
    ],
)
def test_bad_values_are_refused_by_name(kw, message):
    with pytest.raises(wdscale.WdscaleError, match=message):
        Execution(**kw)


def test_a_device_torch_cannot_use_is_refused_when_resolved():
    with pytest.raises(wdscale.WdscaleError, match="not a torch device"):
        Execution(device="gpu7").resolved_device()


def test_study_takes_an_execution_and_nothing_else_for_it():
    assert wdscale.Execution is Execution
    with pytest.raises(wdscale.WdscaleError, match="execution must be a wdscale.Execution"):
        wdscale.Study(execution={"workers": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workers"):
        wdscale.Study(workers=2)  # type: ignore[call-arg]
