"""Where is the best weight decay at each size, and does it move as the model grows?

runs (one row per training run)
  -> seed-mean loss per (series, size, setting)              [mean_curves]
  -> the best TRAINED setting per size (grid argmin) and its loss  [Optimum]
     (+ a parabola vertex in log(setting), labelled a prediction: setting_star_fit)
  -> drift: slope of log setting* against log size          [Drift]
  -> regret of reusing the smallest size's best trained setting at the largest size,
     read off runs trained there, never off a fitted curve  [Regret]
  -> whole-pipeline seed bootstrap: every size's seeds resampled per setting, so the proxy's
     choice moves; intervals for setting*, drift and regret; the smallest detectable regret
  -> a verdict in words, "not resolved" where the design cannot tell  [Verdict]

A "series" is one (task, optimizer, rule, size_axis): the unit a scaling rule is judged on.
Every loss and regret reported is a seed mean of runs that were trained; the only fitted
numbers (setting_star_fit, slope_fit) are predictions of where the optimum lies between grid
points, and are named so. Everything here is numpy/pandas only, so it runs in milliseconds.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import pandas as pd

from ...errors import WdscaleError, WdscaleTypeError
from ...rules import RULES, setting_kind
from ..plan.config import STATUSES  # ("ok", "not_learned", "diverged", "failed")

SERIES_KEYS = ("task", "optimizer", "rule", "size_axis")
REQUIRED_COLUMNS = SERIES_KEYS + ("size", "setting", "seed", "status")
CI = 0.90  # coverage of every bootstrap interval
MIN_SETTINGS = 3  # fewer grid points cannot bracket a minimum

SeriesKey = tuple[str, str, str, str]  # (task, optimizer, rule, size_axis)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Optimum:
    """The best trained setting at one size, in the swept units (λ, or τ for τ-rules).

    setting_star: the grid setting with the lowest seed-mean loss (a setting that was trained);
    lo, hi: 90 % interval of that grid argmin over seed resamples (so on grid points too);
    best_loss: the seed-mean loss there, a measurement; noise: the s.e.m. over seeds at that
    setting relative to best_loss; n_seeds: the seeds trained there.
    setting_star_fit: the vertex of a parabola in log(setting) through the points around the
    grid minimum — a PREDICTION of where the optimum lies between grid points (no run trained
    it); its loss is never reported. at_edge: the grid minimum is the first or last grid point,
    so the true optimum lies outside the grid and setting_star is only a bound."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    size: int
    setting_star: float
    lo: float
    hi: float
    setting_star_fit: float
    at_edge: bool
    best_loss: float
    noise: float
    n_seeds: int
    setting_name: str = "lambda"


@dataclass(frozen=True)
class Drift:
    """setting* ∝ size^slope, least squares on natural logs of the MEASURED grid optima;
    lo/hi: 90 % interval over whole-pipeline seed resamples (the grid optimum at every size
    re-chosen in each). Quantised by the grid: with 4 points per decade one size's optimum can
    only move in steps of ×1.8. fold_change = setting*(largest size) / setting*(smallest size),
    on the grid. slope_fit: the same slope through the parabola vertices (a prediction)."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    slope: float
    lo: float
    hi: float
    fold_change: float
    slope_fit: float
    setting_name: str = "lambda"


@dataclass(frozen=True)
class Regret:
    """Cost of tuning at the proxy (the smallest size) and reusing that setting at the target
    (the largest size), measured: regret = transfer_loss / best_loss − 1, where best_loss is the
    lowest seed-mean loss over the settings trained at the target and transfer_loss the
    seed-mean loss of the runs trained at the target with the proxy's best grid setting. When
    the target has no run at that setting the regret is NaN and `reason` says "not measured":
    it is never interpolated. +inf: a seed diverged at the transferred setting.

    lo, hi: 90 % interval from the whole-pipeline bootstrap (proxy and target seeds resampled
    per setting, so the proxy's choice moves). boot_measured: the fraction of resamples whose
    proxy choice was trained at the target (the interval is over those).
    noise: seed s.e.m. at the target's best setting, relative to best_loss (replicate noise).
    detectable: the smallest regret this design can detect, 2·√2·noise: the regret compares two
    seed means at the target, each with standard error ≈ noise, so their difference has
    standard error √2·noise, and a difference under 2 standard errors cannot be told from 0.
    Chosen over the bootstrap half-width because it is closed-form, has a fixed meaning for any
    seed count, and does not collapse to 0 when 2–3 seeds give few distinct resamples.
    lo_mc, hi_mc: the Monte Carlo margin of lo and hi, half the range of each end over the
    bootstrap RNG seeds of the stability panel (`analyze`'s stability_seeds), whose median end
    lo and hi are; NaN with a panel of one.
    resolution: "within noise" (hi < detectable), "costs" (lo > 0: the proxy's choice loses
    in ≥ 95 % of resamples), "not resolved" (the interval spans 0 and detectable, or there is
    no noise estimate), "diverges or does not learn", "not measured". acc_regret: accuracy lost
    at the target (best seed-mean val_acc over trained settings minus that at the transferred
    one), NaN without a usable val_acc column."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    regret: float
    lo: float
    hi: float
    detectable: float
    noise: float
    resolution: str
    reason: str
    proxy_size: int
    target_size: int
    proxy_setting: float
    transfer_loss: float
    best_loss: float
    boot_measured: float
    acc_regret: float
    setting_name: str = "lambda"
    lo_mc: float = float("nan")
    hi_mc: float = float("nan")


@dataclass(frozen=True)
class Verdict:
    """code: "transfers" | "grows" | "shrinks" | "not_resolved" | "not_measured" | "edge" |
    "flat" | "single_size" | "no_optimum"; text: one line for a human. "flat": the optimum sits at
    the grid's weak end at some size, and there the loss varies less than the seed noise over at
    least FLAT_POINTS settings of the weak end: decay barely matters at this run length."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    code: str
    text: str
    setting_name: str = "lambda"
    # of `panel` bootstrap RNG seeds, how many gave this verdict's code and regret resolution
    # (a verdict they do not all give is reported "not resolved": it is a coin flip)
    agree: int = 1
    panel: int = 1


def _key(obj) -> SeriesKey:
    return tuple(getattr(obj, k) for k in SERIES_KEYS)


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything analyze() found. Lists are sorted by (task, optimizer, size_axis, rule);
    optima additionally by size. counts: runs per status in the input (failed ones dropped).
    sizes_dropped: a rule at a size that failed runs left with too few settings to locate an
    optimum, in words (left out, so the rest can still be read)."""

    optima: list
    drifts: list
    regrets: list
    verdicts: list
    metric: str
    n_boot: int
    counts: dict
    sizes_dropped: tuple = ()

    @property
    def series(self) -> list:
        """Series keys (task, optimizer, rule, size_axis) in report order."""
        return [_key(v) for v in self.verdicts]

    def optima_frame(self) -> pd.DataFrame:
        """One row per (series, size): the Optimum fields."""
        cols = [f for f in Optimum.__dataclass_fields__]
        return pd.DataFrame([asdict(o) for o in self.optima], columns=cols)

    def table(self) -> pd.DataFrame:
        """One row per series: measured drift with interval, fold change, measured regret with its
        interval, detectable regret and noise, verdict; slope_fit is a prediction (a fit)."""
        rows = []
        for d, r, v in zip(self.drifts, self.regrets, self.verdicts):
            rows.append(
                dict(
                    task=d.task,
                    optimizer=d.optimizer,
                    rule=d.rule,
                    size_axis=d.size_axis,
                    setting_name=d.setting_name,
                    slope=d.slope,
                    slope_lo=d.lo,
                    slope_hi=d.hi,
                    slope_fit=d.slope_fit,
                    fold_change=d.fold_change,
                    regret=r.regret,
                    regret_lo=r.lo,
                    regret_hi=r.hi,
                    regret_lo_mc=r.lo_mc,
                    regret_hi_mc=r.hi_mc,
                    detectable=r.detectable,
                    noise=r.noise,
                    resolution=r.resolution,
                    regret_reason=r.reason,
                    boot_measured=r.boot_measured,
                    acc_regret=r.acc_regret,
                    code=v.code,
                    verdict=v.text,
                )
            )
        return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- input


def with_setting_names(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with a setting_name column ("tau" for τ-rules, else "lambda"), where it has none:
    read from the rules (a rule this process does not know is taken to sweep λ)."""
    if "setting_name" in runs.columns:
        return runs

    def name(rule: str) -> str:
        return "tau" if rule in RULES and setting_kind(rule) == "tau" else "lambda"

    return runs.assign(setting_name=[name(r) for r in runs["rule"]])


def run_losses(runs: pd.DataFrame, metric: str = "val_loss") -> np.ndarray:
    """Each run's loss as the analysis counts it: the metric where the run is "ok" and the value
    finite, else +inf (diverged, not learned, or no finite value: not a usable optimum)."""
    loss = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float, copy=True)
    loss[runs["status"].isin(["diverged", "not_learned"]).to_numpy() | ~np.isfinite(loss)] = np.inf
    return loss


def core_seconds(runs: pd.DataFrame) -> pd.Series:
    """Each run's compute: the CPU seconds its process spent on it where measured (what a busy
    machine does not inflate: two runs sharing a core each take twice the wall time for the same
    CPU time), else wall time × its intra-op threads (1 where not recorded)."""
    threads = runs["threads"].fillna(1) if "threads" in runs else 1
    wall = runs["wall_time"].astype(float).fillna(0.0) * threads
    if "cpu_time" not in runs:
        return wall
    cpu = pd.to_numeric(runs["cpu_time"], errors="coerce")
    return cpu.where(cpu.notna(), wall).astype(float)


def params_samples(runs: pd.DataFrame) -> pd.Series:
    """Each run's compute in trainable parameters × samples seen (0 where the parameter count was
    not recorded): what no machine's load changes."""
    n_params = runs["n_params"].fillna(0).astype(float) if "n_params" in runs else pd.Series(0.0, index=runs.index)
    return n_params * runs["n_train"].astype(float) * runs["epochs"].astype(float)


def _describe(key: SeriesKey) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(SERIES_KEYS, key))


def _prepare(runs: pd.DataFrame, metric: str) -> tuple:
    """Validate and return (frame with a float `loss` column, counts per status).
    Diverged runs, runs that did not learn (status "not_learned": left out of every fit) and ok
    runs with a non-finite metric get loss +inf: a setting where any seed blew up or stayed at
    chance is not a usable optimum. Failed runs say nothing about the setting: dropped."""
    if not isinstance(runs, pd.DataFrame):
        raise WdscaleTypeError(f"runs must be a pandas DataFrame, got {type(runs).__name__}")
    if runs.empty:
        raise WdscaleError("runs is empty: there is nothing to analyse")
    missing = [c for c in REQUIRED_COLUMNS + (metric,) if c not in runs.columns]
    if missing:
        raise WdscaleError(f"runs is missing required column(s): {', '.join(missing)}")
    unknown = sorted(set(runs["status"]) - set(STATUSES))
    if unknown:
        raise WdscaleError(f"unknown status value(s) {unknown}; expected one of {STATUSES}")
    counts = {s: int((runs["status"] == s).sum()) for s in STATUSES}

    df = runs[runs["status"] != "failed"].copy()
    if df.empty:
        raise WdscaleError(f"all {len(runs)} runs failed: there is nothing to analyse")
    df = with_setting_names(df)
    df["setting"] = pd.to_numeric(df["setting"], errors="coerce").astype(float)
    df["size"] = pd.to_numeric(df["size"], errors="coerce")
    df["loss"] = run_losses(df, metric)

    trained = runs.groupby(list(SERIES_KEYS) + ["size"])["setting"].nunique()
    dropped: list[str] = []
    for key, g in df.groupby(list(SERIES_KEYS), sort=True):
        if not ((g["setting"] > 0).all() and (g["size"] > 0).all()):
            raise WdscaleError(
                f"series ({_describe(key)}) has non-positive or missing settings/sizes; "
                "both must be > 0 because they are compared on a log scale"
            )
        if g["setting_name"].nunique() != 1:
            raise WdscaleError(f"series ({_describe(key)}) mixes setting names {sorted(g['setting_name'].unique())}")
        for size, n in g.groupby("size")["setting"].nunique().items():
            if n >= MIN_SETTINGS:
                continue
            if trained.get((*key, size), 0) < MIN_SETTINGS:  # planned too few: the input is wrong
                raise WdscaleError(
                    f"series ({_describe(key)}) has only {n} setting(s) at size {size}; "
                    f"need at least {MIN_SETTINGS} to locate an optimum"
                )
            # failed runs left too few: that size is left out of the series, and the report says so
            dropped.append(f"{key[2]} at {key[3]} {size} ({n} of its settings left by failed runs)")
            df = df[
                ~((df[list(SERIES_KEYS)] == pd.Series(dict(zip(SERIES_KEYS, key)))).all(axis=1) & (df["size"] == size))
            ]
    if df.empty:
        raise WdscaleError(f"failed runs left no size with {MIN_SETTINGS} settings: there is nothing to analyse")
    df["size"] = df["size"].astype(int)
    df.attrs["sizes_dropped"] = tuple(dropped)
    return df, counts


# ----------------------------------------------------------------------------- core maths


def _col_mean(m: np.ndarray) -> np.ndarray:
    """Mean over the seed axis (-2) ignoring missing (NaN) entries; +inf propagates, so a
    setting where any seed diverged has an infinite mean. All-missing -> NaN."""
    present = ~np.isnan(m)
    n = present.sum(-2)
    s = np.where(present, m, 0.0).sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def seed_means(g: pd.DataFrame) -> pd.Series:
    """Mean loss over seeds per setting of one (series, size): the same infinity-keeping mean
    (`_col_mean`) the analysis uses, for callers holding rows rather than a matrix."""
    m = g.pivot_table(index="seed", columns="setting", values="loss", aggfunc="mean", dropna=False)
    return pd.Series(_col_mean(m.to_numpy(float)), index=m.columns.astype(float))


def _fit_vertex(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A PREDICTION of where each row's optimum lies between grid points: the vertex (in log
    setting) of a parabola through the points around the grid minimum. NaN when no finite
    point; the grid minimum itself at an edge or where the fit is not convex.

    Why a parabola: with 4 points per decade the grid alone resolves λ* only to a factor 1.8;
    near a smooth minimum the loss is quadratic in log λ, so the vertex does better as an
    estimate of position. Only the position is used (for the predicted drift, slope_fit): the
    parabola's value at its vertex is a loss no run reached, so it is never reported.
    Fit: least squares on the 5 points around the minimum when all are finite, else the
    minimum and its two neighbours; used only when interior and convex, and the vertex is
    clamped between the neighbouring grid points so a flat/noisy fit can't wander off.
    Trade-off: the 5-point fit averages noise better (≈3x smaller error on a symmetric curve)
    but on an asymmetric curve (loss rising faster above λ* than below) it pulls λ* towards the
    flat side about twice as much as the 3-point fit does.
    """
    b, k = y.shape
    yf = np.where(np.isfinite(y), y, np.inf)
    rows = np.arange(b)
    idx = yf.argmin(1)
    ymin = yf[rows, idx]
    found = np.isfinite(ymin)
    at_edge = found & ((idx == 0) | (idx == k - 1))

    off = np.arange(-2, 3)
    j = idx[:, None] + off
    jc = j.clip(0, k - 1)
    yw = yf[rows[:, None], jc]
    usable = (j >= 0) & (j < k) & np.isfinite(yw)
    five = usable.all(1)
    w = np.where(five[:, None], usable, usable & (np.abs(off) <= 1)).astype(float)
    fit = found & ~at_edge & (w.sum(1) >= 3)

    d = x[jc] - x[idx][:, None]
    v = np.stack([np.ones_like(d), d, d * d], -1)  # (B, 5, 3)
    yw0 = np.where(w > 0, yw, 0.0)
    gram = np.einsum("bp,bpi,bpj->bij", w, v, v)
    rhs = np.einsum("bp,bpi,bp->bi", w, v, yw0)
    gram[~fit] = np.eye(3)
    rhs[~fit] = 0.0
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]

    convex = fit & (coef[:, 2] > 0)
    lo = x[np.clip(idx - 1, 0, k - 1)] - x[idx]
    hi = x[np.clip(idx + 1, 0, k - 1)] - x[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        vert = np.where(convex, -coef[:, 1] / (2 * coef[:, 2]), 0.0)
    vert = np.clip(vert, lo, hi)
    return np.where(found, x[idx] + vert, np.nan)


def log_slopes(log_size: np.ndarray, log_star: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of log_star (B, n) on log_size (n,); NaN if any NaN."""
    xc = log_size - log_size.mean()
    yc = log_star - log_star.mean(-1, keepdims=True)
    slope = (yc * xc).sum(-1) / (xc * xc).sum()
    return np.where(np.abs(slope) < 1e-9, 0.0, slope)  # grid optima: no "-0.00" from rounding


def _quantiles(a: np.ndarray) -> tuple:
    """The 90 % percentile interval of the finite entries of a (NaN, NaN when none)."""
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    q = np.quantile(a, [(1 - CI) / 2, (1 + CI) / 2])
    return float(q[0]), float(q[1])


def order_quantiles(a: np.ndarray) -> tuple:
    """The 90 % interval as _quantiles gives it, but from order statistics (the lower end rounded
    down, the upper end up), so each end is a value that occurred (a grid point for a setting); +inf entries (a diverged
    seed drawn) count as the largest values and NaN entries are left out."""
    a = np.sort(a[~np.isnan(a)])
    if a.size == 0:
        return float("nan"), float("nan")
    n = a.size - 1
    return float(a[int(np.floor((1 - CI) / 2 * n))]), float(a[int(np.ceil((1 + CI) / 2 * n))])


def _argmin(y: np.ndarray) -> np.ndarray:
    """Grid index of each row's lowest finite value; -1 where no value is finite."""
    yf = np.where(np.isfinite(y), y, np.inf)
    i = yf.argmin(-1)
    return np.where(np.isfinite(np.take_along_axis(yf, i[..., None], -1)[..., 0]), i, -1)


@dataclass(frozen=True)
class _SizeData:
    size: int
    settings: np.ndarray  # (K,) ascending
    x: np.ndarray  # log settings (K,)
    m: np.ndarray  # loss per seed × setting (S, K), NaN where not trained
    y: np.ndarray  # seed-mean loss (K,), NaN where not trained, +inf where a seed diverged
    acc: Optional[np.ndarray]  # seed-mean val_acc (K,), NaN where unusable
    boot: np.ndarray  # (n_boot, K) seed-mean loss of each resample


def _size_data(g: pd.DataFrame, size: int, n_boot: int, rng: np.random.Generator, with_acc: bool) -> _SizeData:
    """Seed-mean curve at one size and n_boot resampled curves: at each setting, its trained
    seeds are drawn with replacement, independently of the other settings (a refined grid may
    have more seeds at some settings than at others)."""
    m_df = g.groupby(["seed", "setting"])["loss"].mean().unstack("setting").sort_index(axis=1)
    m = m_df.to_numpy(float)
    settings = m_df.columns.to_numpy(float)
    acc = None
    if with_acc:
        a = g.assign(val_acc=g["val_acc"].where(np.isfinite(g["loss"])))  # diverged: unusable
        per = a.groupby(["seed", "setting"])["val_acc"].mean().unstack("setting").reindex(columns=m_df.columns)
        acc = per.mean(axis=0, skipna=True).to_numpy(float)
    boot = np.full((n_boot, len(settings)), np.nan)
    for k in range(len(settings)):
        v = m[:, k][~np.isnan(m[:, k])]
        if v.size and n_boot > 0:
            with np.errstate(invalid="ignore"):
                boot[:, k] = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    return _SizeData(int(size), settings, np.log(settings), m, _col_mean(m[None])[0], acc, boot)


def _noise(d: _SizeData, i: int) -> tuple:
    """(relative s.e.m. over seeds at grid index i, seeds trained there)."""
    col = d.m[:, i][~np.isnan(d.m[:, i])]
    best = d.y[i]
    if col.size < 2 or not np.isfinite(best) or best == 0 or not np.isfinite(col).all():
        return float("nan"), int(col.size)
    return float(np.std(col, ddof=1) / np.sqrt(col.size) / abs(best)), int(col.size)


def number(x: Optional[float], digits: int = 3) -> str:
    """A number to `digits` significant digits; – for a missing or infinite one."""
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def exponent(x: Optional[float]) -> str:
    """Exponents: always two decimals, as the verdicts print them (never "-0.00")."""
    return "–" if x is None or not np.isfinite(x) else f"{round(x, 2) + 0.0:.2f}"


def percent(x: float) -> str:
    """A fraction as a percentage for the verdicts; ∞ and – for infinite and missing."""
    return "∞" if x == np.inf else "–" if not np.isfinite(x) else f"{100 * x:.1f}%"


# ----------------------------------------------------------------------------- per series


def setting_symbol(setting_name: str) -> str:
    """τ for a τ-rule's setting, λ otherwise."""
    return "τ" if setting_name == "tau" else "λ"


def _resolution(
    regret: float, lo: float, hi: float, detectable: float, p_none: float = float("nan"), n: int = 0
) -> str:
    """Can this design tell the regret apart from 0, and from the detectable threshold?

    "costs" needs the interval's lower end above 0 with room for the bootstrap's own Monte Carlo
    error: the share of resamples with no regret (`p_none`, of `n`) three binomial standard errors
    below the 5 % the interval cuts at. With 2-3 seeds many resamples give a regret of exactly 0,
    and where that share is near 5 % the lower end flips between 0 and > 0 with the RNG seed."""
    if np.isnan(regret):
        return "not measured"
    if regret == np.inf:
        return "diverges or does not learn"
    if not np.isfinite(detectable) or not np.isfinite(hi):
        return "not resolved"  # no noise estimate (one seed): nothing can be told from 0
    if hi < detectable:
        return "within noise"
    if lo > 0 and (not np.isfinite(p_none) or n <= 0 or p_none + 3 * np.sqrt(0.05 * 0.95 / n) < 0.05):
        return "costs"
    return "not resolved"


FLAT_POINTS = 3  # settings of the weak end within noise of each other that make a verdict "flat"


def flat_below(d: _SizeData, weak_first: bool) -> Optional[float]:
    """Where the loss at one size is flat at the grid's weak end: the strongest setting X such that
    every setting from the weak edge to X has a seed-mean loss within the noise of the best one's
    (a difference under 2 standard errors of a difference of two seed means), the best among them,
    with at least FLAT_POINTS settings in that run; None where it is not so.
    weak_first: the weak end is the smallest setting (λ-rules), else the largest (τ-rules)."""
    order = np.arange(len(d.settings)) if weak_first else np.arange(len(d.settings))[::-1]
    best = int(_argmin(d.y))
    if best < 0:
        return None

    def sem(k: int) -> float:
        col = d.m[:, k][~np.isnan(d.m[:, k])]
        return float(np.std(col, ddof=1) / np.sqrt(col.size)) if col.size >= 2 and np.isfinite(col).all() else np.nan

    best_sem = sem(best)
    run = []
    for k in order:
        bound = 0.0 if k == best else 2 * np.sqrt(best_sem**2 + sem(int(k)) ** 2)
        if not (k == best or (np.isfinite(bound) and np.isfinite(d.y[k]) and d.y[k] - d.y[best] < bound)):
            break
        run.append(int(k))
    # flat: the weak end, out to the optimum at least, within noise of it
    return float(d.settings[run[-1]]) if best in run and len(run) >= FLAT_POINTS else None


def _verdict(key: SeriesKey, name: str, data: list, drift: Drift, regret: Regret) -> Verdict:
    sym = setting_symbol(name)
    axis = key[3]
    mk = lambda code, text: Verdict(*key, code=code, text=text, setting_name=name)  # noqa: E731
    dead = [d.size for d in data if _argmin(d.y) < 0]
    if dead:
        return mk("no_optimum", f"inconclusive: every setting diverged at {axis} {', '.join(map(str, dead))}")
    edges = [(d, int(_argmin(d.y))) for d in data]
    edges = [(d, i) for d, i in edges if i in (0, len(d.settings) - 1)]
    weak_first = name != "tau"  # a λ's weak end is its smallest value, a τ's its largest
    weak_flat = {d.size: flat_below(d, weak_first) for d, _ in edges}
    # every optimum on an edge sits on a weak end within noise: decay barely matters there, and
    # the grid needs no widening (an optimum inside the grid keeps the verdict its regret gives) ...
    flat_where = [d for d, _ in edges]
    # ... unless reusing the proxy's setting measurably costs: then the choice does matter
    if flat_where and regret.resolution != "costs" and all(weak_flat[d.size] is not None for d in flat_where):
        cuts = [weak_flat[d.size] for d in flat_where]
        cut = min(cuts) if weak_first else max(cuts)  # type: ignore[type-var]
        side = "below" if weak_first else "above"
        return mk(
            "flat",
            f"flat: decay barely matters at this run length: any {sym} {side} {cut:.3g} is within seed noise "
            f"of the best at {axis} {', '.join(str(d.size) for d in flat_where)} (the grid's weak end)",
        )
    if edges:
        where = [f"{d.size} ({'smallest' if i == 0 else 'largest'} {sym} swept)" for d, i in edges]
        return mk(
            "edge",
            f"inconclusive: optimum at grid edge for sizes {', '.join(where)}; "
            f"{sym}* lies outside the grid there, widen it",
        )
    if len(data) < 2:
        return mk("single_size", f"inconclusive: only one {axis} ({data[0].size})")
    drift_txt = f"{sym}* ∝ {axis}^{drift.slope:.2f} [{drift.lo:.2f}, {drift.hi:.2f}]"
    reg_txt = (
        f"transfer regret {percent(regret.regret)} [{percent(regret.lo)}, {percent(regret.hi)}], "
        f"detectable {percent(regret.detectable)}"
    )
    if regret.resolution == "not measured":
        return mk("not_measured", f"not measured: {regret.reason}; {drift_txt}")
    if regret.resolution == "not resolved":
        why = (
            "no seed noise at the target's best setting"
            if not np.isfinite(regret.detectable)
            else "the interval spans 0 and the detectable regret"
        )
        return mk("not_resolved", f"not resolved: {reg_txt} ({why}); {drift_txt}")
    flat = drift.lo <= 0 <= drift.hi
    if flat and regret.resolution == "within noise":
        return mk("transfers", f"transfers: {sym}* is flat in {axis} (∝ {axis}^{drift.slope:.2f}); {reg_txt}")
    code = "grows" if drift.slope > 0 else "shrinks"
    # A tiny but "significant" drift can still be harmless in practice: say so.
    cheap = "; the transfer regret is below the detectable" if regret.resolution == "within noise" else ""
    return mk(code, f"{sym}* {code} with {axis} (∝ {axis}^{drift.slope:.2f}){cheap}; {reg_txt}")


SAME_SETTING_RTOL = 1e-3  # settings are stored to 4 significant digits: closer than this is one setting


def _match(settings: np.ndarray, s: float) -> int:
    """Index of setting s in a grid, -1 when it was not trained there. Within 0.1 % is the same
    setting: a refined grid is rounded to 4 digits around each size's optimum, so one fine setting
    may read 1.223 at one size and 1.224 at another."""
    hit = np.flatnonzero(np.isclose(settings, s, rtol=SAME_SETTING_RTOL, atol=0.0))
    return int(hit[np.argmin(np.abs(np.log(settings[hit] / s)))]) if hit.size else -1


def _regret(key: SeriesKey, name: str, data: list) -> Regret:
    """Measured transfer regret, proxy = smallest size, target = largest, with its bootstrap."""
    proxy, target = data[0], data[-1]
    sym = setting_symbol(name)
    nan = float("nan")
    ip, it = int(_argmin(proxy.y)), int(_argmin(target.y))
    best = float(target.y[it]) if it >= 0 else nan
    noise, _ = _noise(target, it) if it >= 0 else (nan, 0)
    detectable = 2 * np.sqrt(2) * noise
    common = dict(proxy_size=proxy.size, target_size=target.size, setting_name=name)
    chosen = float(proxy.settings[ip]) if ip >= 0 else nan
    j = _match(target.settings, chosen) if ip >= 0 else -1
    measured = j >= 0 and not np.isnan(target.y[j])
    reason = ""
    if len(data) < 2:
        reason = f"only one {key[3]}: nothing to transfer to"
    elif ip < 0 or it < 0:
        reason = f"not measured: every setting diverged at {key[3]} {proxy.size if ip < 0 else target.size}"
    elif not measured:
        reason = (
            f"not measured: the target {key[3]} {target.size} has no trained run at the proxy's "
            f"best {sym} = {chosen:.3g}"
        )
    if reason:
        return Regret(
            *key, regret=nan, lo=nan, hi=nan, detectable=float(detectable), noise=noise, resolution="not measured",
            reason=reason, proxy_setting=chosen, transfer_loss=nan, best_loss=best, boot_measured=nan,
            acc_regret=nan, **common,
        )  # fmt: skip
    transfer = float(target.y[j])
    with np.errstate(invalid="ignore"):
        regret = transfer / best - 1 if best != 0 else nan

    # Whole pipeline per resample: the proxy's choice, the target's best, the transferred loss.
    col = np.array([_match(target.settings, s) for s in proxy.settings])  # proxy index -> target index
    bp, bt = _argmin(proxy.boot), _argmin(target.boot)
    rows = np.arange(len(bp))
    tj = np.where(bp >= 0, col[bp.clip(0)], -1)
    ok = (tj >= 0) & (bt >= 0)
    tr = np.where(ok, target.boot[rows, tj.clip(0)], np.nan)
    bb = np.where(ok, target.boot[rows, bt.clip(0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rb = np.where(ok & (bb != 0), tr / bb - 1, np.nan)
    lo, hi = order_quantiles(rb)
    boot_measured = float(np.mean(~np.isnan(rb))) if len(rb) else nan
    resampled = rb[~np.isnan(rb)]
    p_none = float(np.mean(resampled <= 0)) if len(resampled) else nan

    acc_regret = nan
    if target.acc is not None and np.isfinite(target.acc).any():
        acc_regret = float(np.nanmax(target.acc) - target.acc[j])
    return Regret(
        *key, regret=float(regret), lo=lo, hi=hi, detectable=float(detectable), noise=noise,
        resolution=_resolution(float(regret), lo, hi, float(detectable), p_none, len(resampled)), reason="",
        proxy_setting=chosen,
        transfer_loss=transfer, best_loss=best, boot_measured=boot_measured, acc_regret=acc_regret, **common,
    )  # fmt: skip


def _analyze_series(key: SeriesKey, g: pd.DataFrame, n_boot: int, seed: int) -> tuple:
    name = str(g["setting_name"].iloc[0])
    with_acc = "val_acc" in g.columns and bool(np.isfinite(g["val_acc"].astype(float)).any())
    data = []
    for size, gs in g.groupby("size", sort=True):
        # Seeded per (series, size): a series' numbers don't depend on what else is in the frame.
        ss = np.random.SeedSequence([seed, zlib.crc32(repr(key).encode()), int(size)])
        data.append(_size_data(gs, int(size), n_boot, np.random.default_rng(ss), with_acc))

    optima = []
    log_star = np.full(len(data), np.nan)
    log_fit = np.full(len(data), np.nan)
    boot_log_star = np.full((n_boot, len(data)), np.nan)
    for n, d in enumerate(data):
        i = int(_argmin(d.y))
        bi = _argmin(d.boot)
        boot_log_star[:, n] = np.where(bi >= 0, d.x[bi.clip(0)], np.nan)
        lo, hi = order_quantiles(np.where(bi >= 0, d.settings[bi.clip(0)], np.nan))
        if i >= 0:
            log_star[n] = d.x[i]
            yk = np.where(np.isnan(d.y), np.inf, d.y)  # untrained settings cannot be the minimum
            log_fit[n] = _fit_vertex(d.x, yk[None])[0]
        noise, n_seeds = _noise(d, i) if i >= 0 else (float("nan"), 0)
        optima.append(
            Optimum(
                *key,
                size=d.size,
                setting_star=float(d.settings[i]) if i >= 0 else float("nan"),
                lo=lo,
                hi=hi,
                setting_star_fit=float(np.exp(log_fit[n])),
                at_edge=bool(i in (0, len(d.settings) - 1)),
                best_loss=float(d.y[i]) if i >= 0 else float("nan"),
                noise=noise,
                n_seeds=n_seeds,
                setting_name=name,
            )
        )

    # Drift: setting* ∝ size^slope on natural logs of the measured grid optima, and per resample.
    log_size = np.log([d.size for d in data]).astype(float)
    nan = float("nan")
    if len(data) >= 2 and np.isfinite(log_star).all():
        slope = float(log_slopes(log_size, log_star[None])[0])
        lo, hi = _quantiles(log_slopes(log_size, boot_log_star)) if n_boot > 0 else (nan, nan)
        slope_fit = float(log_slopes(log_size, log_fit[None])[0])
    else:
        slope, lo, hi, slope_fit = nan, nan, nan, nan
    fold = float(np.exp(log_star[-1] - log_star[0]))
    drift = Drift(*key, slope=slope, lo=lo, hi=hi, fold_change=fold, slope_fit=slope_fit, setting_name=name)
    reg = _regret(key, name, data)
    return optima, drift, reg, _verdict(key, name, data, drift, reg)


# ----------------------------------------------------------------------------- public


# bootstrap RNG seeds every verdict is checked under: at an interval's end that sits on an atom of
# the resampled regrets (with 2-3 seeds many resamples give a regret of exactly 0) the 5 % quantile
# moves with the seed however many resamples are drawn, and with it "costs" vs "not resolved"
STABILITY_SEEDS = 5


def _stable(runs_of_series: list, key: SeriesKey) -> tuple:
    """The first analysis of a series, its verdict and regret made "not resolved" unless every
    bootstrap seed of the panel gives the same verdict code and regret resolution."""
    optima, drift, reg, verdict = runs_of_series[0]
    if len(runs_of_series) > 1:  # an interval end read off one bootstrap stream moves with its seed
        ends = {k: np.array([getattr(r, k) for _, _, r, _ in runs_of_series], float) for k in ("lo", "hi")}
        mid = {k: float(np.median(v)) if np.isfinite(v).all() else getattr(reg, k) for k, v in ends.items()}
        mc = {k: float(np.ptp(v)) / 2 if np.isfinite(v).all() else float("nan") for k, v in ends.items()}
        first = f"[{percent(reg.lo)}, {percent(reg.hi)}]"
        reg = replace(reg, lo=mid["lo"], hi=mid["hi"], lo_mc=mc["lo"], hi_mc=mc["hi"])
        # the verdict's words carry the same interval as the table (one value per number)
        verdict = replace(verdict, text=verdict.text.replace(first, f"[{percent(reg.lo)}, {percent(reg.hi)}]", 1))
    outcomes = [(v.code, r.resolution) for _, _, r, v in runs_of_series]
    agree = outcomes.count(outcomes[0])
    panel = len(outcomes)
    if agree == panel:
        return optima, drift, reg, replace(verdict, agree=agree, panel=panel)
    tally = ", ".join(
        f"{code} ({resolution}) under {outcomes.count((code, resolution))}"
        for code, resolution in dict.fromkeys(outcomes)
    )
    reg = replace(reg, resolution="not resolved")
    text = (
        f"not resolved: the verdict moves with the bootstrap's random seed ({tally} of {panel} seeds); "
        + verdict.text.split(": ", 1)[-1]
    )
    verdict = replace(verdict, code="not_resolved", text=text, agree=agree, panel=panel)
    return optima, drift, reg, verdict


def analyze(
    runs: pd.DataFrame,
    metric: str = "val_loss",
    n_boot: int = 500,
    seed: int = 0,
    stability_seeds: int = STABILITY_SEEDS,
) -> StudyAnalysis:
    """Locate the optimal decay setting per (series, size) and judge whether it moves.

    metric must be lower-is-better (a loss). Every optimum, best loss and regret is read off
    seed means of trained runs; the one fit (a parabola's vertex: setting_star_fit, slope_fit)
    is a prediction of position only. The bootstrap resamples the whole pipeline n_boot times:
    at every size and every setting the trained seeds are drawn with replacement independently,
    the grid optimum at each size (the proxy's choice included) is re-chosen, and the drift
    exponent and the transfer regret recomputed, giving their 90 % intervals. With 3 seeds a
    setting's mean takes only 10 distinct values over resamples, so the intervals are a lower
    bound on the uncertainty. Every verdict is taken again under `stability_seeds` bootstrap RNG
    seeds (seed, seed+1, ...): one they do not all give is "not resolved" (Verdict.agree of
    .panel say how many gave it). Raises ValueError for an empty frame, missing
    columns, non-positive settings/sizes, or fewer than 3 settings at some size of a series.
    """
    df, counts = _prepare(runs, metric)
    if "lr" in df and (df.groupby(list(SERIES_KEYS) + ["size", "setting"])["lr"].nunique() > 1).any():
        raise WdscaleError(
            "these runs sweep the lr too (a joint study): analyse them with "
            "wdscale.study.analysis.joint.analyze_joint, "
            "or the λ-only view at one lr with joint.fixed_lr_slice(runs)"
        )
    optima, drifts, regrets, verdicts = [], [], [], []
    order = ["task", "optimizer", "size_axis", "rule"]
    for _, g in df.groupby(order, sort=True):
        key = tuple(g[k].iloc[0] for k in SERIES_KEYS)
        panel = stability_seeds if n_boot > 0 else 1
        o, d, r, v = _stable([_analyze_series(key, g, n_boot, seed + k) for k in range(max(1, panel))], key)
        optima += o
        drifts.append(d)
        regrets.append(r)
        verdicts.append(v)
    return StudyAnalysis(optima, drifts, regrets, verdicts, metric, n_boot, counts, df.attrs.get("sizes_dropped", ()))


def fresh_spread(mean: np.ndarray, resampled: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Resampled seed means widened to the spread of a fresh mean of n seeds: a bootstrap mean of n
    draws varies by (n−1)/n of a fresh mean's variance, so each deviation from the seed mean is
    scaled by √(n/(n−1)) (left alone where n = 1 or a value is not finite)."""
    scale = np.sqrt(n / np.maximum(n - 1, 1))
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(mean) & np.isfinite(resampled), mean + scale * (resampled - mean), resampled)


def optimum_resamples(
    runs: pd.DataFrame, metric: str = "val_loss", n_boot: int = 500, seed: int = 0
) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per series: (sizes, log grid optimum, log parabola vertex), the last two (n_boot, n_sizes),
    each row one whole-pipeline resample: at every size and setting the trained seeds are drawn
    with replacement and the optimum located again. A resampled mean of n seeds varies by only
    (n−1)/n of what a fresh mean would (its variance), so each resampled mean's deviation from the
    seed mean is scaled by √(n/(n−1)): with 3 seeds the plain bootstrap would under-cover. NaN
    where a resample has no finite point."""
    df, _ = _prepare(runs, metric)
    out: dict[SeriesKey, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for _, g in df.groupby(["task", "optimizer", "size_axis", "rule"], sort=True):
        key = tuple(g[k].iloc[0] for k in SERIES_KEYS)
        sizes, grid, fit = [], [], []
        for size, gs in g.groupby("size", sort=True):
            ss = np.random.SeedSequence([seed, zlib.crc32(repr(key).encode()), int(size), 1])
            d = _size_data(gs, int(size), n_boot, np.random.default_rng(ss), False)
            boot = fresh_spread(d.y, d.boot, (~np.isnan(d.m)).sum(0))
            yk = np.where(np.isnan(boot), np.inf, boot)
            i = _argmin(yk)
            sizes.append(int(size))
            grid.append(np.where(i >= 0, d.x[i.clip(0)], np.nan))
            fit.append(_fit_vertex(d.x, yk))
        out[key] = (np.array(sizes), np.column_stack(grid), np.column_stack(fit))
    return out


def mean_curves(runs: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Mean loss over seeds per (series, size, setting), for plotting.

    Columns: task, optimizer, rule, size_axis, setting_name, size, setting, mean, sem, n,
    n_diverged. mean is +inf where any seed diverged (sem is then NaN); n counts seeds."""
    df, _ = _prepare(runs, metric)
    keys = list(SERIES_KEYS) + ["setting_name", "size", "setting"]
    per_seed = df.groupby(keys + ["seed"])["loss"].mean().reset_index()
    per_seed["diverged"] = np.isinf(per_seed["loss"])
    g = per_seed.groupby(keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sem of inf values
        out = pd.DataFrame(
            {
                "mean": g["loss"].mean(),
                "sem": g["loss"].sem(),
                "n": g["loss"].count(),
                "n_diverged": g["diverged"].sum().astype(int),
            }
        ).reset_index()
    out.loc[out["n_diverged"] > 0, "sem"] = np.nan
    return out
