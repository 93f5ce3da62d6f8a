"""Your script, as one run of a study: `run = wdscale.current_run()` inside a training script that a
study started (`wdscale study run --command "python train.py ..."`).

It gives what a training function's `run` gives — `config`, `steps`, `device`, `lr_lambda`,
`lr_scheduler()`, `report(step, val_loss)` — plus `build(make_model)`, which builds the model at
the run's size (seeded by the run's seed, on its device) and the rule's optimizer (the base model
from the same factory at the base size, so `mup`, `sqrt_width`, `completep` work), and
`finish(val_loss)`, which hands the result back. Under torchrun / accelerate every rank builds the
same model and optimizer; only rank 0's `report` and `finish` count, so the run is stored once.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ...errors import WdscaleError
from ...schedules import Schedule
from ..plan.config import RunConfig, two_arg
from .loop import build, trainable_params
from .user_loop import check_steps_and_ratios, ratio_mismatch

SPEC_ENV = "WDSCALE_RUN"  # the run's spec (a JSON file the driver wrote)
RESULT_ENV = "WDSCALE_RESULT"  # where rank 0 writes what the run reports


def _rank() -> int:
    """This process's global rank under torchrun / accelerate / deepspeed (0 alone)."""
    for name in ("RANK", "LOCAL_PROCESS_INDEX", "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return 0


def _local_device(device: str) -> torch.device:
    """The run's device for this process: its share's GPU `LOCAL_RANK` under a launcher."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


@dataclass
class ScriptRun:
    """One run of a study, inside your script (see the module's doc).

    Attributes:
        config: everything the run depends on (size, width, depth, rule, setting, lr, seed, epochs,
            batch_size, n_train, schedule, ...).
        steps: the optimizer steps the plan assumes (epochs × ⌈n_train / batch_size⌉).
        device: where this process trains (its GPU `LOCAL_RANK` under a launcher).
        lr_lambda: the plan's schedule as a multiplier of the step, for torch's `LambdaLR`.
        rank: this process's rank (0 alone, or the launcher's RANK).
        history: what `report` recorded, (step, validation loss) pairs.
    """

    config: RunConfig
    steps: int
    device: torch.device
    lr_lambda: Callable[[int], float]
    rank: int
    result_path: Optional[Path]
    optimizer: Optional[torch.optim.Optimizer] = None
    history: list[tuple[int, float]] = field(default_factory=list)
    taken: int = 0
    n_params: int = 0
    finished: bool = False
    expected_lrs: list[float] = field(default_factory=list)
    mismatch: Optional[str] = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process whose `report` and `finish` count."""
        return self.rank == 0

    @property
    def schedule(self) -> Schedule:
        return self.config.lr_schedule

    def build(self, make_model: Callable[..., nn.Module]) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The model at the run's size (seeded by the run's seed, on `device`) and the rule's
        per-group optimizer at the run's lr and setting; its steps are counted.

        Args:
            make_model: your model factory, `make_model(width, depth)` or `make_model(size)`.

        Raises:
            WdscaleError: the factory fails, or the rule cannot be applied to its model.
        """
        factory = two_arg(make_model, self.config.size_axis)
        try:
            model, opt = build(self.config, self.config.n_train, factory, device=self.device)
        except WdscaleError:
            raise
        except Exception as e:
            raise WdscaleError(
                f"make_model at width={self.config.width}, depth={self.config.depth} failed: {type(e).__name__}: {e}"
            ) from e
        self.n_params = trainable_params(model)
        self.optimizer = opt
        self.expected_lrs = [float(g["lr"]) for g in opt.param_groups]

        def count(*_: Any) -> None:
            self.taken += 1
            if self.mismatch is None:  # the first step that broke the rule's ratios, as a train_fn's
                self.mismatch = ratio_mismatch(opt, self.expected_lrs)

        opt.register_step_post_hook(count)
        return model, opt

    def lr_scheduler(self) -> LambdaLR:
        """torch's `LambdaLR` on the built optimizer with the plan's schedule (call `.step()`
        after each `optimizer.step()`): every group keeps the rule's ratio.

        Raises:
            WdscaleError: before `build`.
        """
        if self.optimizer is None:
            raise WdscaleError("call run.build(make_model) before run.lr_scheduler(): it schedules that optimizer")
        return LambdaLR(self.optimizer, self.lr_lambda)

    def report(self, step: int, val_loss: float) -> None:
        """Record a validation loss at an optimizer step (rank 0's count)."""
        if self.is_main:
            self.history.append((int(step), float(val_loss)))

    def finish(self, val_loss: float) -> None:
        """Hand the run's final validation loss back to the study (rank 0's counts; NaN or inf:
        the run diverged). Steps taken and the history go with it."""
        if isinstance(val_loss, torch.Tensor):
            val_loss = float(val_loss.detach().item())
        if isinstance(val_loss, bool) or not isinstance(val_loss, (int, float)):
            raise WdscaleError(f"run.finish({val_loss!r}): give the final validation loss as a float")
        if not self.is_main or self.result_path is None:
            return
        loss = float(val_loss)
        status: Optional[str] = None if math.isfinite(loss) else "diverged"
        error = None
        built = self.optimizer is not None
        if self.optimizer is not None:  # the checks a train_fn's run gets
            override, error = check_steps_and_ratios(
                self.optimizer, self.expected_lrs, self.taken, self.steps, self.mismatch
            )
            status = override or status
        result = {
            "val_loss": loss if math.isfinite(loss) else None,
            "steps": self.taken if built else self.steps,
            "history": self.history,
            "error": error,
            "status": status,
            "n_params": self.n_params,
        }
        if result["val_loss"] is None:
            result["val_loss"] = float("nan")
        tmp = self.result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(self.result_path)  # whole or not at all
        self.finished = True


def current_run() -> ScriptRun:
    """The study's run this script is training (see the module's doc).

    Raises:
        WdscaleError: the script was not started by a wdscale study.
    """
    spec_path = os.environ.get(SPEC_ENV)
    if not spec_path:
        raise WdscaleError(
            f"wdscale.current_run(): this process was not started by a wdscale study (no {SPEC_ENV} in its "
            "environment); run the script with `wdscale study run --model ... --command 'python train.py ...'`"
        )
    try:
        spec = json.loads(Path(spec_path).read_text())
        config = RunConfig.from_dict(spec["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WdscaleError(f"wdscale.current_run(): cannot read the run's spec {spec_path!r}: {e}") from None
    threads = int(spec.get("threads") or 0)
    if threads > 0 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads)
    result = os.environ.get(RESULT_ENV)
    return ScriptRun(
        config=config,
        steps=config.total_steps,
        device=_local_device(spec.get("device", "cpu")),
        lr_lambda=config.lr_schedule.lr_lambda(config.total_steps),
        rank=_rank(),
        result_path=Path(result) if result else None,
    )
