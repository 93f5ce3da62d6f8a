"""Runs trained elsewhere (`wdscale study import DIR results.csv`): a sweep already run — a W&B
export, a shell loop's log — brought into a study directory as `external` runs of a declared
rule, so report, advise and export read it as they read a study.

The table (CSV or Parquet) holds one run per row: `size`, `lr`, `setting` (or `weight_decay`, for
a rule that takes λ), `seed`, `val_loss`, and optionally `steps` and `schedule`. What a table does
not carry (the rule, the size axis, the optimizer, the fixed knobs) is declared once for all rows;
a fixed knob left at 0 is not known (as a run's `n_params` is), and nothing reads it as a size.

Every row is checked before anything is written: one error names the first bad rows by their line
(a CSV's header is line 1) and what is wrong, and the directory is left as it was. The runs are
stored in one transaction. A run's id is its config's hash, so importing the same table again adds
nothing; a row whose run is stored with another loss is refused, not silently kept or replaced.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from ...errors import WdscaleError
from ...optim import OPTIMIZER_NAMES
from ...rules import get_rule
from ...schedules import SCHEDULE_NAMES
from ..plan.config import SIZE_AXES, RunConfig, RunResult
from ..plan.study_plan import StudyPlan
from ..plan.tasks import TASKS
from .runner import make_study_dir, study_lock
from .store import Store

# what each imported run records as how it was executed
EXTERNAL_PATH = "external"
REQUIRED = ("size", "lr", "seed", "val_loss")
SETTING_COLUMNS = ("setting", "weight_decay")
OPTIONAL = ("steps", "schedule")
# the bad rows one error lists (the rest counted)
SHOWN_ROWS = 5


@dataclass(frozen=True)
class Fixed:
    """What every imported run shares and the table does not say. The size axis's own knob comes
    from each row's `size`; another knob left at 0 is not known. base_size: where the setting is
    tuned (rules that need a base); None: the smallest size."""

    rule: str
    size_axis: str = "width"
    optimizer: str = "adamw"
    task: str = "external"
    width: int = 0
    depth: int = 0
    n_train: int = 0
    batch_size: int = 0
    epochs: int = 0
    base_size: Optional[int] = None


@dataclass(frozen=True)
class Imported:
    """What `import_runs` did: the table's runs, how many were new to the store, where they went."""

    rows: int
    added: int
    study_dir: Path

    def __str__(self) -> str:
        kept = self.rows - self.added
        return f"{self.added} of {self.rows} runs imported into {str(self.study_dir)!r}" + (
            f" ({kept} were stored already)" if kept else ""
        )


@dataclass(frozen=True)
class _Row:
    where: str  # "line 5" (a CSV's, the header line 1) or "row 4" (a Parquet table's)
    config: RunConfig
    result: RunResult


def import_runs(study_dir: Union[str, Path], table: Union[str, Path], fixed: Fixed) -> Imported:
    """Store a sweep trained elsewhere as a study's runs.

    Args:
        study_dir: the study directory (made if missing; one that holds imported runs of the same
            task, size axis and optimizer takes more, of this rule or another).
        table: a .csv or .parquet file, one run per row (module doc for its columns).
        fixed: the rule, size axis, optimizer, task name and fixed knobs of every row.

    Returns:
        An `Imported`: rows read, runs added (0 when they were all stored already).

    Raises:
        WdscaleError: a bad flag, a table that cannot be read or lacks a column, bad rows (the first
            ones named by line), or a directory that holds another study; nothing is written then.
    """
    _check_fixed(fixed)
    path = Path(table)
    rows = _parse(_read(path), path, fixed)
    out = Path(study_dir)
    plan = _plan(rows, fixed)
    if out.exists():
        _check_directory(out, plan, rows)
    make_study_dir(out)
    with study_lock(out), Store(out / "runs.sqlite") as store:
        # checked again under the lock: another import may have stored runs since
        stored = store.plan()
        merged = _merged(StudyPlan.from_stored(stored), plan) if stored is not None else plan
        _check_conflicts(store, rows, out)
        store.set_plan(merged.to_dict())
        added = sum(store.add_job([r.config for r in rows], [r.result for r in rows]))
        merged.save(out / "plan.json")
    return Imported(len(rows), added, out)


# -- the declared setup -----------------------------------------------------------------------------


def _check_fixed(fixed: Fixed) -> None:
    get_rule(fixed.rule)  # an unknown rule: one error listing the known ones
    if fixed.size_axis not in SIZE_AXES:
        raise WdscaleError(f"size axis {fixed.size_axis!r} is not allowed: it must be one of {', '.join(SIZE_AXES)}")
    if fixed.optimizer not in OPTIMIZER_NAMES:
        raise WdscaleError(
            f"optimizer {fixed.optimizer!r} is not allowed: it must be one of {', '.join(OPTIMIZER_NAMES)}"
        )
    if not fixed.task or fixed.task in TASKS:
        raise WdscaleError(
            f"task name {fixed.task!r} is not allowed: runs trained elsewhere take a name of their own, "
            f"not empty nor a built-in task's ({', '.join(sorted(TASKS))})"
        )
    for knob in ("width", "depth", "n_train", "batch_size", "epochs"):
        value = getattr(fixed, knob)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WdscaleError(f"{knob}={value!r} is not allowed: it must be a whole number ≥ 0 (0: not known)")
        if knob == fixed.size_axis and value:
            raise WdscaleError(
                f"{knob}={value} is not allowed: the size axis is {knob}, so each row's `size` is its {knob}"
            )
    if fixed.base_size is not None and (isinstance(fixed.base_size, bool) or not isinstance(fixed.base_size, int)):
        raise WdscaleError(f"base size {fixed.base_size!r} is not allowed: it must be a positive integer")
    if fixed.base_size is not None and fixed.base_size <= 0:
        raise WdscaleError(f"base size {fixed.base_size!r} is not allowed: it must be a positive integer")


# -- the table --------------------------------------------------------------------------------------


def _read(path: Path) -> pd.DataFrame:
    """The table, every CSV cell as its text (the checks read it, not pandas' guess)."""
    if not path.is_file():
        raise WdscaleError(f"{str(path)!r} is not a file: give the CSV or Parquet table of your runs")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # blank lines kept as rows, so a row's index gives its line number
            return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise WdscaleError(f"cannot read {str(path)!r} as a {suffix[1:]} table: {e}") from None
    raise WdscaleError(f"{str(path)!r} is not allowed: the table must be a .csv or .parquet file")


def _parse(df: pd.DataFrame, path: Path, fixed: Fixed) -> list[_Row]:
    """Every row checked and made a run; one error naming the first bad rows."""
    df = df.rename(columns=lambda c: str(c).strip())
    setting_col = _setting_column(df, path, fixed)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise WdscaleError(
            f"{str(path)!r} lacks the column(s) {', '.join(missing)}; a table of runs needs "
            f"{', '.join(REQUIRED[:2])}, setting (or weight_decay), {', '.join(REQUIRED[2:])}, and may have "
            f"{', '.join(OPTIONAL)}"
        )
    csv = path.suffix.lower() == ".csv"
    parsed: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    for i, record in enumerate(df.to_dict("records")):
        # a CSV's header is line 1; a Parquet table's first row is row 1
        at = f"line {i + 2}" if csv else f"row {i + 1}"
        if csv and all(str(v).strip() == "" for v in record.values()):
            continue  # a blank line
        values, why = _row_values(record, setting_col)
        if why:
            problems.append(f"{at}: {'; '.join(why)}")
        else:
            parsed.append((at, values))
    if problems:
        raise _bad_rows(path, problems)
    if not parsed:
        raise WdscaleError(f"{str(path)!r} holds no runs: nothing to import")
    sizes = sorted({v["size"] for _, v in parsed})
    base = fixed.base_size if fixed.base_size is not None else sizes[0]
    rows: list[_Row] = []
    first: dict[str, str] = {}
    for at, v in parsed:
        config = _config(v, fixed, base)
        if config.run_id in first:
            problems.append(f"{at}: the same run as {first[config.run_id]} (size, lr, setting, seed, schedule)")
            continue
        first[config.run_id] = at
        diverged = not math.isfinite(v["val_loss"])
        result = RunResult(
            config.run_id,
            "diverged" if diverged else "ok",
            val_loss=v["val_loss"],
            steps=v["steps"],
            error="diverged (val_loss not finite, as imported)" if diverged else None,
            path=EXTERNAL_PATH,
        )
        rows.append(_Row(at, config, result))
    if problems:
        raise _bad_rows(path, problems)
    return rows


def _setting_column(df: pd.DataFrame, path: Path, fixed: Fixed) -> str:
    have = [c for c in SETTING_COLUMNS if c in df.columns]
    if len(have) == 2:
        raise WdscaleError(f"{str(path)!r} has both a setting and a weight_decay column: keep one")
    if not have:
        raise WdscaleError(
            f"{str(path)!r} lacks the column setting (or weight_decay): the decay setting each run trained with"
        )
    if have[0] == "weight_decay" and get_rule(fixed.rule).takes == "tau":
        raise WdscaleError(
            f"rule {fixed.rule!r} takes a timescale τ, not a weight decay λ: name the column of τ values `setting`"
        )
    return have[0]


def _row_values(record: dict[str, Any], setting_col: str) -> tuple[dict[str, Any], list[str]]:
    """One row's values, or what is wrong with it."""
    why: list[str] = []
    values: dict[str, Any] = {}
    size = _number(record["size"])
    if size is None or not math.isfinite(size) or size <= 0 or size != int(size):
        why.append(f"size {_shown(record['size'])} is not a positive integer")
    else:
        values["size"] = int(size)
    for name, col in (("lr", "lr"), ("setting", setting_col)):
        x = _number(record[col])
        if x is None or not math.isfinite(x) or x <= 0:
            why.append(f"{col} {_shown(record[col])} is not a finite number > 0 (compared on a log scale)")
        else:
            values[name] = x
    seed = _number(record["seed"])
    if seed is None or not math.isfinite(seed) or seed < 0 or seed != int(seed):
        why.append(f"seed {_shown(record['seed'])} is not an integer ≥ 0")
    else:
        values["seed"] = int(seed)
    loss = _number(record["val_loss"])
    if loss is None or loss < 0:
        why.append(
            f"val_loss {_shown(record['val_loss'])} is not a number ≥ 0 (write nan or inf for a run that diverged)"
        )
    else:
        values["val_loss"] = loss
    steps_text = record.get("steps")
    steps = _number(steps_text) if not _empty(steps_text) else 0.0
    if steps is None or not math.isfinite(steps) or steps < 0 or steps != int(steps):
        why.append(f"steps {_shown(steps_text)} is not an integer ≥ 0")
    else:
        values["steps"] = int(steps)
    schedule = record.get("schedule")
    schedule = "constant" if _empty(schedule) else str(schedule).strip()
    if schedule not in SCHEDULE_NAMES:
        why.append(f"schedule {_shown(record.get('schedule'))} is not one of {', '.join(SCHEDULE_NAMES)}")
    values["schedule"] = schedule
    return values, why


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _number(value: Any) -> Optional[float]:
    """A cell as a float (nan and inf written out included); None where it is empty or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):  # a Parquet cell (NaN included: a diverged run's loss)
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _shown(value: Any) -> str:
    return "(empty)" if _empty(value) else repr(value)


def _bad_rows(path: Path, problems: Sequence[str]) -> WdscaleError:
    more = len(problems) - SHOWN_ROWS
    return WdscaleError(
        f"{str(path)!r}: {len(problems)} bad row(s), nothing imported — "
        + "; ".join(problems[:SHOWN_ROWS])
        + (f"; and {more} more" if more > 0 else "")
    )


def _config(v: dict[str, Any], fixed: Fixed, base: int) -> RunConfig:
    # the size axis's knob is each row's size (a declared one is refused by _check_fixed)
    knobs = dataclasses.replace(fixed, **{fixed.size_axis: v["size"]})
    return RunConfig(
        task=fixed.task,
        size_axis=fixed.size_axis,
        size=v["size"],
        width=knobs.width,
        depth=knobs.depth,
        n_train=knobs.n_train,
        batch_size=knobs.batch_size,
        base_width=base if fixed.size_axis == "width" else fixed.width,
        base_depth=base if fixed.size_axis == "depth" else fixed.depth,
        rule=fixed.rule,
        setting=v["setting"],
        optimizer=fixed.optimizer,
        lr=v["lr"],
        epochs=fixed.epochs,
        seed=v["seed"],
        schedule=v["schedule"],
    )


# -- the study directory ----------------------------------------------------------------------------


def _plan(rows: Sequence[_Row], fixed: Fixed) -> StudyPlan:
    """The plan the imported runs are runs of (what report, status and advise read of a study)."""
    configs = [r.config for r in rows]
    lrs = sorted({c.lr for c in configs})
    schedules = {c.schedule for c in configs}
    return StudyPlan(
        task=fixed.task,
        size_axis=fixed.size_axis,
        sizes=sorted({c.size for c in configs}),
        rules=[fixed.rule],
        optimizer=fixed.optimizer,
        seeds=len({c.seed for c in configs}),
        settings={fixed.rule: sorted({c.setting for c in configs})},
        lr=lrs[0] if len(lrs) == 1 else None,
        lrs=lrs if len(lrs) > 1 else None,
        epochs=fixed.epochs or None,
        batch_size=fixed.batch_size or None,
        n_train=fixed.n_train or None,
        width=fixed.width or None,
        depth=fixed.depth or None,
        base_size=(configs[0].base_width if fixed.size_axis == "width" else configs[0].base_depth) or None,
        schedule=schedules.pop() if len(schedules) == 1 else "constant",
    )


def _merged(stored: StudyPlan, new: StudyPlan) -> StudyPlan:
    """A directory's plan grown by another import of the same task, size axis and optimizer."""
    for key in ("task", "size_axis", "optimizer"):
        if getattr(stored, key) != getattr(new, key):
            raise WdscaleError(
                f"the study directory holds runs of {key} {getattr(stored, key)!r}, not {getattr(new, key)!r}: "
                "import into another directory, or declare the same"
            )
    settings = dict(stored.settings or {})
    for rule, values in (new.settings or {}).items():
        settings[rule] = sorted(set(settings.get(rule, [])) | set(values))
    lrs = sorted({lr for plan in (stored, new) for lr in [*(plan.lrs or []), plan.lr] if lr is not None})
    return dataclasses.replace(
        stored,
        sizes=sorted(set(stored.sizes or []) | set(new.sizes or [])),
        rules=[*stored.rules, *(r for r in new.rules if r not in stored.rules)],
        seeds=max(stored.seeds, new.seeds),
        settings=settings,
        lr=lrs[0] if len(lrs) == 1 else None,
        lrs=lrs if len(lrs) > 1 else None,
    )


def _check_directory(out: Path, plan: StudyPlan, rows: Sequence[_Row]) -> None:
    """Before anything is written: the directory can take these runs."""
    if not out.is_dir():
        raise WdscaleError(f"{str(out)!r} is a file, not a study directory")
    if not (out / "runs.sqlite").exists():
        if (out / "runs.parquet").exists():
            raise WdscaleError(
                f"{str(out)!r} holds a study's export (runs.parquet) and no store: import into another directory"
            )
        return
    with Store(out / "runs.sqlite", readonly=True) as store:
        stored = store.plan()
        if stored is not None:
            _merged(StudyPlan.from_stored(stored), plan)
        _check_conflicts(store, rows, out)


def _check_conflicts(store: Store, rows: Sequence[_Row], out: Path) -> None:
    """A run stored already (the same config) must have been stored with the same loss: a table
    that says otherwise is refused, not silently kept or replaced."""
    if store.readonly and store.empty:
        return
    ids = {r.config.run_id for r in rows}
    done = store.done_ids() & ids
    if not done:
        return
    frame = store.frame()
    stored = dict(zip(frame["run_id"], frame["val_loss"]))
    clash = []
    for r in rows:
        if r.config.run_id not in done:
            continue
        old, new = float(stored[r.config.run_id]), r.result.val_loss
        same = (not math.isfinite(old) and not math.isfinite(new)) or math.isclose(old, new, rel_tol=1e-9)
        if not same:
            clash.append(f"{r.where}: val_loss {new!r}, stored {old!r}")
    if clash:
        raise WdscaleError(
            f"{len(clash)} run(s) of the table are stored in {str(out)!r} with another val_loss, nothing imported — "
            + "; ".join(clash[:SHOWN_ROWS])
            + ": import a changed table into another directory"
        )
