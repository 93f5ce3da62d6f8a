"""A user's training script as a study's unit of work (W&B Sweeps' `command`, Syne Tune's
`entry_point`): each run starts the command as a subprocess, in its own process group, with the
run's spec handed over in the environment (`WDSCALE_RUN`, read by `wdscale.current_run()`), and
its scalar knobs filled into the command's `{fields}`. What the run reports comes back through a
result file (`run.finish`) or, for a script that does not import wdscale, the last line of its
output that reads `val_loss=<float>`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ...errors import WdscaleError, WdscaleTypeError
from ...optim import decay_mode, param_groups
from ..plan.config import ModelFn, RunConfig, RunResult
from ..train.loop import rule_keywords
from ..train.script_run import RESULT_ENV, SPEC_ENV

# the run's scalar knobs a command may name; `weight_decay` is the λ the rule gives the decayed
# groups at the run's size (equal to `setting` for the rules that take λ as it is); `decay` says
# how to apply it: "decoupled" (AdamW, SGDW: w ← w(1 − ηλ)) or "coupled" (Adam's or SGD's
# weight_decay: L2 added to the gradient)
TEMPLATE_FIELDS = (
    "size",
    "width",
    "depth",
    "lr",
    "setting",
    "weight_decay",
    "seed",
    "epochs",
    "batch_size",
    "n_train",
    "steps",
    "rule",
    "optimizer",
    "decay",
    "run_id",
)
# fields that hand the optimizer's settings to the script: then it builds its own optimizer, and
# only a rule whose groups one (lr, λ) pair describes can run
SETTING_FIELDS = ("lr", "setting", "weight_decay")
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)"
LOSS_LINE = re.compile(rf"val_loss\s*=\s*({_NUMBER})\s*$", re.IGNORECASE)
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Command:
    """A training command: its arguments, some of them holding `{field}` templates.

    Build with `Command.parse("torchrun --nproc-per-node 2 train.py --epochs 3")` or from a list.
    """

    argv: tuple[str, ...]

    @classmethod
    def parse(cls, value: Union[str, Sequence[str], Command]) -> Command:
        """A command from a shell-like string or a list of arguments.

        Raises:
            WdscaleError: an empty command, unbalanced quotes, or a `{field}` that is not one of
                TEMPLATE_FIELDS.
        """
        if isinstance(value, Command):
            return value
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError as e:
                raise WdscaleError(f"command {value!r} does not parse as a shell command line: {e}") from None
        elif isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
            argv = list(value)
        else:
            raise WdscaleTypeError(f"command={value!r}: give a string or a list of strings")
        if not argv or not argv[0].strip():
            raise WdscaleError("the command is empty: give the script to run, e.g. 'python train.py'")
        command = cls(tuple(argv))
        command.fields  # noqa: B018 - checks the templates now, before any run
        return command

    @property
    def fields(self) -> frozenset[str]:
        """The `{field}` names the command fills in."""
        names: set[str] = set()
        for arg in self.argv:
            try:
                parsed = list(string.Formatter().parse(arg))
            except ValueError as e:
                raise WdscaleError(f"command argument {arg!r}: {e} (write a literal brace as {{{{ or }}}})") from None
            for _, name, _spec, _ in parsed:
                if name is None:
                    continue
                if name not in TEMPLATE_FIELDS:
                    raise WdscaleError(
                        f"command argument {arg!r} names {{{name}}}, which is not a run field; "
                        f"fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
                    )
                names.add(name)
        return frozenset(names)

    @property
    def flags_only(self) -> bool:
        """The script takes the optimizer's settings from its flags (it builds its own optimizer)."""
        return bool(self.fields & set(SETTING_FIELDS))

    def argv_for(self, config: RunConfig, weight_decay: float) -> list[str]:
        """The command for one run, its templates filled."""
        values = {
            "size": config.size,
            "width": config.width,
            "depth": config.depth,
            "lr": repr(config.lr),
            "setting": repr(config.setting),
            "weight_decay": repr(weight_decay),
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "n_train": config.n_train,
            "steps": config.total_steps,
            "rule": config.rule,
            "optimizer": config.optimizer,
            "decay": decay_mode(config.rule, config.optimizer),
            "run_id": config.run_id,
        }
        return [arg.format(**values) for arg in self.argv]

    def __str__(self) -> str:
        return shlex.join(self.argv)


def one_pair(config: RunConfig, model_fn: ModelFn) -> Union[tuple[float, float], str]:
    """The one (lr, λ) the rule gives every group of the run's model (λ of the decayed groups;
    vectors undecayed unless decay_vectors), or why no one pair describes them. Models built on
    the meta device: no memory, no data."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        model = model_fn(config.width, config.depth)
        base = model_fn(config.base_width, config.depth)
    kwargs = rule_keywords(config, config.n_train, base)
    kwargs.pop("momentum", None)
    with warnings.catch_warnings():  # the run's own build warns where it matters, in its log
        warnings.simplefilter("ignore")
        groups = param_groups(model, **kwargs)
    lrs = sorted({g["lr"] for g in groups})
    decays = sorted({g["weight_decay"] for g in groups if g["weight_decay"] != 0.0})
    if len(lrs) > 1 and not all(math.isclose(a, lrs[0], rel_tol=1e-12) for a in lrs):
        return f"its groups get {len(lrs)} learning rates ({', '.join(f'{v:.3g}' for v in lrs[:4])})"
    if len(decays) > 1 and not all(math.isclose(a, decays[0], rel_tol=1e-12) for a in decays):
        return f"its groups get {len(decays)} weight decays ({', '.join(f'{v:.3g}' for v in decays[:4])})"
    return lrs[0], (decays[0] if decays else 0.0)


def check_flags_only(command: Command, runs: Sequence[RunConfig], model_fn: ModelFn) -> dict[str, float]:
    """Before any run: with a flags-only command every run's rule must give one (lr, λ) pair.

    Returns:
        Each run's weight decay (λ of its decayed groups), by run id, for `{weight_decay}`.

    Raises:
        WdscaleError: a per-layer rule with a script that takes its settings from flags.
    """
    decays: dict[str, float] = {}
    seen: dict[tuple, float] = {}
    for c in runs:
        key = (c.rule, c.setting, c.lr, c.width, c.depth, c.n_train, c.batch_size, c.epochs, c.decay_vectors)
        if key not in seen:
            pair = one_pair(c, model_fn)
            if isinstance(pair, str):
                if not command.flags_only:
                    seen[key] = float("nan")
                    decays[c.run_id] = seen[key]
                    continue
                raise WdscaleError(
                    f"rule {c.rule!r} at {c.size_axis}={c.size} sets per-layer learning rates or decays ({pair}), "
                    f"which the flags {{lr}} / {{setting}} / {{weight_decay}} cannot carry: call "
                    "`model, optimizer = wdscale.current_run().build(make_model)` in your script instead, or "
                    "study a rule with one (lr, λ) for every group (decoupled, sum, ...)"
                )
            seen[key] = pair[1]
        decays[c.run_id] = seen[key]
    return decays


@dataclass(frozen=True)
class RunFiles:
    """Where one command run's spec, result and log live (the log stays in the study directory)."""

    spec: Path
    result: Path
    log: Path

    @classmethod
    def of(cls, out: Path, run_id: str) -> RunFiles:
        runs = out / ".runs"
        return cls(runs / f"{run_id}.spec.json", runs / f"{run_id}.result.json", log_path(out, run_id))

    def env(self) -> dict[str, str]:
        return {SPEC_ENV: str(self.spec), RESULT_ENV: str(self.result)}


def log_path(out: Path, run_id: str) -> Path:
    """A run's output log in its study directory."""
    return out / "logs" / f"{run_id}.log"


def write_spec(files: RunFiles, config: RunConfig, device: str, threads: int) -> None:
    files.spec.parent.mkdir(parents=True, exist_ok=True)
    files.log.parent.mkdir(parents=True, exist_ok=True)
    files.result.unlink(missing_ok=True)
    spec = {"config": config.to_dict(), "device": device, "threads": threads}
    files.spec.write_text(json.dumps(spec))


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's log, for its `error`."""
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


def loss_from_log(log: Path) -> Optional[float]:
    """The last `val_loss=<float>` line of a run's output (a script that does not import wdscale)."""
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = LOSS_LINE.search(line.strip())
        if m:
            return float(m.group(1))
    return None


def command_result(config: RunConfig, files: RunFiles, returncode: int, wall_time: float, why: str) -> RunResult:
    """What a finished command run gives: its result file (`run.finish`), else its output's last
    `val_loss=` line; a non-zero exit, a signal, or no loss → failed with the log's last lines."""
    base = dict(run_id=config.run_id, wall_time=wall_time, path="command")
    reported: dict = {}
    if files.result.is_file():
        try:
            reported = json.loads(files.result.read_text())
        except (OSError, ValueError):
            reported = {}
    if returncode != 0:
        tail = log_tail(files.log)
        return RunResult(
            status="failed",
            error=f"the command ended with {why}; log {files.log}" + (f":\n{tail}" if tail else ""),
            steps=int(reported.get("steps", 0)),
            **base,  # type: ignore[arg-type]
        )
    loss = reported.get("val_loss") if reported else loss_from_log(files.log)
    if loss is None:
        tail = log_tail(files.log)
        return RunResult(
            status="failed",
            error=(
                "the command exited 0 but reported no loss: call wdscale.current_run().finish(val_loss) or print a "
                f"last line 'val_loss=<float>'; log {files.log}" + (f":\n{tail}" if tail else "")
            ),
            **base,  # type: ignore[arg-type]
        )
    loss = float(loss)
    history = [float(v) for _, v in reported.get("history", [])]
    finite = math.isfinite(loss)
    return RunResult(
        status=reported.get("status") or ("ok" if finite else "diverged"),
        val_loss=loss if finite else float("nan"),
        best_val_loss=min([loss, *(v for v in history if math.isfinite(v))]) if finite else float("nan"),
        steps=int(reported.get("steps", config.total_steps if not reported else 0)),
        error=reported.get("error"),
        history=history,
        n_params=int(reported.get("n_params", 0)),
        **base,  # type: ignore[arg-type]
    )
