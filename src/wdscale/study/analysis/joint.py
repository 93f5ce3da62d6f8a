"""λ and lr together: a joint study's optimum per recipe and size, how it moves, and what each way
of choosing (lr, setting) for the largest size costs and loses.

A joint study trains every rule on an lr × setting grid at every size. Each rule is a recipe: a
parameterisation (its own per-layer lr scaling: standard for `sum`/`decoupled`, μP for `mup`,
`timescale`, ...) with a decay rule, swept over the same base lrs. From the runs:

  -> seed-mean loss per (rule, size, lr, setting)                        [point means]
  -> the joint optimum per (rule, size): the trained point with the lowest seed mean, and how
     its lr, setting and product η·λ move with size (slopes on log-log, whole-pipeline bootstrap
     intervals)                                                            [JointOptimum, JointDrift]
  -> the reference: the best seed-mean loss at the target (largest size) over every recipe
  -> ways to choose the target's (lr, setting), each with its measured loss there and its tuning
     compute (one seed per point searched, in core-seconds and parameters × samples seen) [Choice]:
     a sweep at the target; each recipe tuned jointly at each smaller size and carried over by
     its rule; the same with λ only, at the fixed lr; and a TPE search at the target (Optuna,
     replayed on the trained grid, one seed per trial, repeated over sampler seeds).

Every loss and gap is a seed mean of runs trained at the target; a choice whose point was not
trained there is "not measured". Nothing is read off a fitted surface.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np
import pandas as pd

from ...errors import WdscaleError
from ...rules import RULES
from ..plan.study_plan import fixed_lr
from .study_analysis import (
    MIN_SETTINGS,
    SAME_SETTING_RTOL,
    STABILITY_SEEDS,
    core_seconds,
    fresh_spread,
    log_slopes,
    order_quantiles,
    params_samples,
    run_losses,
)

TPE_TRIALS = (4, 8, 16, 32)
TPE_REPEATS = 10
# resamples per bootstrap RNG seed: with the stability panel's median, enough that no interval end
# of the committed joint studies moves by more than the digit summarize.py prints it to
N_BOOT = 5000
PointKey = tuple[str, int, float, float]  # (rule, size, lr, setting)


@dataclass(frozen=True)
class JointOptimum:
    """The best trained (lr, setting) of a rule at one size: loss is its seed mean, noise the seed
    s.e.m. relative to it; lr_edge / setting_edge: the optimum is the smallest or largest lr
    trained at its setting / setting trained at its lr (the true one may lie outside: a bound);
    product: lr × setting, the per-step decay η·λ of λ-rules (NaN for τ-rules, whose setting is
    already a timescale)."""

    rule: str
    size: int
    lr: float
    setting: float
    loss: float
    noise: float
    n_seeds: int
    lr_edge: bool
    setting_edge: bool
    product: float
    fixed_lr_setting: float  # the best setting at the study's fixed lr (the λ-only view)


@dataclass(frozen=True)
class JointDrift:
    """Per rule: slopes of log lr*, log setting*, log (lr*·setting*) and of the fixed-lr view's
    log setting* against log size (least squares over the measured joint optima), each with a 90 %
    whole-pipeline bootstrap interval (lo, hi): each end the median over the bootstrap RNG seeds
    of the stability panel (`analyze_joint`'s stability_seeds). <slope>_mc: the Monte Carlo
    margin (lo, hi) of its ends, half their range over the panel; NaN with a panel of one."""

    rule: str
    lr_slope: tuple[float, float, float]
    setting_slope: tuple[float, float, float]
    product_slope: tuple[float, float, float]
    fixed_lr_setting_slope: tuple[float, float, float]
    lr_slope_mc: tuple[float, float] = (math.nan, math.nan)
    setting_slope_mc: tuple[float, float] = (math.nan, math.nan)
    product_slope_mc: tuple[float, float] = (math.nan, math.nan)
    fixed_lr_setting_slope_mc: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class Choice:
    """One way to choose the target's (lr, setting). strategy: "sweep at target", "transfer
    (lr and setting)", "transfer (setting only, fixed lr)" or "TPE at target (n trials)"; rule
    "all" for the sweep over every recipe. loss: the seed-mean loss trained at the target at the
    chosen point (NaN: not trained there); gap: loss over the target's best minus 1, with lo/hi
    its 90 % interval (whole-pipeline bootstrap for a sweep or a transfer, each end the median
    over the stability panel's bootstrap RNG seeds, lo_mc / hi_mc its Monte Carlo margin, half
    the ends' range over the panel; the spread over sampler seeds for TPE, whose gap is their
    median, and whose margins are NaN: no bootstrap). core_s and params_samples: the search's
    compute, one seed per point searched plus, for a transfer, the one run at the target."""

    strategy: str
    rule: str
    proxy_size: Optional[int]
    lr: float
    setting: float
    loss: float
    gap: float
    lo: float
    hi: float
    core_s: float
    params_samples: float
    n_points: int
    lo_mc: float = math.nan
    hi_mc: float = math.nan


@dataclass(frozen=True)
class JointAnalysis:
    target_size: int
    best: JointOptimum  # the best point at the target over every recipe
    fixed_lr: float
    optima: list[JointOptimum]
    drifts: list[JointDrift]
    choices: list[Choice]
    core_s: float  # the study's total core-seconds
    fixed_lr_core_s: float  # of its runs at the fixed lr (the λ-only study inside it)
    metric: str = "val_loss"
    notes: list[str] = field(default_factory=list)

    def optima_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(o) for o in self.optima])

    def choices_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.choices])


def is_joint(runs: pd.DataFrame) -> bool:
    """Whether some rule of the study was trained at more than one lr at one size."""
    return "lr" in runs and bool((runs.groupby(["rule", "size"])["lr"].nunique() > 1).any())


def slice_lr(runs: pd.DataFrame, base_lr: Optional[float] = None) -> float:
    """The lr of the λ-only view of stored runs: `plan.study_plan.fixed_lr` of the coarse lrs. A
    coarse lr is one trained at ≥ 3 settings for every rule at every size (refinement's extra lrs
    hold one setting)."""
    n = runs[runs["status"] != "failed"].groupby(["rule", "size", "lr"])["setting"].nunique()
    per = n[n >= MIN_SETTINGS].reset_index().groupby(["rule", "size"])["lr"].unique()
    pairs = runs[["rule", "size"]].drop_duplicates()
    coarse = sorted(set.intersection(*(set(map(float, v)) for v in per))) if len(per) == len(pairs) else []
    if not coarse:
        raise WdscaleError("no lr was trained for every rule at every size: the study has no λ-only view")
    return fixed_lr(coarse, base_lr)


# ----------------------------------------------------------------------------- point means


@dataclass
class _Points:
    keys: list[PointKey]
    losses: list[np.ndarray]  # per point: its seeds' losses (+inf: diverged or did not learn)
    mean: np.ndarray  # (P,)
    sem: np.ndarray
    boot: np.ndarray  # (P, B): seed-resampled means
    core_s: np.ndarray  # (P,): mean core-seconds of one run
    params_samples: np.ndarray  # (P,): mean parameters × samples seen of one run
    index: dict[PointKey, int]

    def where(self, rule: Optional[str] = None, size: Optional[int] = None, lr: Optional[float] = None) -> np.ndarray:
        return np.array(
            [
                i
                for i, (r, s, x, _) in enumerate(self.keys)
                if (rule is None or r == rule) and (size is None or s == size) and (lr is None or x == lr)
            ],
            dtype=int,
        )


def _points(runs: pd.DataFrame, metric: str, n_boot: int, seed: int) -> _Points:
    """Every trained point's seed losses, mean, s.e.m., compute and n_boot resampled means (seeds
    drawn with replacement, the deviation scaled by √(n/(n−1)) so it varies as a fresh mean of n)."""
    runs = runs[runs["status"] != "failed"]
    runs = runs.assign(
        loss=run_losses(runs, metric),
        core=core_seconds(runs),
        work=params_samples(runs),
    )
    rng = np.random.default_rng(seed)
    keys, losses, boot, core, work = [], [], [], [], []
    for (rule, size, lr, setting), g in runs.groupby(["rule", "size", "lr", "setting"], sort=True):
        x = g["loss"].to_numpy(dtype=float)
        keys.append((str(rule), int(size), float(lr), float(setting)))
        losses.append(x)
        with np.errstate(invalid="ignore"):
            b = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
        boot.append(fresh_spread(np.full(n_boot, x.mean()), b, np.full(n_boot, len(x))))
        core.append(float(g["core"].mean()))
        work.append(float(g["work"].mean()))
    mean = np.array([x.mean() for x in losses])
    with np.errstate(invalid="ignore"):
        sem = np.array(
            [x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 and np.isfinite(x).all() else np.nan for x in losses]
        )
    return _Points(
        keys, losses, mean, sem, np.array(boot), np.array(core), np.array(work), {k: i for i, k in enumerate(keys)}
    )


def _argmin(values: np.ndarray) -> int:
    return int(np.argmin(np.where(np.isnan(values), np.inf, values)))


# ----------------------------------------------------------------------------- optima and drift


def _optimum(p: _Points, idx: np.ndarray, fixed_lr: float) -> JointOptimum:
    i = idx[_argmin(p.mean[idx])]
    rule, size, lr, setting = p.keys[i]
    # the edge of what was trained *through the optimum*: the lrs trained at its setting and the
    # settings trained at its lr (a refined cross extends only those; the whole grid's span would
    # call an optimum interior that is the last setting tried at its lr)
    lrs = sorted({p.keys[j][2] for j in idx if p.keys[j][3] == setting})
    settings = sorted({p.keys[j][3] for j in idx if p.keys[j][2] == lr})
    at_fixed = idx[[p.keys[j][2] == fixed_lr for j in idx]]
    fixed_setting = p.keys[at_fixed[_argmin(p.mean[at_fixed])]][3] if len(at_fixed) else math.nan
    tau = RULES[rule].takes == "tau" if rule in RULES else False
    return JointOptimum(
        rule=rule,
        size=size,
        lr=lr,
        setting=setting,
        loss=float(p.mean[i]),
        noise=float(p.sem[i] / p.mean[i]) if np.isfinite(p.mean[i]) else math.nan,
        n_seeds=len(p.losses[i]),
        lr_edge=lr in (lrs[0], lrs[-1]) and len(lrs) > 1,
        setting_edge=setting in (settings[0], settings[-1]) and len(settings) > 1,
        product=math.nan if tau else lr * setting,
        fixed_lr_setting=fixed_setting,
    )


def _optimum_draws(p: _Points, rule: str, sizes: list[int], fixed_lr: float) -> dict[str, np.ndarray]:
    """lr*, setting* and the fixed-lr view's setting* per size (rows) and resample (columns;
    column 0: the measured seed means, then the whole-pipeline resamples)."""
    n_boot = p.boot.shape[1]
    point = {k: np.zeros((len(sizes), n_boot + 1)) for k in ("lr", "setting", "fixed")}
    for j, size in enumerate(sizes):
        idx = p.where(rule, size)
        fixed = p.where(rule, size, fixed_lr)
        for col, sel in (("lr", idx), ("fixed", fixed)):
            if not len(sel):
                point[col if col == "fixed" else "lr"][j] = math.nan
                continue
            means = np.column_stack([p.mean[sel], p.boot[sel]])  # (points, 1 + B)
            best = sel[np.argmin(np.where(np.isnan(means), np.inf, means), axis=0)]
            if col == "lr":
                point["lr"][j] = [p.keys[i][2] for i in best]
                point["setting"][j] = [p.keys[i][3] for i in best]
            else:
                point["fixed"][j] = [p.keys[i][3] for i in best]
    return point


def _drift(p: _Points, rule: str, sizes: list[int], fixed_lr: float) -> JointDrift:
    s = np.array(sizes, dtype=float)
    point = _optimum_draws(p, rule, sizes, fixed_lr)
    tau = RULES[rule].takes == "tau" if rule in RULES else False
    product = point["lr"] * point["setting"]

    def fit(values: np.ndarray) -> tuple[float, float, float]:
        slopes = log_slopes(np.log(s), np.log(values.T))
        return (float(slopes[0]), *order_quantiles(slopes[1:]))

    nan3 = (math.nan, math.nan, math.nan)
    return JointDrift(
        rule=rule,
        lr_slope=fit(point["lr"]),
        setting_slope=fit(point["setting"]),
        product_slope=nan3 if tau else fit(product),
        fixed_lr_setting_slope=fit(point["fixed"]),
    )


# ----------------------------------------------------------------------------- choices


def _at(p: _Points, rule: str, size: int, lr: float, setting: float) -> int:
    """The point trained at (rule, size) with this lr and setting (each within 0.1 %: refined grids
    are rounded to 4 digits around each size's optimum), -1 if none."""
    i = p.index.get((rule, size, lr, setting), -1)
    if i >= 0:
        return i
    for j, (r, s, x, y) in enumerate(p.keys):
        if (
            r == rule
            and s == size
            and math.isclose(x, lr, rel_tol=SAME_SETTING_RTOL)
            and math.isclose(y, setting, rel_tol=SAME_SETTING_RTOL)
        ):
            return j
    return -1


def _gap_boot(p: _Points, chosen_boot: np.ndarray, target_idx: np.ndarray) -> np.ndarray:
    """Per resample: the gap of the chosen point (index per resample, -1: not trained at the
    target) against that resample's best at the target."""
    best = np.min(np.where(np.isnan(p.boot[target_idx]), np.inf, p.boot[target_idx]), axis=0)
    out = np.full(chosen_boot.shape, np.nan)
    ok = chosen_boot >= 0
    cols = np.arange(len(chosen_boot))[ok]
    out[ok] = p.boot[chosen_boot[ok], cols] / best[ok] - 1
    return out


def _transfer(
    p: _Points, rule: str, proxy: int, target: int, fixed_lr: Optional[float], best_loss: float, target_idx: np.ndarray
) -> Choice:
    sel = p.where(rule, proxy, fixed_lr)
    means = np.column_stack([p.mean[sel], p.boot[sel]])
    picks = sel[np.argmin(np.where(np.isnan(means), np.inf, means), axis=0)]  # (1 + B,)
    # the proxy chooses among a handful of points over all resamples: look each up once
    chosen, where = np.unique(picks, return_inverse=True)
    at_target = np.array([_at(p, rule, target, p.keys[i][2], p.keys[i][3]) for i in chosen])[where.ravel()]
    i, t = picks[0], at_target[0]
    loss = float(p.mean[t]) if t >= 0 else math.nan
    lo, hi = order_quantiles(_gap_boot(p, at_target[1:], target_idx))
    return Choice(
        strategy="transfer (lr and setting)" if fixed_lr is None else "transfer (setting only, fixed lr)",
        rule=rule,
        proxy_size=proxy,
        lr=p.keys[i][2],
        setting=p.keys[i][3],
        loss=loss,
        gap=loss / best_loss - 1 if t >= 0 else math.nan,
        lo=lo,
        hi=hi,
        core_s=float(p.core_s[sel].sum() + (p.core_s[t] if t >= 0 else 0.0)),
        params_samples=float(p.params_samples[sel].sum() + (p.params_samples[t] if t >= 0 else 0.0)),
        n_points=len(sel) + 1,
    )


def _sweep(p: _Points, idx: np.ndarray, rule: str, best_loss: float, target_idx: np.ndarray) -> Choice:
    means = np.column_stack([p.mean[idx], p.boot[idx]])
    picks = idx[np.argmin(np.where(np.isnan(means), np.inf, means), axis=0)]
    lo, hi = order_quantiles(_gap_boot(p, picks[1:], target_idx))
    i = picks[0]
    return Choice(
        strategy="sweep at target",
        rule=rule,
        proxy_size=None,
        lr=p.keys[i][2],
        setting=p.keys[i][3],
        loss=float(p.mean[i]),
        gap=float(p.mean[i] / best_loss - 1),
        lo=lo,
        hi=hi,
        core_s=float(p.core_s[idx].sum()),
        params_samples=float(p.params_samples[idx].sum()),
        n_points=len(idx),
    )


def tpe_replay(p: _Points, idx: np.ndarray, n_trials: int, repeat: int, penalty: float) -> tuple[int, float, float]:
    """One TPE search (Optuna, sampler seed `repeat`) over the coarse points `idx` of one recipe at
    the target, replayed on the trained runs: a trial's value is one trained seed's loss at the
    suggested point (the k-th suggestion of a point reads seed k mod its seeds; a diverged or
    unlearned run reads `penalty`). Returns (chosen point, core-seconds, params × samples)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lrs = sorted({p.keys[i][2] for i in idx})
    settings = sorted({p.keys[i][3] for i in idx})
    at = {(p.keys[i][2], p.keys[i][3]): i for i in idx}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=repeat, n_startup_trials=min(4, n_trials)))
    asked: dict[int, int] = {}
    core = work = 0.0
    for _ in range(n_trials):
        trial = study.ask()
        i = at.get(
            (
                lrs[trial.suggest_int("lr", 0, len(lrs) - 1)],
                settings[trial.suggest_int("setting", 0, len(settings) - 1)],
            )
        )
        if i is None:  # not on the trained grid (a ragged grid): the search sees a failure
            study.tell(trial, penalty)
            continue
        k = asked.get(i, 0) + repeat
        asked[i] = asked.get(i, 0) + 1
        value = p.losses[i][k % len(p.losses[i])]
        core += p.core_s[i]
        work += p.params_samples[i]
        study.tell(trial, float(value) if np.isfinite(value) else penalty)
    best = study.best_trial.params
    return at.get((lrs[best["lr"]], settings[best["setting"]]), -1), core, work


def _tpe(p: _Points, rule: str, coarse: np.ndarray, n_trials: int, best_loss: float, repeats: int) -> Choice:
    finite = p.mean[coarse][np.isfinite(p.mean[coarse])]
    penalty = float(2 * finite.max()) if len(finite) else 1e9
    gaps, cores, works = [], [], []
    for r in range(repeats):
        i, core, work = tpe_replay(p, coarse, n_trials, r, penalty)
        gaps.append(p.mean[i] / best_loss - 1 if i >= 0 else math.nan)
        cores.append(core)
        works.append(work)
    g = np.array(gaps)
    lo, hi = order_quantiles(g)
    return Choice(
        strategy=f"TPE at target ({n_trials} trials)",
        rule=rule,
        proxy_size=None,
        lr=math.nan,
        setting=math.nan,
        loss=float(np.nanmedian(g) + 1) * best_loss if np.isfinite(g).any() else math.nan,
        gap=float(np.nanmedian(g)),
        lo=lo,
        hi=hi,
        core_s=float(np.median(cores)),
        params_samples=float(np.median(works)),
        n_points=n_trials,
    )


# ----------------------------------------------------------------------------- public


def analyze_joint(
    runs: pd.DataFrame,
    metric: str = "val_loss",
    base_lr: Optional[float] = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    tpe_trials: tuple[int, ...] = TPE_TRIALS,
    tpe_repeats: int = TPE_REPEATS,
    stability_seeds: int = STABILITY_SEEDS,
) -> JointAnalysis:
    """The joint optima, their drift and the ways to choose the target's (lr, setting) (see the
    module's docstring). `base_lr`: the study's base lr, whose nearest coarse lr is the λ-only
    view's fixed lr (default: the middle coarse lr). Every bootstrap interval is taken under
    `stability_seeds` bootstrap RNG seeds (seed, seed+1, ...) of n_boot resamples each, its ends
    the median over them and their half range the Monte Carlo margin (`JointDrift`, `Choice`).
    TPE rows need Optuna (`pip install optuna`); without it they are left out and a note says so."""
    if not is_joint(runs):
        raise WdscaleError("not a joint study: every rule was trained at one lr per size (sweep lrs with --lrs)")
    if runs["size_axis"].nunique() != 1 or runs["task"].nunique() != 1 or runs["optimizer"].nunique() != 1:
        raise WdscaleError("a joint analysis takes one task, optimizer and size axis")
    fixed = slice_lr(runs, base_lr)
    panel = []  # per bootstrap RNG seed: its drifts and bootstrapped choices (the same order in each)
    for k in range(max(1, stability_seeds) if n_boot > 0 else 1):
        p = _points(runs, metric, n_boot, seed + k)
        sizes = sorted({key[1] for key in p.keys})
        rules = sorted({key[0] for key in p.keys})
        if len(sizes) < 2:
            raise WdscaleError(f"a joint study needs at least two sizes, got {sizes}")
        target = sizes[-1]
        target_idx = p.where(size=target)
        best = _optimum(p, target_idx, fixed)
        drifts = [_drift(p, rule, sizes, fixed) for rule in rules]
        choices = [_sweep(p, target_idx, "all", best.loss, target_idx)]
        choices += [_sweep(p, p.where(rule, target), rule, best.loss, target_idx) for rule in rules]
        for rule in rules:
            for proxy in sizes[:-1]:
                choices.append(_transfer(p, rule, proxy, target, None, best.loss, target_idx))
                choices.append(_transfer(p, rule, proxy, target, fixed, best.loss, target_idx))
        panel.append((drifts, choices))
    # the point estimates are seed means, the same under every seed; only the interval ends move
    drifts = [_median_drift(list(d)) for d in zip(*(d for d, _ in panel))]
    choices = [_median_choice(list(c)) for c in zip(*(c for _, c in panel))]
    optima = [_optimum(p, p.where(rule, size), fixed) for rule in rules for size in sizes]
    notes = []
    try:
        import optuna  # noqa: F401

        for rule in rules:
            coarse = _coarse(p, rule, target)
            for n in tpe_trials:
                choices.append(_tpe(p, rule, coarse, n, best.loss, tpe_repeats))
    except ImportError:
        notes.append("TPE rows left out: Optuna is not installed (pip install optuna)")
    core = core_seconds(runs)
    return JointAnalysis(
        target_size=target,
        best=best,
        fixed_lr=fixed,
        optima=optima,
        drifts=drifts,
        choices=choices,
        core_s=float(core.sum()),
        fixed_lr_core_s=float(core[runs["lr"] == fixed].sum()),
        metric=metric,
        notes=notes,
    )


def _median_end(ends: np.ndarray, first: float) -> tuple[float, float]:
    """An interval end over the stability panel: (its median, its Monte Carlo margin, half its
    range); the first seed's end and NaN where some seed's is not finite or the panel is one."""
    if len(ends) < 2 or not np.isfinite(ends).all():
        return first, math.nan
    return float(np.median(ends)), float(np.ptp(ends)) / 2


def _median_slope(panel: list[JointDrift], name: str) -> tuple[tuple[float, float, float], tuple[float, float]]:
    """One slope (e.g. "lr_slope") of a rule's drift under every seed of the panel: (its value and
    the panel's median ends, their margins)."""
    value = getattr(panel[0], name)
    (lo, lo_mc), (hi, hi_mc) = (
        _median_end(np.array([getattr(d, name)[k] for d in panel], float), value[k]) for k in (1, 2)
    )
    return (value[0], lo, hi), (lo_mc, hi_mc)


def _median_drift(panel: list[JointDrift]) -> JointDrift:
    """One rule's drift under every seed of the panel -> each slope's interval ends the panel's
    medians, with their margins."""
    (lr, lr_mc), (setting, setting_mc), (product, product_mc), (fixed, fixed_mc) = (
        _median_slope(panel, name) for name in ("lr_slope", "setting_slope", "product_slope", "fixed_lr_setting_slope")
    )
    return JointDrift(panel[0].rule, lr, setting, product, fixed, lr_mc, setting_mc, product_mc, fixed_mc)


def _median_choice(panel: list[Choice]) -> Choice:
    """One choice under every seed of the panel -> the first, its interval's ends the panel's
    medians with their margins."""
    first = panel[0]
    lo, lo_mc = _median_end(np.array([c.lo for c in panel], float), first.lo)
    hi, hi_mc = _median_end(np.array([c.hi for c in panel], float), first.hi)
    return replace(first, lo=lo, hi=hi, lo_mc=lo_mc, hi_mc=hi_mc)


def joint_optimum_draws(
    runs: pd.DataFrame, metric: str = "val_loss", n_boot: int = 300, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per rule of a joint study: (sizes, lr*, setting*), the last two (1 + n_boot, sizes): row 0
    the measured joint optimum at each size, then one row per whole-pipeline resample (every
    point's seeds drawn again at every size, the optimum located again)."""
    p = _points(runs, metric, n_boot, seed)
    out = {}
    for rule in sorted({k[0] for k in p.keys}):
        sizes = sorted({k[1] for k in p.keys if k[0] == rule})
        d = _optimum_draws(p, rule, sizes, math.nan)
        out[rule] = (np.array(sizes), d["lr"].T, d["setting"].T)
    return out


def _coarse(p: _Points, rule: str, size: int) -> np.ndarray:
    """The points of the lr × setting grid trained at every size (refinement's extra lrs and
    settings are where a finished study looked, not a grid a fresh search would have)."""
    sizes = sorted({k[1] for k in p.keys if k[0] == rule})
    common = set.intersection(*({(k[2], k[3]) for k in p.keys if k[0] == rule and k[1] == s} for s in sizes))
    return np.array([i for i in p.where(rule, size) if (p.keys[i][2], p.keys[i][3]) in common], dtype=int)


def point_means(runs: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (rule, size, lr, setting): seed-mean loss (+inf where a seed diverged or did not
    learn), its s.e.m., seeds, and the rule's setting name ("lambda" or "tau")."""
    runs = runs[runs["status"] != "failed"]
    g = runs.assign(loss=run_losses(runs, metric)).groupby(["rule", "size", "lr", "setting"])["loss"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.size()}).reset_index()
    out["setting_name"] = [RULES[r].takes if r in RULES else "weight_decay" for r in out["rule"]]
    out["setting_name"] = out["setting_name"].map({"tau": "tau"}).fillna("lambda")
    return out


def fixed_lr_slice(runs: pd.DataFrame, base_lr: Optional[float] = None) -> pd.DataFrame:
    """A joint study's runs at its fixed lr: the λ-only study inside it (for the 1-D analysis)."""
    return runs[runs["lr"] == slice_lr(runs, base_lr)]
