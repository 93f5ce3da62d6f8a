"""The data that flows through a study: one run's config, its data, and its result.

plan -> [RunConfig] -> runs -> [RunResult] -> store -> analysis -> report
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional

import torch
from torch import nn

from ...errors import WdscaleError
from ...schedules import Schedule

SIZE_AXES = ("width", "depth", "n_train", "batch_size")
# what a task's model predicts: a class per sample, or the next token at every position
Objective = Literal["classification", "lm"]
# a study's model family: model_fn(width, depth) -> a fresh module
ModelFn = Callable[[int, int], nn.Module]
STATUSES = ("ok", "not_learned", "diverged", "failed")
# the training regime's RunConfig fields, added after runs were stored: left out of the run id at
# their defaults, so a run of the old regime (a constant lr) keeps the id it was stored under, and
# filled in with them where an older store or export has no such column
REGIME_DEFAULTS = {
    "schedule": "constant",
    "warmup": 0.0,
    "final_lr": 0.0,
    "decay_fraction": 0.2,
    "evals_per_epoch": 1,
}


def two_arg(model_fn: Callable[..., nn.Module], size_axis: str) -> ModelFn:
    """A user's model family as `model_fn(width, depth)`, the form wdscale calls: users write
    `model_fn(size)` (the size on the study's axis) or `model_fn(width, depth)`."""
    try:
        params = inspect.signature(model_fn).parameters.values()
        n = len([p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):
        n = 1
    if n >= 2:
        return model_fn
    if size_axis == "depth":
        return lambda width, depth: model_fn(depth)
    return lambda width, depth: model_fn(width)


def eval_steps(steps_per_epoch: int, evals_per_epoch: int) -> list[int]:
    """`evals_per_epoch` steps of an epoch of `steps_per_epoch` (counted from 1), evenly spaced, the
    last one the epoch's end: after each, a run's validation loss joins its history.

    Raises:
        WdscaleError: evals_per_epoch is not a whole number from 1 to steps_per_epoch.
    """
    k = evals_per_epoch
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= steps_per_epoch:
        raise WdscaleError(
            f"evals_per_epoch={k!r} is not allowed: a whole number from 1 to the steps in an epoch ({steps_per_epoch})"
        )
    return [(2 * steps_per_epoch * (i + 1) + k) // (2 * k) for i in range(k)]  # rounded half up


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run. Its hash is the run's key in the store."""

    task: str
    size_axis: str  # which knob the study scales: one of SIZE_AXES
    size: int  # the value of that knob for this run
    width: int
    depth: int
    n_train: int  # training samples used
    batch_size: int
    base_width: int  # the size where the decay setting is tuned (for rules that need a base)
    base_depth: int
    rule: str
    setting: float  # the size-free decay setting the study sweeps: λ, or τ for τ-rules
    optimizer: str  # "sgd" | "adam" | "adamw"
    lr: float
    epochs: int
    seed: int
    momentum: float = 0.0  # SGD only
    decay_vectors: bool = False
    task_options: tuple[tuple[str, Any], ...] = ()  # extra task knobs, kept hashable
    # the lr schedule (`wdscale.schedules.Schedule`): one multiplier of every group's lr per step
    schedule: str = "constant"
    warmup: float = 0.0
    final_lr: float = 0.0
    decay_fraction: float = 0.2
    # validation evaluations per epoch, evenly spaced by steps, the last at the epoch's end: more
    # than one gives a one-pass run the intermediate losses a pruner reads (training is unchanged)
    evals_per_epoch: int = 1

    @property
    def run_id(self) -> str:
        d = dataclasses.asdict(self)
        for name, default in REGIME_DEFAULTS.items():  # fields added later: old runs keep their ids
            if d[name] == default:
                del d[name]
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def lr_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.warmup, self.final_lr, self.decay_fraction)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def eval_steps(self) -> list[int]:
        """The steps within an epoch (counted from 1) after which validation runs: `evals_per_epoch`
        of them, evenly spaced, the last the epoch's last step."""
        return eval_steps(self.steps_per_epoch, self.evals_per_epoch)

    @property
    def total_steps(self) -> int:
        """The optimizer steps the run takes (what its schedule spans)."""
        return self.epochs * self.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["task_options"] = [list(kv) for kv in self.task_options]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        d["task_options"] = tuple(tuple(kv) for kv in d.get("task_options", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class RunResult:
    """What one run produced. status: one of STATUSES —
    "ok"; "not_learned" (finished, but its final training loss is not below its initial one, or
    its validation loss is no better than chance: kept, with the reason in `error`, and left out
    of the fits); "diverged" (loss became NaN/inf); "failed" (raised, the message in `error`).
    path and threads say how it was executed: "sequential", "batched-bmm" or "batched-vmap", and
    torch's intra-op thread count (the same config on the same machine, path and threads gives
    the same numbers; last-bit differences grow into percent-level ones over a run)."""

    run_id: str
    status: str
    train_loss: float = float("nan")  # final training loss (mean over the last epoch)
    val_loss: float = float("nan")  # final validation loss
    best_val_loss: float = float("nan")
    val_acc: float = float("nan")  # final validation accuracy, NaN where undefined
    best_val_acc: float = float("nan")
    steps: int = 0
    wall_time: float = 0.0
    error: Optional[str] = None
    history: list[float] = field(default_factory=list)  # validation loss at each evaluation (config.eval_steps)
    path: str = ""
    threads: int = 0
    n_params: int = 0  # trainable parameters of the run's model (0: not known)
    # CPU seconds its process spent on it (a batched job's shared by its K runs; NaN: not measured —
    # a GPU run, a script, a run stored before): unlike wall time, not inflated by a busy machine
    cpu_time: float = float("nan")


@dataclass
class TaskData:
    """Tensors of one task. objective "classification": x (N, ...), y (N,) class ids;
    objective "lm": x (N, T) token ids, y (N, T) next-token ids."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int
    objective: Objective = "classification"

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def subset(self, n_train: int) -> TaskData:
        """The first n_train training samples (the data-size axis); validation is unchanged."""
        if n_train > self.n_train:
            raise WdscaleError(f"n_train={n_train} is more than the {self.n_train} training samples this task has")
        return dataclasses.replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train])
