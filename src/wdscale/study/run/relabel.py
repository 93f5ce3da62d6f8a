"""Runs stored `ok` that never left chance, relabelled `not_learned` (stores written before the
training loop's chance criterion, `train.loop.not_learned_reason`).

Their numbers stay; only the status and its reason change, in the store and in its runs.parquet
export (or in the export alone, where the store is not kept: docs/findings). The criterion is the
loop's, with chance recomputed from the task's data at each run's n_train, as the loop computes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Union

import pandas as pd

from ...errors import WdscaleError
from ..plan.tasks import get_task
from ..train.loop import chance_loss, not_learned_reason
from .runner import study_lock
from .store import Store, load_runs, read_export, with_regime_defaults, write_export


def chance_reasons(runs: pd.DataFrame) -> dict[str, str]:
    """run_id → why, for the ok runs of built-in tasks the loop's criterion calls not learned
    (a user's own task is skipped: its data is not here). The first batch's loss is not stored,
    so only the chance tests apply."""
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return {}
    options = ok["task_options"].map(lambda o: json.dumps([list(x) for x in o] if o is not None else []))
    reasons: dict[str, str] = {}
    for (task_name, opts, n_train), group in ok.groupby([ok["task"], options, ok["n_train"]]):
        try:
            task = get_task(str(task_name))
        except (ValueError, WdscaleError):
            continue
        data = task.load(0, **{k: v for k, v in json.loads(opts)})
        if int(n_train) != data.n_train:
            data = data.subset(int(n_train))
        chance = chance_loss(data)
        for run_id, train, val in zip(group["run_id"], group["train_loss"], group["val_loss"]):
            why = not_learned_reason(float(train), float(val), math.inf, chance)
            if why is not None:
                reasons[str(run_id)] = why
    return reasons


def relabel_study(study_dir: Union[str, Path]) -> tuple[int, dict[str, str]]:
    """Relabel a study's ok runs that never left chance: in its store (under the study's lock)
    and its runs.parquet export if there, or in the export alone. Returns (ok runs checked,
    run_id → why of those relabelled); running it again changes nothing."""
    out = Path(study_dir)
    runs = load_runs(out)
    if runs.empty:
        return 0, {}
    n_ok = int((runs["status"] == "ok").sum())
    reasons = chance_reasons(runs)
    if not reasons:
        return n_ok, reasons
    export = out / "runs.parquet"
    if (out / "runs.sqlite").exists():
        with study_lock(out), Store(out / "runs.sqlite") as store:
            store.relabel_not_learned(reasons)
            if export.exists():
                write_export(with_regime_defaults(store.frame()), export)
    else:
        df = read_export(export)
        hit = df["run_id"].isin(list(reasons)) & (df["status"] == "ok")
        df.loc[hit, "status"] = "not_learned"
        df.loc[hit, "error"] = df.loc[hit, "run_id"].map(reasons)
        write_export(df, export)
    return n_ok, reasons
