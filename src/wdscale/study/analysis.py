"""Where is the best weight decay at each size, and does it move as the model grows?

runs (one row per training run)
  -> mean loss curve over seeds per (series, size)       [mean_curves]
  -> λ* per size, refined by a parabola in log(setting)  [Optimum]
  -> seed bootstrap: an interval for λ* and for the drift exponent
  -> drift: slope of log λ* against log size             [Drift]
  -> regret of reusing λ*(smallest) at the largest size  [Regret]
  -> a verdict in words                                  [Verdict]

A "series" is one (task, optimizer, rule, size_axis): the unit a scaling rule is judged on.
Everything here is numpy/pandas only, so it runs in milliseconds on thousands of runs.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import WdscaleError, WdscaleTypeError
from ..rules import RULES, setting_kind
from .config import STATUSES  # ("ok", "not_learned", "diverged", "failed")

SERIES_KEYS = ("task", "optimizer", "rule", "size_axis")
REQUIRED_COLUMNS = SERIES_KEYS + ("size", "setting", "seed", "status")
CI = 0.90  # coverage of every bootstrap interval
MIN_SETTINGS = 3  # fewer grid points cannot bracket a minimum

SeriesKey = tuple[str, str, str, str]  # (task, optimizer, rule, size_axis)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Optimum:
    """The best setting at one size. setting_star, lo, hi and grid_best are in the swept units
    (λ, or τ for τ-rules). at_edge: the grid minimum is the first or last grid point, so the
    true optimum lies outside the grid and setting_star is only a bound."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    size: int
    setting_star: float
    lo: float
    hi: float
    grid_best: float
    at_edge: bool
    best_loss: float
    n_seeds: int
    setting_name: str = "lambda"


@dataclass(frozen=True)
class Drift:
    """λ* ∝ size^slope, fitted on natural logs; lo/hi: 90 % seed-bootstrap interval of slope.
    fold_change = λ*(largest size) / λ*(smallest size)."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    slope: float
    lo: float
    hi: float
    fold_change: float
    setting_name: str = "lambda"


@dataclass(frozen=True)
class Regret:
    """Cost of tuning at the smallest size and reusing that setting at the largest size,
    relative to the best loss there. noise: s.e.m. over seeds at the best grid point, relative
    to the same best loss; within_noise = regret <= 2 * noise. acc_regret: accuracy lost (in
    val_acc's own units), NaN without a usable val_acc column."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    regret: float
    noise: float
    within_noise: bool
    acc_regret: float
    setting_name: str = "lambda"


@dataclass(frozen=True)
class Verdict:
    """code: "transfers" | "grows" | "shrinks" | "edge" | "single_size" | "no_optimum";
    text: one line for a human."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    code: str
    text: str
    setting_name: str = "lambda"


def _key(obj) -> SeriesKey:
    return tuple(getattr(obj, k) for k in SERIES_KEYS)


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything analyze() found. Lists are sorted by (task, optimizer, size_axis, rule);
    optima additionally by size. counts: runs per status in the input (failed ones dropped)."""

    optima: list
    drifts: list
    regrets: list
    verdicts: list
    metric: str
    n_boot: int
    counts: dict

    @property
    def series(self) -> list:
        """Series keys (task, optimizer, rule, size_axis) in report order."""
        return [_key(v) for v in self.verdicts]

    def optima_frame(self) -> pd.DataFrame:
        """One row per (series, size): the Optimum fields."""
        cols = [f for f in Optimum.__dataclass_fields__]
        return pd.DataFrame([asdict(o) for o in self.optima], columns=cols)

    def table(self) -> pd.DataFrame:
        """One row per series: drift exponent with interval, fold change, regret, verdict."""
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
                    fold_change=d.fold_change,
                    regret=r.regret,
                    noise=r.noise,
                    within_noise=r.within_noise,
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
    loss = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float, copy=True)
    loss[df["status"].isin(["diverged", "not_learned"]).to_numpy() | ~np.isfinite(loss)] = np.inf
    df["loss"] = loss

    for key, g in df.groupby(list(SERIES_KEYS), sort=True):
        if not ((g["setting"] > 0).all() and (g["size"] > 0).all()):
            raise WdscaleError(
                f"series ({_describe(key)}) has non-positive or missing settings/sizes; "
                "both must be > 0 because they are compared on a log scale"
            )
        if g["setting_name"].nunique() != 1:
            raise WdscaleError(f"series ({_describe(key)}) mixes setting names {sorted(g['setting_name'].unique())}")
        for size, n in g.groupby("size")["setting"].nunique().items():
            if n < MIN_SETTINGS:
                raise WdscaleError(
                    f"series ({_describe(key)}) has only {n} setting(s) at size {size} "
                    f"(after dropping failed runs); need at least {MIN_SETTINGS} to locate an optimum"
                )
    df["size"] = df["size"].astype(int)
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


@dataclass(frozen=True)
class _Fits:
    """Vectorised minimum location for B curves on one grid (x = log settings, ascending)."""

    log_star: np.ndarray  # (B,) refined log setting, NaN when no finite point
    best: np.ndarray  # (B,) loss at the optimum
    idx: np.ndarray  # (B,) grid index of the minimum
    at_edge: np.ndarray  # (B,) minimum at the first/last grid point
    coef: np.ndarray  # (B, 3) c0 + c1 d + c2 d^2, with d = log s - x[idx]
    parabola: np.ndarray  # (B,) the parabola was fitted, convex and used


def _locate(x: np.ndarray, y: np.ndarray) -> _Fits:
    """Grid argmin of each row of y, refined with a parabola in log(setting).

    Why a parabola: with 4 points per decade the grid alone resolves λ* only to a factor 1.8;
    near a smooth minimum the loss is quadratic in log λ, so the vertex does much better.
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
    at_vert = coef[:, 0] + coef[:, 1] * vert + coef[:, 2] * vert**2
    # The parabola's value, but never above a loss the grid actually achieved.
    best = np.where(convex, np.minimum(at_vert, ymin), ymin)
    return _Fits(
        log_star=np.where(found, x[idx] + vert, np.nan),
        best=np.where(found, best, np.nan),
        idx=idx,
        at_edge=at_edge,
        coef=coef,
        parabola=convex,
    )


def _curve_at(x: np.ndarray, y: np.ndarray, fits: _Fits, x0: float) -> float:
    """Mean loss of curve y (single row of `fits`) at log setting x0.

    Inside the parabola's bracket the parabola is used, so the transfer loss and the best loss
    come from the same model (linear interpolation of a convex curve overshoots it between grid
    points, which would fake a regret). Elsewhere: linear in log(setting) (_linear_at)."""
    if not np.isfinite(x0):
        return float("nan")
    i = int(fits.idx[0])
    k = len(x)
    if fits.parabola[0] and x[max(i - 1, 0)] <= x0 <= x[min(i + 1, k - 1)]:
        c0, c1, c2 = fits.coef[0]
        dd = x0 - x[i]
        return float(max(c0 + c1 * dd + c2 * dd * dd, fits.best[0]))
    return _linear_at(x, y, x0)


def _linear_at(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    """Linear interpolation in log(setting); the nearest end outside the grid. Non-finite
    neighbours propagate (inf: the transferred setting sits next to a diverged one)."""
    if not np.isfinite(x0):
        return float("nan")
    if x0 <= x[0]:
        return float(y[0])
    if x0 >= x[-1]:
        return float(y[-1])
    j = int(np.searchsorted(x, x0) - 1)
    t = (x0 - x[j]) / (x[j + 1] - x[j])
    if t < 1e-12:  # on a grid point: don't let 0 * inf from the neighbour make a NaN
        return float(y[j])
    if t > 1 - 1e-12:
        return float(y[j + 1])
    return float((1 - t) * y[j] + t * y[j + 1])


def _slopes(log_size: np.ndarray, log_star: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of log_star (B, n) on log_size (n,); NaN if any NaN."""
    xc = log_size - log_size.mean()
    yc = log_star - log_star.mean(-1, keepdims=True)
    return (yc * xc).sum(-1) / (xc * xc).sum()


def _quantiles(a: np.ndarray) -> tuple:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    q = np.quantile(a, [(1 - CI) / 2, (1 + CI) / 2])
    return float(q[0]), float(q[1])


@dataclass(frozen=True)
class _SizeFit:
    size: int
    x: np.ndarray  # log settings (K,)
    y: np.ndarray  # mean loss (K,)
    m: np.ndarray  # loss per seed × setting (S, K)
    acc: Optional[np.ndarray]  # val_acc per seed × setting (S, K), NaN where unusable
    fits: _Fits  # point estimate (B = 1)
    boot_log_star: np.ndarray  # (n_boot,)


def _fit_size(g: pd.DataFrame, size: int, n_boot: int, rng: np.random.Generator, with_acc: bool) -> _SizeFit:
    m_df = g.groupby(["seed", "setting"])["loss"].mean().unstack("setting").sort_index(axis=1)
    m = m_df.to_numpy(float)
    x = np.log(m_df.columns.to_numpy(float))
    acc = None
    if with_acc:
        a = g.assign(val_acc=g["val_acc"].where(np.isfinite(g["loss"])))  # diverged: unusable
        acc = (
            a.groupby(["seed", "setting"])["val_acc"]
            .mean()
            .unstack("setting")
            .reindex(index=m_df.index, columns=m_df.columns)
            .to_numpy(float)
        )
    y = _col_mean(m[None])  # (1, K)
    s = m.shape[0]
    boot = _col_mean(m[rng.integers(0, s, size=(n_boot, s))]) if n_boot > 0 else np.empty((0, len(x)))
    return _SizeFit(int(size), x, y[0], m, acc, _locate(x, y), _locate(x, boot).log_star)


# ----------------------------------------------------------------------------- per series


def setting_symbol(setting_name: str) -> str:
    """τ for a τ-rule's setting, λ otherwise."""
    return "τ" if setting_name == "tau" else "λ"


def _verdict(key: SeriesKey, name: str, fits: list, drift: Drift, regret: Regret) -> Verdict:
    sym = setting_symbol(name)
    axis = key[3]
    mk = lambda code, text: Verdict(*key, code=code, text=text, setting_name=name)  # noqa: E731
    dead = [f.size for f in fits if not np.isfinite(f.fits.log_star[0])]
    if dead:
        return mk("no_optimum", f"inconclusive: every setting diverged at {axis} {', '.join(map(str, dead))}")
    edges = [f for f in fits if f.fits.at_edge[0]]
    if edges:
        where = [f"{f.size} ({'smallest' if f.fits.idx[0] == 0 else 'largest'} {sym} swept)" for f in edges]
        return mk(
            "edge",
            f"inconclusive: optimum at grid edge for sizes {', '.join(where)}; "
            f"{sym}* lies outside the grid there, widen it",
        )
    if len(fits) < 2:
        return mk("single_size", f"inconclusive: only one {axis} ({fits[0].size})")
    if drift.lo <= 0 <= drift.hi and regret.within_noise:
        return mk("transfers", f"transfers: {sym}* is flat in {axis} (∝ {axis}^{drift.slope:.2f}, regret within noise)")
    code = "grows" if drift.slope > 0 else "shrinks"
    # A tiny but "significant" drift can still be harmless in practice: say so.
    cheap = "; the transfer regret is within noise" if regret.within_noise else ""
    return mk(code, f"{sym}* {code} with {axis} (∝ {axis}^{drift.slope:.2f}){cheap}")


def _analyze_series(key: SeriesKey, g: pd.DataFrame, n_boot: int, seed: int) -> tuple:
    name = str(g["setting_name"].iloc[0])
    with_acc = "val_acc" in g.columns and bool(np.isfinite(g["val_acc"].astype(float)).any())
    fits = []
    for size, gs in g.groupby("size", sort=True):
        # Seeded per (series, size): a series' numbers don't depend on what else is in the frame.
        ss = np.random.SeedSequence([seed, zlib.crc32(repr(key).encode()), int(size)])
        fits.append(_fit_size(gs, int(size), n_boot, np.random.default_rng(ss), with_acc))

    optima = []
    for f in fits:
        lo, hi = _quantiles(f.boot_log_star)
        i = int(f.fits.idx[0])
        optima.append(
            Optimum(
                *key,
                size=f.size,
                setting_star=float(np.exp(f.fits.log_star[0])),
                lo=float(np.exp(lo)),
                hi=float(np.exp(hi)),
                grid_best=float(np.exp(f.x[i])) if np.isfinite(f.fits.best[0]) else float("nan"),
                at_edge=bool(f.fits.at_edge[0]),
                best_loss=float(f.fits.best[0]),
                n_seeds=int(f.m.shape[0]),
                setting_name=name,
            )
        )

    # Drift: λ* ∝ size^slope on natural logs, same bootstrap replicates as the intervals.
    log_size = np.log([f.size for f in fits]).astype(float)
    point = np.array([f.fits.log_star[0] for f in fits])
    if len(fits) >= 2 and np.isfinite(point).all():
        slope = float(_slopes(log_size, point[None])[0])
        lo, hi = _quantiles(_slopes(log_size, np.stack([f.boot_log_star for f in fits], -1)))
    else:
        slope, lo, hi = float("nan"), float("nan"), float("nan")
    drift = Drift(*key, slope=slope, lo=lo, hi=hi, fold_change=float(np.exp(point[-1] - point[0])), setting_name=name)

    # Regret of transferring the smallest size's optimum to the largest size.
    small, large = fits[0], fits[-1]
    x0 = float(small.fits.log_star[0])
    l_best = float(large.fits.best[0])
    l_tr = _curve_at(large.x, large.y, large.fits, x0)
    with np.errstate(invalid="ignore", divide="ignore"):
        regret = (l_tr - l_best) / abs(l_best) if l_best != 0 else float("nan")
        col = large.m[:, int(large.fits.idx[0])]
        col = col[np.isfinite(col)]
        noise = (
            float(np.std(col, ddof=1) / np.sqrt(col.size) / abs(l_best))
            if col.size >= 2 and l_best != 0
            else float("nan")
        )
    acc_regret = float("nan")
    if large.acc is not None:
        a = _col_mean(large.acc[None])[0]
        if np.isfinite(a).any():
            acc_regret = float(np.nanmax(a) - _linear_at(large.x, a, x0))
    within = bool(np.isfinite(regret) and regret <= 2 * (noise if np.isfinite(noise) else 0.0))
    reg = Regret(*key, regret=float(regret), noise=noise, within_noise=within, acc_regret=acc_regret, setting_name=name)
    return optima, drift, reg, _verdict(key, name, fits, drift, reg)


# ----------------------------------------------------------------------------- public


def analyze(runs: pd.DataFrame, metric: str = "val_loss", n_boot: int = 500, seed: int = 0) -> StudyAnalysis:
    """Locate the optimal decay setting per (series, size) and judge whether it moves.

    metric must be lower-is-better (a loss). Seeds are resampled with replacement within each
    size (n_boot times, the same resampled seeds for every setting of that size) to give 90 %
    intervals for λ* and for the drift exponent. Raises ValueError for an empty frame, missing
    columns, non-positive settings/sizes, or fewer than 3 settings at some size of a series.
    """
    df, counts = _prepare(runs, metric)
    optima, drifts, regrets, verdicts = [], [], [], []
    order = ["task", "optimizer", "size_axis", "rule"]
    for _, g in df.groupby(order, sort=True):
        key = tuple(g[k].iloc[0] for k in SERIES_KEYS)
        o, d, r, v = _analyze_series(key, g, n_boot, seed)
        optima += o
        drifts.append(d)
        regrets.append(r)
        verdicts.append(v)
    return StudyAnalysis(optima, drifts, regrets, verdicts, metric, n_boot, counts)


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
