"""Learning-rate schedules as one multiplier per optimizer step, the same for every param group.

A schedule scales every group's lr by one number, so the per-group lr ratios a rule sets (μP's
per-layer lrs) hold at every step; `check_keeps_ratios` catches a scheduler that breaks them.

Convention (torch's `LambdaLR`): step index t = 0..T−1 counts the optimizer steps already taken,
and optimizer step t+1 uses lr = peak × multiplier(t, T); build the scheduler before the first
`optimizer.step()` and call `scheduler.step()` after each one. With W warmup steps (warmup × T
rounded half up; at least 1 when warmup > 0 and T ≥ 2; always < T):

- t < W: (t + 1) / (W + 1), a ramp that starts above 0 and reaches the peak at step W (so even
  W = 1 warms up: step 0 at half the peak);
- t ≥ W, with progress p = (t − W) / (T − W) in [0, 1), and f = final_lr:
  constant: 1; cosine: f + (1 − f)·½(1 + cos πp) (Loshchilov & Hutter 2017, SGDR);
  linear: 1 − p, the last step at 1/(T − W), no step wasted at lr 0 (Bergsma et al. 2025,
  "Straight to Zero: Why Linearly Decaying the Learning Rate to Zero Works Best for LLMs");
  wsd: 1 until the last D = max(1, decay_fraction × T rounded half up) steps (at most T − W),
  then f + (1 − f)(1 − k/D) for the k-th of them (k = 0..D−1): the first is still at the peak, the
  last at f + (1 − f)/D (Hu et al. 2024, MiniCPM; Hägele et al. 2024, "Scaling Laws and
  Compute-Optimal Training Beyond Fixed Training Durations"). With warmup 0, decay_fraction 1
  and final_lr 0 it is the linear schedule.

A step t ≥ T gets the last step's multiplier (a loop that runs one step more does not crash).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .checks import check_choice, check_fraction, check_non_negative, check_number, check_positive_int
from .errors import WdscaleError, WdscaleTypeError

__all__ = ["SCHEDULE_NAMES", "Schedule", "check_keeps_ratios", "lr_scheduler"]

SCHEDULE_NAMES = ("constant", "cosine", "linear", "wsd")
_DEFAULT_DECAY_FRACTION = 0.2


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))  # 0.7 * 5 == 3.4999999999999996 still rounds to 4


def _refuse(name: str, value: Any, why: str) -> WdscaleError:
    return WdscaleError(f"{name}={value!r} is not allowed: {why}")


def _pct(x: float) -> str:
    return "0" if x == 0 else f"{100 * x:g} %"


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: the multiplier of every group's peak lr at each step.

    Attributes:
        name: one of SCHEDULE_NAMES.
        warmup: the fraction of the run's steps in linear warmup, in [0, 1).
        final_lr: the fraction of the peak lr decayed toward, in [0, 1] (cosine and wsd only).
        decay_fraction: the fraction of the run's steps in wsd's final decay, in (0, 1]
            (wsd only; any other value than the default with another schedule is refused).

    Raises:
        WdscaleError: a value outside its range, a setting the schedule has no use for, or
            warmup + decay_fraction > 1 for wsd.
        WdscaleTypeError: a value of the wrong type (a bool, a string where a number belongs).
    """

    name: str = "constant"
    warmup: float = 0.0
    final_lr: float = 0.0
    decay_fraction: float = _DEFAULT_DECAY_FRACTION

    def __post_init__(self) -> None:
        check_choice("schedule", self.name, SCHEDULE_NAMES)
        warmup, final = check_fraction("warmup", self.warmup), check_number("final_lr", self.final_lr)
        decay = check_number("decay_fraction", self.decay_fraction)
        if not 0 <= final <= 1:
            raise _refuse("final_lr", self.final_lr, "final_lr must be a number in [0, 1]")
        if not 0 < decay <= 1:
            raise _refuse("decay_fraction", self.decay_fraction, "decay_fraction must be a number in (0, 1]")
        if final != 0 and self.name in ("constant", "linear"):
            why = f"{self.name!r} has no floor to decay to; 'cosine' and 'wsd' take final_lr"
            raise _refuse("final_lr", self.final_lr, why)
        if decay != _DEFAULT_DECAY_FRACTION and self.name != "wsd":
            raise _refuse("decay_fraction", self.decay_fraction, f"only 'wsd' takes it, not {self.name!r}")
        if self.name == "wsd" and warmup + decay > 1 + 1e-12:
            why = f"with warmup={self.warmup!r}, for 'wsd' warmup + decay_fraction must be at most 1"
            raise _refuse("decay_fraction", self.decay_fraction, why)
        for field, value in (("warmup", warmup), ("final_lr", final), ("decay_fraction", decay)):
            object.__setattr__(self, field, value)  # plain floats (ints and numpy scalars accepted)

    @property
    def is_constant(self) -> bool:
        """True when every multiplier is 1: constant with no warmup."""
        return self.name == "constant" and self.warmup == 0

    def _phases(self, total_steps: Any) -> tuple[int, int, int]:
        """(T, W, D): the checked step count, the warmup steps and wsd's decay steps (0 otherwise)."""
        total = check_positive_int("total_steps", total_steps)
        warm = 0 if self.warmup == 0 else min(total - 1, max(1, _round_half_up(self.warmup * total)))
        decay = min(total - warm, max(1, _round_half_up(self.decay_fraction * total))) if self.name == "wsd" else 0
        return total, warm, decay

    def _at(self, step: Any, total: int, warm: int, decay: int) -> float:
        if check_number("step", step) < 0 or step != int(step):
            raise _refuse("step", step, "step must be an integer >= 0 (optimizer steps already taken)")
        t = min(int(step), total - 1)
        if t < warm:
            return (t + 1) / (warm + 1)
        p, f = (t - warm) / (total - warm), self.final_lr
        if self.name == "cosine":
            return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p))
        if self.name == "linear":
            return 1 - p
        if self.name == "wsd" and t >= total - decay:
            return f + (1 - f) * (1 - (t - (total - decay)) / decay)
        return 1.0

    def multiplier(self, step: int, total_steps: int) -> float:
        """The multiplier of the peak lr for the optimizer step after `step` steps taken.

        Args:
            step: optimizer steps already taken, >= 0 (a step >= total_steps gets the last step's value).
            total_steps: the run's number of optimizer steps T, > 0.

        Returns:
            The multiplier, in [0, 1] (see the module docstring for the formulas).

        Raises:
            WdscaleError: a negative or non-integer step, or a total_steps that is not a positive integer.
        """
        return self._at(step, *self._phases(total_steps))

    def lr_lambda(self, total_steps: int) -> Callable[[int], float]:
        """The function `torch.optim.lr_scheduler.LambdaLR` takes: step -> multiplier(step, total_steps).

        A plain function, which LambdaLR's state_dict leaves out: checkpoints hold no wdscale object.
        Raises as `multiplier` (total_steps when called, step when the function is).
        """
        phases = self._phases(total_steps)
        return lambda step: self._at(step, *phases)

    def multipliers(self, total_steps: int) -> list[float]:
        """All T multipliers, for steps 0..T−1, as a list of floats. Raises as `lr_lambda`."""
        phases = self._phases(total_steps)
        return [self._at(t, *phases) for t in range(phases[0])]

    def mean_multiplier(self, total_steps: int) -> float:
        """The run-average multiplier: the exact mean over the T steps. Raises as `lr_lambda`."""
        values = self.multipliers(total_steps)
        return math.fsum(values) / len(values)

    def describe(self) -> str:
        """The schedule in words, e.g. "cosine to 10 % after 5 % warmup"."""
        after = f" after {_pct(self.warmup)} warmup" if self.warmup else ""
        if self.name == "constant":
            return f"constant{after}"
        if self.name == "wsd":
            warm = f"{_pct(self.warmup)} warmup, " if self.warmup else ""
            return f"wsd: {warm}decay over the last {_pct(self.decay_fraction)} to {_pct(self.final_lr)}"
        return f"{self.name} to {_pct(self.final_lr)}{after}"

    def as_dict(self) -> dict[str, Any]:
        """The settings as {"schedule", "warmup", "final_lr", "decay_fraction"} (`Schedule(**d)` needs "name")."""
        return {
            "schedule": self.name,
            "warmup": self.warmup,
            "final_lr": self.final_lr,
            "decay_fraction": self.decay_fraction,
        }


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Union[str, Schedule], total_steps: int, **kwargs: Any
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` with one multiplier for every group: each group's lr is its initial lr × multiplier.

    Args:
        optimizer: the optimizer, its groups' lrs set (by a rule) before this call.
        schedule: a `Schedule`, or one of SCHEDULE_NAMES to build one from `kwargs`.
        total_steps: the run's number of optimizer steps, > 0.
        **kwargs: `Schedule`'s warmup, final_lr, decay_fraction (only with a name).

    Returns:
        The scheduler; call its `step()` after each `optimizer.step()`.

    Raises:
        WdscaleError: a bad total_steps, a bad or unknown keyword, or keywords given with a Schedule.
        WdscaleTypeError: optimizer is not a torch optimizer, or schedule neither a name nor a Schedule.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise WdscaleTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if isinstance(schedule, str):
        unknown = sorted(set(kwargs) - {"warmup", "final_lr", "decay_fraction"})
        if unknown:
            raise WdscaleError(f"unknown keyword(s) {', '.join(unknown)}: allowed are warmup, final_lr, decay_fraction")
        schedule = Schedule(schedule, **kwargs)
    elif not isinstance(schedule, Schedule):
        raise WdscaleTypeError(f"schedule must be a name ({', '.join(SCHEDULE_NAMES)}) or a Schedule, got {schedule!r}")
    elif kwargs:
        raise WdscaleError(f"keyword(s) {', '.join(sorted(kwargs))} are not allowed with a Schedule: set them on it")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_lambda(total_steps))


def check_keeps_ratios(
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[Any] = None,
    *,
    base_lrs: Optional[Sequence[float]] = None,
    rtol: float = 1e-9,
) -> None:
    """Refuse a scheduler whose current group lrs are not one common multiple of the groups' base lrs.

    It only reads the groups' "lr" (and "initial_lr" or "lr_scale"); nothing is stepped or
    written. Every torch scheduler writes "initial_lr", but OneCycleLR overwrites it with max_lr /
    div_factor: to catch a OneCycleLR given one max_lr, pass the lrs the groups had before it was
    built as `base_lrs`. With no scheduler (a loop that sets the lrs itself), a wdscale optimizer's
    groups carry "lr_scale" (the rule's lr ÷ the base lr), so it can be checked after any step.

    Args:
        optimizer: the optimizer whose param_groups are read.
        scheduler: the scheduler driving it, only named in the message.
        base_lrs: the reference lr of each group; default the groups' "initial_lr", else their
            "lr_scale" (a wdscale optimizer's).
        rtol: the relative tolerance on lr / base_lr between groups.

    Raises:
        WdscaleError: a group whose lr / base_lr differs from the first group's (the message names
            them), a base_lrs of the wrong length, or no base_lrs and neither "initial_lr" nor
            "lr_scale" in a group.
    """
    groups = optimizer.param_groups
    if base_lrs is None:
        if all("initial_lr" in g for g in groups):
            base_lrs = [g["initial_lr"] for g in groups]
        elif all("lr_scale" in g for g in groups):
            base_lrs = [g["lr_scale"] for g in groups]
        else:
            raise WdscaleError(
                "a param group has no 'initial_lr' (no scheduler was built on it) and no 'lr_scale' (not built by "
                "wdscale): pass base_lrs"
            )
    if len(base_lrs) != len(groups):
        raise WdscaleError(f"base_lrs has {len(base_lrs)} values: the optimizer has {len(groups)} param groups")
    bases = [
        check_non_negative(f"base_lrs[{i}]", float(b) if torch.is_tensor(b) else b) for i, b in enumerate(base_lrs)
    ]
    lrs = [float(g["lr"]) for g in groups]
    ref = next((i for i, b in enumerate(bases) if b > 0), None)
    if ref is None:
        return
    m_ref = lrs[ref] / bases[ref]
    moved = [
        f"{lr / b:g} in group {i}" if b else f"lr {lr:g} over base 0 in group {i}"
        for i, (lr, b) in enumerate(zip(lrs, bases))
        if (lr != 0 if b == 0 else not math.isclose(lr / b, m_ref, rel_tol=rtol))
    ]
    if moved:
        who = type(scheduler).__name__ if scheduler is not None else "the lr schedule"
        raise WdscaleError(
            f"{who} moved the lr ratios between param groups: lr / base lr is {m_ref:g} in group {ref} but "
            f"{'; '.join(moved)}. Every group's lr must follow one multiplier: give OneCycleLR one max_lr per "
            "group, use wdscale.schedules.lr_scheduler, or in a loop that sets the lrs itself write "
            'g["lr"] = lr * g["lr_scale"], not g["lr"] = lr'
        )
