"""What finding the decay setting costs: a sweep on a small proxy, transferred, vs a sweep at the target.

For each series (task, optimizer, rule, size axis) of a stored study:

  transfer  sweep the grid at the proxy size, keep its best grid setting, train the target once
            with it                     -> loss at the target, proxy sweep + one target run
  sweep     sweep the same grid at the target, keep the best -> loss, the whole target sweep

Both are read from runs already in the store: the transferred setting's loss at the target is the
seed mean of runs trained there with it, never interpolated; where the target has no run at the
proxy's best setting (a grid refined per size) the transfer is "not measured" (NaN, with a reason).
The same measured quantities as `analysis` (whose proxy is the smallest size): with the smallest
size as proxy both give the same regret. Compute is counted for one seed
(summed over runs, divided by the seeds at that size), two ways: the runs' measured wall time
(one worker thread per run, so core-seconds) and, where parameter counts are known, parameters ×
samples seen — proportional to training FLOPs (≈ 6·P·D) and free of the machine's noise.
Transferring by a rule is how μTransfer tunes (Yang et al. 2022, "Tensor Programs V", §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ...errors import WdscaleError
from .study_analysis import SERIES_KEYS, SeriesKey, _prepare, seed_means

PROXY_FRACTION = 1 / 16  # the default proxy is the largest size at most this fraction of the target


@dataclass(frozen=True)
class SearchCost:
    """One series: the loss each way of finding the setting reached at the target, and its cost.
    *_seconds: core-seconds for one seed; *_param_samples: Σ parameters × samples seen (NaN when
    parameter counts are unknown). regret: transfer_loss / sweep_loss − 1. reason: empty, or why
    the transfer was not measured (transfer_loss and the transfer's cost are then NaN)."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    proxy_size: int
    target_size: int
    n_settings: int
    proxy_setting: float
    transfer_loss: float
    sweep_setting: float
    sweep_loss: float
    transfer_seconds: float
    sweep_seconds: float
    transfer_param_samples: float
    sweep_param_samples: float
    setting_name: str = "lambda"
    reason: str = ""

    @property
    def regret(self) -> float:
        return self.transfer_loss / self.sweep_loss - 1 if self.sweep_loss else float("nan")

    @property
    def seconds_saved(self) -> float:
        """How many times less compute (measured time) the transfer took than the sweep."""
        return self.sweep_seconds / self.transfer_seconds if self.transfer_seconds > 0 else float("nan")

    @property
    def params_saved(self) -> float:
        """The same in parameters × samples seen (NaN without parameter counts)."""
        # a store may hold runs of 0 steps (0 samples seen): no ratio, not a ZeroDivisionError
        return (
            self.sweep_param_samples / self.transfer_param_samples if self.transfer_param_samples > 0 else float("nan")
        )


def default_sizes(sizes: list[int]) -> tuple[int, int]:
    """(proxy, target): the largest size, and the largest size ≤ 1/16 of it (else the smallest)."""
    target = max(sizes)
    small = [s for s in sizes if s <= target * PROXY_FRACTION]
    return (max(small) if small else min(sizes)), target


def _one_seed(g: pd.DataFrame, col: str) -> float:
    return float(g[col].to_numpy(float).sum() / g["seed"].nunique())  # NaN stays NaN


def search_cost(
    runs: pd.DataFrame,
    proxy_size: Optional[int] = None,
    target_size: Optional[int] = None,
    metric: str = "val_loss",
) -> list[SearchCost]:
    """One SearchCost per series. proxy_size/target_size default to `default_sizes` of each
    series; parameters × samples come from each run's stored `n_params` (NaN where a run did not
    record it).
    Raises ValueError when a named size is missing from a series. A series whose target was not
    run at the proxy's best setting gets a NaN transfer with a reason ("not measured")."""
    df, _ = _prepare(runs, metric)
    n_params = pd.to_numeric(df["n_params"], errors="coerce") if "n_params" in df else np.nan
    df["param_samples"] = n_params * df["steps"].astype(float) * df["batch_size"].astype(float)
    df["wall_time"] = pd.to_numeric(df["wall_time"], errors="coerce").fillna(0.0)
    out = []
    for group, g in df.groupby(list(SERIES_KEYS), sort=True):
        key: SeriesKey = group  # pandas types a group key as Any
        sizes = sorted(g["size"].unique().tolist())
        proxy, target = default_sizes(sizes)
        proxy = proxy if proxy_size is None else proxy_size
        target = target if target_size is None else target_size
        where = ", ".join(f"{k}={v}" for k, v in zip(SERIES_KEYS, key))
        for name, s in (("proxy_size", proxy), ("target_size", target)):
            if s not in sizes:
                raise WdscaleError(f"{name}={s} is not a size of series ({where}); its sizes: {sizes}")
        gp, gt = g[g["size"] == proxy], g[g["size"] == target]
        mp, mt = seed_means(gp), seed_means(gt)
        if not np.isfinite(mp).any() or not np.isfinite(mt).any():
            continue  # everything diverged at one end: nothing was found there
        chosen = float(mp.idxmin())
        at_chosen = gt[gt["setting"] == chosen]
        nan = float("nan")
        measured = chosen in mt.index
        reason = (
            "" if measured else f"not measured: the target {target} was not run at the proxy's best setting {chosen:g}"
        )
        out.append(
            SearchCost(
                *key,
                proxy_size=int(proxy),
                target_size=int(target),
                n_settings=int(mt.size),
                proxy_setting=chosen,
                transfer_loss=float(mt[chosen]) if measured else nan,
                sweep_setting=float(mt.idxmin()),
                sweep_loss=float(mt.min()),
                transfer_seconds=_one_seed(gp, "wall_time") + _one_seed(at_chosen, "wall_time") if measured else nan,
                sweep_seconds=_one_seed(gt, "wall_time"),
                transfer_param_samples=(
                    _one_seed(gp, "param_samples") + _one_seed(at_chosen, "param_samples") if measured else nan
                ),
                sweep_param_samples=_one_seed(gt, "param_samples"),
                setting_name=str(g["setting_name"].iloc[0]),
                reason=reason,
            )
        )
    return out
