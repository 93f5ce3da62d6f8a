"""Stored runs relabelled by the training loop's chance criterion (`train.loop.not_learned_reason`)
as it stands: `ok` runs that never left chance become `not_learned` (stores written before the
criterion), and `not_learned` runs that ended below chance by its margin become `ok` again (stored
under the earlier criterion, which read a one-pass run's pass-mean training loss, first steps
included, and so called runs not learned whose validation loss was well below chance).

Their numbers stay; only the status and its reason change, in the store and in its runs.parquet
export (or in the export alone, where the store is not kept: docs/findings). The criterion is the
loop's, with chance recomputed from the task's data at each run's n_train, as the loop computes it.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Relabelled:
    """What `relabel_study` changed: the runs it judged, run_id → why of the `ok` runs now
    `not_learned`, and the `not_learned` runs now `ok`."""

    checked: int
    not_learned: dict[str, str]
    learned: tuple[str, ...]


def chance_verdicts(runs: pd.DataFrame) -> tuple[dict[str, str], tuple[str, ...]]:
    """The loop's criterion on stored ok and not_learned runs of built-in tasks (a user's own task
    is skipped: its data is not here): run_id → why for the ok runs it calls not learned, and the
    not_learned runs it calls learned. The first batch's loss is not stored, so an ok run is judged
    by the chance tests alone; a not_learned run is learned where it ended below chance by the
    margin, which the criterion decides before the first batch's loss is read."""
    judged = runs[runs["status"].isin(["ok", "not_learned"])]
    if judged.empty:
        return {}, ()
    options = judged["task_options"].map(lambda o: json.dumps([list(x) for x in o] if o is not None else []))
    reasons: dict[str, str] = {}
    learned: list[str] = []
    for (task_name, opts, n_train), group in judged.groupby([judged["task"], options, judged["n_train"]]):
        try:
            task = get_task(str(task_name))
        except (ValueError, WdscaleError):
            continue
        data = task.load(0, **{k: v for k, v in json.loads(opts)})
        if int(n_train) != data.n_train:
            data = data.subset(int(n_train))
        chance = chance_loss(data)
        for run_id, status, train, val in zip(group["run_id"], group["status"], group["train_loss"], group["val_loss"]):
            if status == "ok":
                why = not_learned_reason(float(train), float(val), math.inf, chance)
                if why is not None:
                    reasons[str(run_id)] = why
            elif not_learned_reason(float(train), float(val), -math.inf, chance) is None:
                learned.append(str(run_id))
    return reasons, tuple(sorted(learned))


def relabel_study(study_dir: Union[str, Path]) -> Relabelled:
    """Relabel a study's runs by the loop's chance criterion: in its store (under the study's lock)
    and its runs.parquet export if there, or in the export alone. Running it again changes nothing."""
    out = Path(study_dir)
    runs = load_runs(out)
    if runs.empty:
        return Relabelled(0, {}, ())
    checked = int(runs["status"].isin(["ok", "not_learned"]).sum())
    reasons, learned = chance_verdicts(runs)
    done = Relabelled(checked, reasons, learned)
    if not reasons and not learned:
        return done
    export = out / "runs.parquet"
    if (out / "runs.sqlite").exists():
        with study_lock(out), Store(out / "runs.sqlite") as store:
            store.relabel_not_learned(reasons)
            store.relabel_learned(learned)
            if export.exists():
                write_export(with_regime_defaults(store.frame()), export)
    else:
        df = read_export(export)
        hit = df["run_id"].isin(list(reasons)) & (df["status"] == "ok")
        df.loc[hit, "status"] = "not_learned"
        df.loc[hit, "error"] = df.loc[hit, "run_id"].map(reasons)
        back = df["run_id"].isin(list(learned)) & (df["status"] == "not_learned")
        df.loc[back, "status"] = "ok"
        df.loc[back, "error"] = None
        write_export(df, export)
    return done
