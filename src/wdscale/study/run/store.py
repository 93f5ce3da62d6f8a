"""SQLite store: one row per finished run, keyed by the hash of its config; one plan per store.

Only the driver writes. Each job's results are committed in one transaction as soon as they
arrive, so a study killed at any moment (even SIGKILL) keeps every job that finished, whole; the
primary key makes a second write of the same run impossible, and a re-run skips what is already here.

A store is opened for writing (`Store(path)`, the driver) or for reading (`Store(path,
readonly=True)`: report, export, status; works on a read-only directory). Either way it is checked
first — a file that is not SQLite, a damaged database or another program's database is refused
with one clear error and never written to.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from ...errors import WdscaleError
from ...optim import OPTIMIZER_NAMES
from ...rules import RULES
from ..plan.config import REGIME_DEFAULTS, SIZE_AXES, STATUSES, RunConfig, RunResult

# columns of the first store version; later columns are added by ALTER TABLE when a writer opens it
_RUN_COLUMNS = (
    ("run_id", "TEXT PRIMARY KEY"),
    ("task", "TEXT NOT NULL"),
    ("size_axis", "TEXT NOT NULL"),
    ("size", "INTEGER NOT NULL"),
    ("rule", "TEXT NOT NULL"),
    ("setting", "REAL NOT NULL"),
    ("optimizer", "TEXT NOT NULL"),
    ("seed", "INTEGER NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("train_loss", "REAL"),
    ("val_loss", "REAL"),
    ("best_val_loss", "REAL"),
    ("val_acc", "REAL"),
    ("best_val_acc", "REAL"),
    ("steps", "INTEGER"),
    ("wall_time", "REAL"),
    ("error", "TEXT"),
    ("config", "TEXT NOT NULL"),
    ("history", "TEXT NOT NULL"),
    ("finished_at", "REAL NOT NULL"),
)
# how each run was executed: "sequential" | "batched-bmm" | "batched-vmap", and torch's intra-op threads
_ADDED_COLUMNS = (("path", "TEXT"), ("threads", "INTEGER"), ("n_params", "INTEGER"), ("cpu_time", "REAL"))
_COLUMNS = tuple(n for n, _ in _RUN_COLUMNS + _ADDED_COLUMNS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs ({", ".join(f"{n} {t}" for n, t in _RUN_COLUMNS + _ADDED_COLUMNS)});
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_METRICS = ("train_loss", "val_loss", "best_val_loss", "val_acc", "best_val_acc")


class StoreError(WdscaleError):
    """A store that cannot be used: not SQLite, damaged, another program's, or not writable."""


def _sql_float(x: float) -> Optional[float]:
    """SQLite has no NaN (it reads back as NULL) but keeps ±inf; NULL means "not measured"."""
    return None if x != x else float(x)


class Store:
    def __init__(self, path: Union[str, Path], *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.empty = False  # set by _check: a file with no tables yet
        if readonly:
            if not self.path.is_file():
                raise StoreError(f"{str(self.path)!r} does not exist: no study has been run there")
            self._db = self._connect_readonly()
        else:
            if self.path.exists() and not self.path.is_file():
                raise StoreError(f"{str(self.path)!r} is not a file: cannot use it as a study store")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the study directory {str(self.path.parent)!r}: {e.strerror}") from None
            if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
                raise StoreError(
                    f"{str(self.path.parent)!r} is not writable: a study needs to write its store there "
                    "(report, export and status can still read it)"
                )
            self._db = sqlite3.connect(str(self.path), timeout=60)
        try:
            self._check()
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a kill
                self._db.executescript(_SCHEMA)
                have = self._columns("runs")
                for name, sql_type in _ADDED_COLUMNS:  # an older store: add the new columns, NULL for old runs
                    if name not in have:
                        self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")
                self._db.commit()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(
                f"{str(self.path)!r} is not a usable wdscale store ({e}); "
                "move it aside, or restore the study from its runs.parquet export"
            ) from None
        except BaseException:
            self._db.close()
            raise

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        writable = os.access(self.path.parent, os.W_OK) and os.access(self.path, os.W_OK)
        # mode=ro still needs the WAL's -shm file; in a read-only directory no writer can be
        # active, so the file is read as immutable
        return sqlite3.connect(f"{uri}?{'mode=ro' if writable else 'immutable=1'}", uri=True, timeout=60)

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def _check(self) -> None:
        """Refuse a damaged database and one that holds other tables than a wdscale store's."""
        problems = [" ".join(str(r[0]).split()) for r in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StoreError(
                f"{str(self.path)!r} is damaged (SQLite quick_check: {'; '.join(problems[:3])}); "
                "move it aside, or restore the study from its runs.parquet export"
            )
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        # a new file, or one left empty (a driver killed while creating it, `touch`): a writer
        # creates the tables; a reader sees a store with no plan and no runs
        self.empty = not tables
        if not tables:
            return
        foreign = sorted(tables - {"runs", "meta"})
        missing = [c for c, _ in _RUN_COLUMNS if c not in self._columns("runs")] if "runs" in tables else ["runs"]
        if foreign or missing:
            raise StoreError(
                f"{str(self.path)!r} is not a wdscale store (tables: {', '.join(sorted(tables))}); "
                "it was left untouched: use another --out"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (driver only) --

    def add(self, config: RunConfig, result: RunResult) -> bool:
        """Record one finished run; False (and nothing written) if it is already stored."""
        return self.add_job([config], [result])[0]

    def add_job(self, configs: Sequence[RunConfig], results: Sequence[RunResult]) -> list[bool]:
        """Record a job's finished runs in one transaction (all or none, even under SIGKILL);
        per run, False if it was already stored."""
        if len(configs) != len(results):
            raise AssertionError(f"{len(results)} results for {len(configs)} configs")
        rows = [self._row(c, r) for c, r in zip(configs, results)]
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})"
        with self._db:
            return [self._db.execute(sql, row).rowcount == 1 for row in rows]

    @staticmethod
    def _row(config: RunConfig, result: RunResult) -> tuple:
        if result.run_id != config.run_id:
            raise AssertionError(f"result {result.run_id} does not belong to config {config.run_id}")
        values = (
            config.run_id,
            config.task,
            config.size_axis,
            config.size,
            config.rule,
            config.setting,
            config.optimizer,
            config.seed,
            result.status,
            *(_sql_float(getattr(result, m)) for m in _METRICS),
            result.steps,
            result.wall_time,
            result.error,
            json.dumps(config.to_dict()),
            json.dumps([_sql_float(h) for h in result.history]),
            time.time(),
            result.path or None,
            result.threads or None,
            result.n_params or None,
            _sql_float(result.cpu_time),
        )
        return values

    def forget(self, run_ids: Iterable[str]) -> int:
        """Delete runs (e.g. failed ones, to retry them)."""
        with self._db:
            return sum(self._db.execute("DELETE FROM runs WHERE run_id=?", (r,)).rowcount for r in run_ids)

    def relabel_not_learned(self, reasons: dict[str, str]) -> int:
        """Mark stored ok runs as not having learned, by a criterion that came after they were
        stored (run_id → why, kept in `error`); their numbers stay. Returns the runs changed."""
        with self._db:
            return sum(
                self._db.execute(
                    "UPDATE runs SET status='not_learned', error=? WHERE run_id=? AND status='ok'", (why, run_id)
                ).rowcount
                for run_id, why in reasons.items()
            )

    def relabel_learned(self, run_ids: Iterable[str]) -> int:
        """Mark stored not_learned runs as ok, where a criterion that came after they were stored
        says they learned; their numbers stay, the old reason goes. Returns the runs changed."""
        with self._db:
            return sum(
                self._db.execute(
                    "UPDATE runs SET status='ok', error=NULL WHERE run_id=? AND status='not_learned'", (run_id,)
                ).rowcount
                for run_id in run_ids
            )

    def set_plan(self, plan: dict[str, Any]) -> None:
        """The plan this store's runs belong to (the latest, when a plan grew)."""
        self.set_meta("plan", plan)

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value under `key` beside the runs (the plan; what else makes the directory
        one study: `identity.py`)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def set_planned_runs(self, n: int) -> None:
        """How many runs the plan holds, counted when it was planned (a study of your model or your
        script cannot be re-planned by `study status`, which has neither)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('planned_runs', ?)", (json.dumps(int(n)),))

    # -- reading --

    def planned_runs(self) -> Optional[int]:
        """The plan's run count as `set_planned_runs` stored it; None for a store from before."""
        if self.readonly and self.empty:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key='planned_runs'").fetchone()
        return None if row is None else int(json.loads(row[0]))

    def plan(self) -> Optional[dict[str, Any]]:
        return self.meta("plan")

    def meta(self, key: str) -> Any:
        """The JSON value kept under `key`, None if there is none."""
        if self.readonly and self.empty:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            raise StoreError(f"{str(self.path)!r}: its {key!r} is not JSON (edited by hand?)") from None

    def done_ids(self, statuses: Optional[Iterable[str]] = None) -> set[str]:
        if self.readonly and self.empty:
            return set()
        if statuses is None:
            return {r[0] for r in self._db.execute("SELECT run_id FROM runs")}
        statuses = list(statuses)
        q = f"SELECT run_id FROM runs WHERE status IN ({','.join('?' * len(statuses))})"
        return {r[0] for r in self._db.execute(q, statuses)}

    def configs(self, run_ids: Iterable[str]) -> list[RunConfig]:
        """The stored configs of some runs (to say how they differ from a plan)."""
        out = []
        for r in run_ids:
            row = self._db.execute("SELECT config FROM runs WHERE run_id=?", (r,)).fetchone()
            if row is not None:
                out.append(RunConfig.from_dict(json.loads(row[0])))
        return out

    def frame(self):
        """All runs as a pandas DataFrame, one row per run, config fields flattened into columns."""
        if self.readonly and self.empty:
            return pd.DataFrame()
        cur = self._db.execute("SELECT * FROM runs ORDER BY task, optimizer, rule, size, setting, seed")
        cols = [c[0] for c in cur.description]
        rows = []
        for values in cur.fetchall():
            row = dict(zip(cols, values))
            config = json.loads(row.pop("config"))
            row["history"] = json.loads(row["history"])
            for k, v in config.items():
                row.setdefault(k, v)
            rows.append(row)
        df = pd.DataFrame(rows)
        if not df.empty:
            for m in _METRICS:
                df[m] = df[m].astype(float)
        return df


def store_from_export(study_dir: Union[str, Path], configs: Iterable[RunConfig], plan: dict[str, Any]) -> int:
    """Make a study directory's store (runs.sqlite) from its runs.parquet export — how
    docs/findings keeps finished studies — so the study can be refined or grown: every exported
    run whose id is one of `configs` (the plan's runs) is stored with its metrics, history and how
    it was executed, and `plan` set. Returns the runs stored. Refuses a directory that already has
    a store, or an export with runs of another plan."""
    out = Path(study_dir)
    if (out / "runs.sqlite").exists():
        raise WdscaleError(f"{str(out)!r} already has a store (runs.sqlite): nothing to import")
    if not (out / "runs.parquet").is_file():
        raise WdscaleError(f"{str(out)!r} has no runs.parquet export to import")
    df = read_export(out / "runs.parquet")
    by_id = {c.run_id: c for c in configs}
    foreign = sorted(set(df["run_id"]) - set(by_id))
    if foreign:
        raise WdscaleError(
            f"{str(out)!r}: {len(foreign)} exported run(s) are not runs of its plan.json (e.g. {foreign[0]}): "
            "the export and the plan do not belong together"
        )
    fields = {f.name for f in dataclasses.fields(RunResult)}
    added = 0
    with Store(out / "runs.sqlite") as store:
        store.set_plan(plan)
        for row in df.to_dict("records"):
            kept = {k: v for k, v in row.items() if k in fields and not (isinstance(v, float) and np.isnan(v))}
            kept["history"] = [float("nan") if h is None else float(h) for h in row.get("history", [])]
            for k in ("steps", "threads", "n_params"):
                if k in kept:
                    kept[k] = int(kept[k])
            kept["path"] = kept.get("path") or ""
            added += store.add(by_id[row["run_id"]], RunResult(**kept))
    return added


def with_regime_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Runs stored before the training regime was part of a run's config trained at a constant lr."""
    if df.empty:
        return df
    for name, default in REGIME_DEFAULTS.items():
        df[name] = df[name].fillna(default) if name in df else default
    return df


def write_export(df: pd.DataFrame, path: Union[str, Path], fmt: str = "parquet") -> None:
    """The runs to `path`: csv (without the loss histories) or parquet (with them; a missing
    epoch's loss written NaN)."""
    if "task_options" in df:  # (key, value) pairs of mixed types, which parquet cannot hold: JSON text
        df = df.assign(task_options=df["task_options"].map(_options_text))
    if fmt == "csv":
        df.drop(columns=["history"]).to_csv(path, index=False)
    else:
        df.assign(history=df["history"].map(lambda h: [float("nan") if v is None else v for v in h])).to_parquet(
            path, index=False
        )


def _options_text(options: Any) -> Any:
    """A run's task options as JSON text (a list of [key, value]); missing ones as they are."""
    if options is None or (isinstance(options, float) and math.isnan(options)) or isinstance(options, str):
        return options
    return json.dumps([[str(k), v] for k, v in options])


def _options_pairs(options: Any) -> Any:
    """The inverse of `_options_text`: JSON text back to the store's list of [key, value]."""
    return json.loads(options) if isinstance(options, str) else options


# the columns the analysis reads, which a runs.parquet export must hold to be analysed or made a
# store again (a column removed by hand was once read as runs with no losses, and refine, report
# and advise carried on)
EXPORT_COLUMNS = ("run_id", "task", "size_axis", "size", "rule", "setting", "optimizer", "seed", "status", "val_loss")


def _whole(least: int) -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: _is_number(v) and math.isfinite(v) and float(v).is_integer() and v >= least,
        f"a whole number ≥ {least}",
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _known_rule(v: Any) -> bool:
    return isinstance(v, str) and v in RULES


def _finite_positive(v: Any) -> bool:
    return _is_number(v) and 0 < v < math.inf


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _number_or_missing(v: Any) -> bool:
    return _missing(v) or _is_number(v)


# what each column of a study's runs may hold, checked wherever runs are read (a store, an export):
# a runs.parquet edited by hand once had an unknown rule or a number as its `rule` analysed and
# recommended, sizes stored as text sorted "16, 8", and boolean or word losses read as advice.
# A column an older study lacks is not checked; `val_loss` is checked against `status` after these.
_COLUMN_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "run_id": (_is_text, "a run id (text)"),
    "task": (_is_text, "a task name (text)"),
    "size_axis": (lambda v: v in SIZE_AXES, f"one of {', '.join(SIZE_AXES)}"),
    "size": _whole(1),
    # 0: not known (a run trained elsewhere and imported, `external.py`, stores the knobs its table lacks so)
    **{c: _whole(0) for c in ("width", "depth", "n_train", "batch_size", "base_width", "base_depth", "epochs")},
    "seed": _whole(0),
    "evals_per_epoch": _whole(1),
    "rule": (_known_rule, "a known rule (`wdscale rules`), or one registered with wdscale.register_rule first"),
    "setting": (_finite_positive, "a finite number > 0"),
    "lr": (_finite_positive, "a finite number > 0"),
    "optimizer": (lambda v: v in OPTIMIZER_NAMES, f"one of {', '.join(OPTIMIZER_NAMES)}"),
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    **dict.fromkeys(
        ("train_loss", "val_loss", "best_val_loss", "val_acc", "best_val_acc", "wall_time", "steps", "threads",
         "n_params", "momentum", "warmup", "final_lr", "decay_fraction", "cpu_time"),
        (_number_or_missing, "a number (or missing)"),
    ),
    "decay_vectors": (lambda v: isinstance(v, (bool, np.bool_)), "true or false"),
    "schedule": (_is_text, "a schedule's name (text)"),
    **dict.fromkeys(("path", "error"), (lambda v: _missing(v) or isinstance(v, str), "text (or missing)")),
    "history": (
        lambda v: isinstance(v, (list, tuple, np.ndarray)) and all(_number_or_missing(h) for h in v),
        "a list of losses, one per evaluation (per epoch, or evals_per_epoch of them)",
    ),
}  # fmt: skip
# a run that finished with these statuses has a finite loss; diverged and failed runs say why theirs is not
_FINITE_LOSS_STATUSES = ("ok", "not_learned")


def check_runs(df: pd.DataFrame, where: Union[str, Path]) -> pd.DataFrame:
    """Every column of a study's runs holds what a run's does, or one error naming the file, the
    column, the first bad row and what is allowed. Returns `df` (unchanged when it passes).

    Raises:
        WdscaleError: a value a run cannot hold: an unknown rule, a size that is not a whole
            number, an unknown status, a boolean or text loss, a `val_loss` that is NaN or infinite
            in a run whose status says it finished (ok, not_learned), a run id that repeats.
    """
    if df.empty:
        return df

    def refuse(column: str, row: int, value: Any, allowed: str) -> WdscaleError:
        run = df["run_id"].iloc[row] if "run_id" in df.columns else "?"
        value = value.item() if isinstance(value, np.generic) else value  # 0.5, not np.float64(0.5)
        return WdscaleError(
            f"{str(where)!r}: column {column!r} holds {value!r} at row {row} (run {run}), where a run holds {allowed}"
        )

    for column, (ok, allowed) in _COLUMN_CHECKS.items():
        if column not in df.columns:
            continue
        if (
            ok is _number_or_missing
            and pd.api.types.is_numeric_dtype(df[column])
            and not (pd.api.types.is_bool_dtype(df[column]))
        ):
            continue  # a column of numbers: nothing to look at one by one
        for row, value in enumerate(df[column].tolist()):
            if not ok(value):
                raise refuse(column, row, value, allowed)
    repeated = df["run_id"].duplicated()
    if repeated.any():
        row = int(np.argmax(repeated.to_numpy()))
        raise refuse("run_id", row, df["run_id"].iloc[row], "an id no other row holds")
    finished = df["status"].isin(_FINITE_LOSS_STATUSES).to_numpy()
    loss = df["val_loss"].to_numpy(dtype=float)
    bad = finished & ~np.isfinite(loss)
    if bad.any():
        row = int(np.argmax(bad))
        raise refuse(
            "val_loss", row, df["val_loss"].iloc[row],
            f"a finite loss where its status is {df['status'].iloc[row]!r} (NaN or inf only in a diverged or "
            "failed run)",
        )  # fmt: skip
    return df


def read_export(path: Union[str, Path]) -> pd.DataFrame:
    """A runs.parquet export, refused in one line if it lacks a column a store needs or holds a
    value no run can (`check_runs`)."""
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow's errors for a file that is not parquet have no common base
        raise WdscaleError(f"{str(path)!r} is not a readable parquet file: {' '.join(str(e).split())[:200]}") from None
    missing = [c for c in EXPORT_COLUMNS if c not in df.columns]
    if missing:
        raise WdscaleError(
            f"{str(path)!r} lacks the column(s) {', '.join(missing)} that a study's runs need: "
            "export it again with `wdscale study export DIR --format parquet`"
        )
    if "task_options" in df:
        df["task_options"] = df["task_options"].map(_options_pairs)
    return check_runs(df, path)


def load_runs(study_dir: Union[str, Path]):
    """Every stored run of the study in `study_dir`, one row each (a pandas DataFrame): from its
    runs.sqlite (opened read-only), or from its runs.parquet export when the store is not there
    (docs/findings keeps finished studies that way)."""
    out = Path(study_dir)
    if not out.exists():
        raise WdscaleError(f"{str(out)!r} does not exist: run `wdscale study run --out {out}` first")
    if not out.is_dir():
        raise WdscaleError(f"{str(out)!r} is a file, not a study directory")
    if (out / "runs.sqlite").exists():
        with Store(out / "runs.sqlite", readonly=True) as store:
            return check_runs(with_regime_defaults(store.frame()), out / "runs.sqlite")
    if (out / "runs.parquet").exists():
        return with_regime_defaults(read_export(out / "runs.parquet"))
    raise WdscaleError(f"{str(out)!r} holds no study (no runs.sqlite): run `wdscale study run --out {out}` first")
