"""GPU shares: which GPUs each of a study's concurrent runs may use (Ray Tune's `with_resources`,
for one machine). A run's processes see only their share through `CUDA_VISIBLE_DEVICES`, set
before CUDA starts in them, and no GPU is given to two runs at once unless the share is a fraction
(`gpus_per_run=0.5`: two runs on each GPU).

A slot is one place a run can train: a share of GPUs, or a plain CPU worker when the study uses no
GPU. The local backend starts one run per free slot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ...errors import WdscaleError

GpuList = Sequence[Union[int, str]]


@dataclass(frozen=True)
class Slot:
    """One place a run trains: `gpus` its GPU share (empty: a CPU worker)."""

    index: int
    gpus: tuple[str, ...] = ()

    def env(self) -> dict[str, str]:
        """The environment a run's processes get in this slot."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.gpus)} if self.gpus else {}

    def describe(self) -> str:
        return f"GPU {','.join(self.gpus)}" if self.gpus else f"worker {self.index}"


def check_gpus_per_run(value: object) -> Optional[float]:
    """None (the default: 1 on a GPU study), a whole number ≥ 1, or a fraction 1/k (k runs share a GPU).

    Raises:
        WdscaleError: 0, a negative number, or a fraction that does not divide a GPU evenly.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise WdscaleError(
            f"gpus_per_run={value!r} is not allowed: give a whole number of GPUs ≥ 1 (2 for a 2-GPU torchrun) "
            "or a fraction 1/k of one GPU (0.5: two runs share a GPU)"
        )
    if value >= 1 and value != int(value):
        raise WdscaleError(f"gpus_per_run={value!r}: above 1, a run takes a whole number of GPUs")
    if value < 1 and abs(1 / value - round(1 / value)) > 1e-6:
        raise WdscaleError(f"gpus_per_run={value!r}: below 1, a run takes 1/k of a GPU (0.5, 0.25, ...)")
    if value > 4096:
        raise WdscaleError(f"gpus_per_run={value!r} is more GPUs than any machine has")
    return float(value)


def parse_gpus(value: Union[str, GpuList, None]) -> Optional[tuple[str, ...]]:
    """The GPUs a study may use: "0,1,2" or a list of ids; None: every visible one.

    Raises:
        WdscaleError: an empty list, a repeated id, or an id that is not a whole number ≥ 0.
    """
    if value is None:
        return None
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    if not items or any(not s.isdigit() for s in items):
        raise WdscaleError(f"gpus={value!r}: give GPU ids as whole numbers ≥ 0, e.g. 0,1,2")
    if len(set(items)) != len(items):
        raise WdscaleError(f"gpus={value!r} names a GPU twice")
    return tuple(str(int(s)) for s in items)


def visible_gpus() -> tuple[str, ...]:
    """The GPUs this process may use, without starting CUDA in it (forked runs start CUDA
    themselves, in their own share): `CUDA_VISIBLE_DEVICES` if set, else NVML's count."""
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if seen is not None:
        return tuple(s.strip() for s in seen.split(",") if s.strip() and not s.strip().startswith("-"))
    # the NVML count (torch.cuda.device_count uses it when it can) leaves CUDA uninitialised here
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    return tuple(str(i) for i in range(torch.cuda.device_count()))


def plan_slots(
    *,
    device: str,
    workers: int,
    gpus_per_run: Optional[float] = None,
    gpus: Optional[tuple[str, ...]] = None,
) -> list[Slot]:
    """The slots runs train in: GPU shares when the study runs on CUDA or names its GPUs, else
    `workers` CPU workers.

    Args:
        device: the study's device ("cpu", "cuda", "cuda:N"; "cuda:N" alone means GPU N).
        workers: CPU workers; on GPUs, the most runs at once (default there: every share).
        gpus_per_run: GPUs per run (default 1 on GPUs); a fraction 1/k puts k runs on a GPU.
        gpus: the GPUs to use (default: every visible one); given on a CPU study, runs still get
            their share in `CUDA_VISIBLE_DEVICES` (what the placement tests check).

    Raises:
        WdscaleError: more GPUs per run than there are, or a GPU study with no GPU visible.
    """
    on_gpu = device.startswith("cuda")
    if not on_gpu and gpus is None:
        if gpus_per_run is not None:
            raise WdscaleError(
                f"gpus_per_run={gpus_per_run:g} on device {device!r}: GPU shares need --device cuda or --gpus"
            )
        return [Slot(i) for i in range(workers)]
    if gpus is None:
        index = device.partition(":")[2]
        gpus = (index,) if index else visible_gpus()
    if not gpus:
        raise WdscaleError(f"device {device!r} but no GPU is visible (CUDA_VISIBLE_DEVICES is empty?)")
    per = gpus_per_run or 1.0
    if per > len(gpus):
        raise WdscaleError(f"gpus_per_run={per:g} but only {len(gpus)} GPU(s) are given ({','.join(gpus)})")
    if per >= 1:
        k = int(per)
        slots = [Slot(i, tuple(gpus[i * k : (i + 1) * k])) for i in range(len(gpus) // k)]
    else:
        share = round(1 / per)
        slots = [Slot(i, (gpus[i // share],)) for i in range(len(gpus) * share)]
    return slots
