"""Your training: a study's run trained by the user's own function, `train_fn(run) -> val_loss`.

wdscale builds what the study decides — the model at the run's size (seeded by the run's seed),
the rule's per-group optimizer at the run's lr and setting, the plan's lr schedule — and hands it
over; the function owns everything else (data loading, loss, clipping, precision, accumulation,
evaluation) and returns the final validation loss. What comes back is checked and recorded like
any run: a float is the run's loss, NaN or inf is "diverged", an exception is "failed" with its
message, anything else is "failed" naming what came back. The optimizer steps actually taken are
counted (a hook on the optimizer), and a run that took another number than the plan's is flagged:
the rules' data facts (N, B, epochs) assume the plan's steps. The same hook checks the groups' lr
ratios after every step: a run that took no step, or whose loop erased the rule's per-group lrs,
is "failed" (its numbers kept, its loss no measurement of the rule); `check_steps_and_ratios` is
that judgement, for any path that trains with a rule's optimizer.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ...schedules import Schedule
from ..plan.config import ModelFn, RunConfig, RunResult
from .loop import build, one_line, trainable_params

PATH = "user"  # a run's `path` when the user's function trained it


@dataclass
class Run:
    """One run of a study, for your training function.

    Attributes:
        model: the model at the run's size, built by your `model_fn`, seeded by the run's seed, on
            `device`.
        optimizer: the rule's per-group torch optimizer at the run's lr and setting (its groups'
            lr ratios are the rule's: step it with `lr_scheduler()`, or any scheduler that scales
            every group alike; a loop that sets lrs itself writes `g["lr"] = lr * g["lr_scale"]`,
            and a run whose ratios moved is "failed").
        config: everything the run depends on (size, width, depth, rule, setting, lr, seed,
            epochs, batch_size, n_train, schedule, warmup, final_lr, ...).
        steps: the optimizer steps the plan assumes (epochs × ⌈n_train / batch_size⌉): what the
            schedule spans and what the rules' data facts assume.
        device: where to train.
        lr_lambda: the plan's schedule as a multiplier of the step, for torch's `LambdaLR`.
        history: what `report` recorded, (step, validation loss) pairs.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: RunConfig
    steps: int
    device: torch.device
    lr_lambda: Callable[[int], float]
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def schedule(self) -> Schedule:
        return self.config.lr_schedule

    def lr_scheduler(self) -> LambdaLR:
        """torch's `LambdaLR` on `optimizer` with the plan's schedule (call `.step()` after each
        `optimizer.step()`); every group's lr is its initial lr × the multiplier, so the rule's
        per-group ratios hold."""
        return LambdaLR(self.optimizer, self.lr_lambda)

    def report(self, step: int, val_loss: float) -> None:
        """Record a validation loss at an optimizer step (the report plots the history)."""
        self.history.append((int(step), float(val_loss)))


TrainFn = Callable[[Run], Union[float, torch.Tensor]]


def _as_loss(value: object) -> float:
    """The function's return value as a float, or a ValueError naming what came back."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    shown = repr(value) if len(repr(value)) < 60 else f"a {type(value).__name__}"
    raise ValueError(
        f"train_fn returned {shown} ({type(value).__name__}); it must return the run's final validation loss as a "
        "float (NaN or inf: the run diverged)"
    )


RATIO_RTOL = 1e-6  # lr / lr_scale equal across groups to this: one common multiplier (a schedule)


def ratio_mismatch(optimizer: torch.optim.Optimizer, expected_lrs: Sequence[float]) -> Optional[str]:
    """What is wrong with the groups' lrs now, or None when they are one common multiple of the
    rule's `expected_lrs` (any schedule that scales every group alike keeps that)."""
    groups = optimizer.param_groups
    if len(groups) != len(expected_lrs):
        return f"the optimizer has {len(groups)} param groups, the rule built {len(expected_lrs)}"
    ratios = [float(g["lr"]) / e for g, e in zip(groups, expected_lrs) if e > 0]
    if not ratios or all(math.isclose(r, ratios[0], rel_tol=RATIO_RTOL) for r in ratios):
        return None
    lrs = ", ".join(f"{float(g['lr']):.3g}" for g in groups)
    rule = ", ".join(f"{e:.3g}" for e in expected_lrs)
    return f"group lrs [{lrs}] are not one multiple of the rule's [{rule}]"


def check_steps_and_ratios(
    optimizer: torch.optim.Optimizer,
    expected_lrs: Sequence[float],
    taken: int,
    planned: int,
    mismatch: Optional[str] = None,
) -> tuple[Optional[str], Optional[str]]:
    """Did a user's loop follow the run's rule: take optimizer steps and keep the groups' lr ratios?

    Args:
        optimizer: the run's optimizer, after the loop.
        expected_lrs: each group's lr as the rule built it.
        taken: the optimizer steps the loop took.
        planned: the steps the plan assumes.
        mismatch: a ratio mismatch already seen during the loop (`ratio_mismatch` in a step hook,
            the first one kept); None: the optimizer's lrs are checked now.

    Returns:
        (status override, message): ("failed", why) for a loop that took no step or broke the
        rule's ratios (its loss is not the rule's); (None, why) for another step count than the
        plan's (the run stands, flagged); (None, None) when all is as planned.
    """
    if taken == 0:
        return "failed", (
            f"took no optimizer step (the plan assumes {planned}): train_fn must call run.optimizer.step() — "
            "an optimizer of its own trains nothing the study measures"
        )
    mismatch = mismatch or ratio_mismatch(optimizer, expected_lrs)
    if mismatch:
        return "failed", (
            f"the loop changed the rule's per-group lr ratios ({mismatch}): a loop that sets "
            'g["lr"] = lr for every group (as nanoGPT\'s does) erases them; write g["lr"] = lr * g["lr_scale"], '
            "or step run.lr_scheduler()"
        )
    if taken != planned:
        return None, (
            f"took {taken} optimizer steps, the plan assumes {planned}: the rules' data facts and the schedule "
            "assume the plan's"
        )
    return None, None


def train_user_run(config: RunConfig, train_fn: TrainFn, model_fn: ModelFn, *, device: str = "cpu") -> RunResult:
    """Train one run with the user's function; never raises for the run's own failure."""
    start = time.perf_counter()
    taken = [0]
    first_mismatch: list[Optional[str]] = [None]
    n_params = 0
    try:
        model, opt = build(config, config.n_train, model_fn, device=device)
        n_params = trainable_params(model)
        expected = [float(g["lr"]) for g in opt.param_groups]

        def count_and_check(*_: object) -> None:
            taken[0] += 1
            if first_mismatch[0] is None and (found := ratio_mismatch(opt, expected)):
                first_mismatch[0] = f"at step {taken[0]}: {found}"

        opt.register_step_post_hook(count_and_check)
        run = Run(
            model=model,
            optimizer=opt,
            config=config,
            steps=config.total_steps,
            device=torch.device(device),
            lr_lambda=config.lr_schedule.lr_lambda(config.total_steps),
        )
        loss = _as_loss(train_fn(run))
    except Exception as e:  # the study goes on; the store records why this run failed
        traceback.print_exc()  # whole, into the run's log (its process's stderr)
        return RunResult(
            run_id=config.run_id,
            status="failed",
            steps=taken[0],
            wall_time=time.perf_counter() - start,
            error=one_line(e),
            path=PATH,
            n_params=n_params,
        )
    history = [v for _, v in run.history]
    status, error = check_steps_and_ratios(opt, expected, taken[0], run.steps, first_mismatch[0])
    finite = math.isfinite(loss)
    return RunResult(
        run_id=config.run_id,
        # a loop that broke the rule keeps its numbers (nothing finished is lost) but is no run of the rule
        status=status or ("ok" if finite else "diverged"),
        val_loss=loss if finite else float("nan"),
        best_val_loss=min([loss, *(v for v in history if math.isfinite(v))]) if finite else float("nan"),
        steps=taken[0],
        wall_time=time.perf_counter() - start,
        error=error,
        history=history,
        path=PATH,
        n_params=n_params,
    )
