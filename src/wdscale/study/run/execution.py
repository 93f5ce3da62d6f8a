"""`Execution`: how a study's runs are executed — where (backend, workers, device), how (batched or
one by one, threads per run) and whether a progress bar shows. Never what they compute: a run's id
and losses do not depend on it (threads are recorded with each run). One value passed from the
faces to the driver, instead of the same keywords threaded through every call."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ...checks import check_positive_int, check_threads
from ...errors import WdscaleError, WdscaleTypeError
from .backends import Backend, check_run_timeout, make_backend
from .placement import check_gpus_per_run, parse_gpus

BACKEND_NAMES = ("local", "ray")


def _cuda_available() -> bool:
    """torch.cuda.is_available() by NVML's count: CUDA is not started in the driver, so the runs'
    forked processes can start it on their own GPU share."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    return torch.cuda.is_available()


def default_device() -> str:
    return "cuda" if _cuda_available() else "cpu"


def check_device(device: str) -> str:
    """`cpu`, `cuda` or `cuda:N`, and only a CUDA device that torch can see."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise WdscaleError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise WdscaleError(f"device {device!r}: studies run on cpu or cuda")
    if dev.type == "cuda":
        if not _cuda_available():
            raise WdscaleError(
                f"device {device!r}: CUDA is not available here (torch.cuda.is_available() is False); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise WdscaleError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


@dataclass(frozen=True)
class Execution:
    """How a study's runs are executed.

    Args:
        backend: "local" (worker processes on this machine), "ray" (a Ray cluster), or a backend
            object (`LocalBackend`, `RayBackend`, or your own with the `Backend` protocol).
        workers: worker processes (local) or concurrent runs (Ray); default: cores / threads.
        address: a Ray cluster's address (default: start a local Ray); only with backend "ray".
        device: "cpu", "cuda" or "cuda:N" (default: cuda when torch sees one, else cpu).
        batch: train runs that differ only in seed, setting, lr and rule K at a time in the batched
            engine where it is faster (same losses to float tolerance); False: one by one.
        threads: torch intra-op threads per run, the same in every backend.
        progress: show a progress bar.
        gpus_per_run: GPUs each run gets (default 1 on a GPU study; 2 for a 2-GPU torchrun; 0.5:
            two runs share a GPU); each run's processes see only their share (CUDA_VISIBLE_DEVICES).
            Ray: the tasks' num_gpus.
        gpus: the GPUs a local study uses, e.g. "0,1,2" or [0, 1, 2] (default: every visible one).
        run_timeout: seconds one run may take; past it its processes (a launcher's children
            too) are killed and the run is stored failed, "timed out" (default: no limit).

    Raises:
        WdscaleError: an unknown backend, workers or threads not a whole number ≥ 1, an address
            without Ray, workers/address/GPUs/timeout given with a backend object (set them on
            it), a GPU share that is 0, negative or not 1/k, or a timeout that is not > 0.
    """

    backend: Union[str, Backend] = "local"
    workers: Optional[int] = None
    address: Optional[str] = None
    device: Optional[str] = None
    batch: bool = True
    threads: int = 1
    progress: bool = True
    gpus_per_run: Optional[float] = None
    gpus: Optional[Union[str, tuple[str, ...]]] = None
    run_timeout: Optional[float] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus_per_run", check_gpus_per_run(self.gpus_per_run))
        object.__setattr__(self, "gpus", parse_gpus(self.gpus))
        object.__setattr__(self, "run_timeout", check_run_timeout(self.run_timeout))
        if isinstance(self.backend, str):
            if self.backend not in BACKEND_NAMES:
                raise WdscaleError(f"unknown backend {self.backend!r}; known backends: {', '.join(BACKEND_NAMES)}")
            if self.address is not None and self.backend != "ray":
                raise WdscaleError(f"address={self.address!r} has no effect with the {self.backend!r} backend; use ray")
        elif any(getattr(self, k) is not None for k in ("workers", "address", "gpus_per_run", "gpus", "run_timeout")):
            raise WdscaleError(
                "workers, address, gpus_per_run, gpus and run_timeout are set on a backend object itself, not beside it"
            )
        if self.backend == "ray" and self.gpus is not None:
            raise WdscaleError("gpus= picks a local study's GPUs; a Ray cluster places its tasks itself (gpus_per_run)")
        if self.workers is not None:
            check_positive_int("workers", self.workers)
        check_threads(self.threads, local=self.backend != "ray")
        for name in ("batch", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise WdscaleTypeError(f"{name}={getattr(self, name)!r} is not allowed: {name} is True or False")
        if self.device is not None and not isinstance(self.device, str):
            raise WdscaleTypeError(f"device={self.device!r} is not allowed: give cpu, cuda or cuda:N")

    def make_backend(self) -> Backend:
        """The backend object (built from its name, or the one given)."""
        if isinstance(self.backend, str):
            return make_backend(
                self.backend,
                workers=self.workers,
                address=self.address,
                gpus_per_run=self.gpus_per_run,
                gpus=parse_gpus(self.gpus),
                run_timeout=self.run_timeout,
            )
        return self.backend

    def resolved_device(self) -> str:
        """The device runs train on, checked (default: cuda when torch sees one, else cpu)."""
        return check_device(self.device or default_device())


DEFAULT_EXECUTION = Execution()  # local worker processes, one per core, batched where faster, a progress bar
