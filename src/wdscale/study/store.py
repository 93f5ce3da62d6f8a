"""SQLite store: one row per finished run, keyed by the hash of its config.

Only the driver writes. Each result is committed in its own transaction as soon as it arrives, so
a study killed at any moment (even SIGKILL) keeps every run that finished; the primary key makes a
second write of the same run impossible, and a re-run skips what is already here.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Optional, Union

from .config import RunConfig, RunResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    task          TEXT NOT NULL,
    size_axis     TEXT NOT NULL,
    size          INTEGER NOT NULL,
    rule          TEXT NOT NULL,
    setting       REAL NOT NULL,
    optimizer     TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    status        TEXT NOT NULL,
    train_loss    REAL,
    val_loss      REAL,
    best_val_loss REAL,
    val_acc       REAL,
    best_val_acc  REAL,
    steps         INTEGER,
    wall_time     REAL,
    error         TEXT,
    config        TEXT NOT NULL,
    history       TEXT NOT NULL,
    finished_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_METRICS = ("train_loss", "val_loss", "best_val_loss", "val_acc", "best_val_acc")


def _sql_float(x: float) -> Optional[float]:
    """SQLite has no NaN (it reads back as NULL) but keeps ±inf; NULL means "not measured"."""
    return None if x != x else float(x)


class Store:
    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a process kill
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (driver only) --

    def add(self, config: RunConfig, result: RunResult) -> bool:
        """Record one finished run; False (and nothing written) if it is already stored."""
        if result.run_id != config.run_id:
            raise ValueError(f"result {result.run_id} does not belong to config {config.run_id}")
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (config.run_id, config.task, config.size_axis, config.size, config.rule, config.setting,
                 config.optimizer, config.seed, result.status,
                 *(_sql_float(getattr(result, m)) for m in _METRICS),
                 result.steps, result.wall_time, result.error, json.dumps(config.to_dict()),
                 json.dumps([_sql_float(h) for h in result.history]), time.time()),
            )
        return cur.rowcount == 1

    def forget(self, run_ids: Iterable[str]) -> int:
        """Delete runs (e.g. failed ones, to retry them)."""
        with self._db:
            return sum(self._db.execute("DELETE FROM runs WHERE run_id=?", (r,)).rowcount for r in run_ids)

    def set_meta(self, key: str, value: object) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    # -- reading --

    def get_meta(self, key: str, default: object = None) -> object:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def done_ids(self, statuses: Optional[Iterable[str]] = None) -> set[str]:
        if statuses is None:
            return {r[0] for r in self._db.execute("SELECT run_id FROM runs")}
        statuses = list(statuses)
        q = f"SELECT run_id FROM runs WHERE status IN ({','.join('?' * len(statuses))})"
        return {r[0] for r in self._db.execute(q, statuses)}

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def frame(self):
        """All runs as a pandas DataFrame, one row per run, config fields flattened into columns."""
        import pandas as pd

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
            from ..rules import setting_kind

            for m in _METRICS:
                df[m] = df[m].astype(float)
            df["setting_name"] = ["tau" if setting_kind(r) == "tau" else "lambda" for r in df["rule"]]
        return df


def load_runs(study_dir: Union[str, Path]):
    """Every stored run of the study in `study_dir`, one row each (a pandas DataFrame): from its
    runs.sqlite, or from its runs.parquet export when the store is not there (docs/findings keeps
    finished studies that way)."""
    out = Path(study_dir)
    if (out / "runs.sqlite").exists():
        with Store(out / "runs.sqlite") as store:
            return store.frame()
    if (out / "runs.parquet").exists():
        import pandas as pd

        return pd.read_parquet(out / "runs.parquet")
    raise ValueError(f"{str(out)!r} holds no study (no runs.sqlite): run `wdscale study run --out {out}` first")
