"""From a finished study to the setting for the model you are about to train, with how sure.

runs -> analysis.analyze -> the optimum per (rule, size)
  -> per rule: least squares log(setting*) = a + b·log(size)             [Law]
     (on setting_star_fit, the parabola vertex, where finite at every size, else on
     setting_star, the best trained grid point: `Law.source` says which)
  -> the law's value at a target size, a PREDICTION, with a 90 % interval
  -> "a straight line in log-log is not supported" when the points miss the line by more
     than their own per-size intervals allow
  -> the recommended rule: the smallest MEASURED transfer regret (analysis), "not resolved"
     when its interval overlaps the runner-up's
  -> for that rule, given a model factory, the per-group torch settings at the target
     (`wdscale.explain`) and a ready `wdscale.optimizer(...)` call.

Interval (documented choice): the wider of two 90 % intervals of the law's value at the target.
(1) The whole pipeline, resampled: at every size and setting the trained seeds are drawn again
(`analysis.optimum_resamples`, small-sample corrected), every size's optimum located again, the
line refitted and evaluated at the target: the seed noise of every optimum. (2) A residual
bootstrap about the fitted line (residuals inflated by √(n/(n−2)) for the two fitted
parameters): the scatter of the optima about the line that seed noise does not explain — grid
quantisation, a law that is not quite a power law. Either alone under-covered: (2) covered the
truth in 15 of 20 synthetic studies whose law is known, and the committed studies' hold-outs
showed optima off any line by more than seed noise. With two sizes (2) has no residuals and
only (1) is given.

Straight-line check (documented choice): at each size the fitted line may miss the optimum by
at most half the log-width of that size's 90 % interval of the grid argmin (`Optimum.lo/hi`)
plus half a grid step (the grid cannot place an optimum finer than that). A miss larger than
that at any size flags `straight=False`. With two sizes the line passes through both points
and nothing can be checked.

Hold-out (`holdout`): the largest size is dropped, the law refitted on the rest, and its value
at the dropped size compared with the optimum measured there; the measured loss at the grid
setting trained there nearest (in log) to the prediction is compared with the best measured
there: a regret read off trained runs only, never off the law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from torch import nn

from ...errors import WdscaleError
from ...optim import explain
from ...rules import RULES, DataFacts, setting_kwargs
from ..plan.study_plan import MAX_BUILTIN_PARAMS, meta_params
from .joint import analyze_joint, joint_optimum_draws
from .study_analysis import (
    CI,
    SERIES_KEYS,
    StudyAnalysis,
    analyze,
    mean_curves,
    number,
    optimum_resamples,
    percent,
    setting_symbol,
)

AXES = ("width", "depth", "n_train", "batch_size")
EXTRAPOLATION_LIMIT = 4.0  # a target further than this factor beyond the measured sizes: warned
MAX_SUPPORTED_SLOPE = 2.5  # a steeper law is flagged: mean square's λ ∝ P ∝ width² is the steepest rule
N_BOOT = 2000

ModelFactory = Callable[[int, int], nn.Module]  # (width, depth) -> a fresh model


@dataclass(frozen=True)
class Law:
    """How one rule's optimum moves with size, and its PREDICTED value at the target.

    setting* ≈ exp(intercept) · size^slope, least squares on natural logs of the per-size
    optima named by `source` ("setting_star_fit": parabola vertices; "setting_star": best
    trained grid points). predicted: the law at target_size (a prediction: nothing was trained
    there); lo, hi: its 90 % residual-bootstrap interval (NaN with two sizes). straight: False
    when some size's optimum misses the line by more than `allowed` (see module docstring);
    max_miss: the largest |log residual| over allowed at that size (> 1 means not supported).
    extrapolation: target_size / largest measured size; warning: text, empty when none.
    regret, regret_lo, regret_hi: the MEASURED transfer regret of the rule (analysis: the
    smallest size's best trained setting reused at the largest), for the recommendation.
    edge: sizes whose optimum is on the grid's edge (a bound, and the law through it is one too);
    min_seeds: the fewest seeds behind a size's optimum (one seed measures no seed noise).
    code, detectable: the analysis's verdict code and detectable regret, which break a tie."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    setting_name: str
    source: str
    sizes: tuple
    intercept: float
    slope: float
    target_size: int
    predicted: float
    lo: float
    hi: float
    straight: bool
    max_miss: float
    extrapolation: float
    warning: str
    regret: float
    regret_lo: float
    regret_hi: float
    edge: tuple = ()  # sizes whose optimum sat on the edge of the swept grid: there it is a bound
    min_seeds: int = 0  # the fewest seeds behind any size's optimum
    # the analysis's "flat" verdict in words: the edge optima sit at the grid's weak end where the
    # loss is within seed noise (decay barely matters), not outside a grid to be widened
    flat: str = ""
    code: str = ""  # the analysis's verdict code ("transfers", "not_resolved", "edge", ...)
    detectable: float = float("nan")  # the smallest regret the design can tell from 0 (the seed noise)


@dataclass(frozen=True)
class Advice:
    """All rules' laws at one target, the recommended rule and why, and (given a model
    factory) the per-group torch settings for it; `str()` is the text report."""

    laws: list
    target_axis: str
    target_size: int
    recommended: str
    resolved: bool
    why: str
    settings_table: str
    optimizer_call: str

    def frame(self) -> pd.DataFrame:
        """One row per rule: the Law fields."""
        return pd.DataFrame([vars(law) for law in self.laws])

    def __str__(self) -> str:
        return render(self)


@dataclass(frozen=True)
class Holdout:
    """The law refitted without the largest size, checked against what was measured there.

    predicted (with lo, hi): the law's value at held_out_size, a PREDICTION; measured: the best
    trained grid setting there (measured_fit: the parabola vertex there, a prediction between
    grid points). nearest: the grid setting trained at held_out_size nearest in log to the
    prediction; nearest_loss: its seed-mean loss, best_loss: the lowest seed-mean loss there
    (both measured); regret = nearest_loss / best_loss − 1, from trained runs only."""

    task: str
    optimizer: str
    rule: str
    size_axis: str
    setting_name: str
    held_out_size: int
    fitted_sizes: tuple
    predicted: float
    lo: float
    hi: float
    measured: float
    measured_fit: float
    nearest: float
    nearest_loss: float
    best_loss: float
    regret: float
    straight: bool


# ----------------------------------------------------------------------------- maths


def _fit(x: np.ndarray, y: np.ndarray) -> tuple:
    """Least squares y = a + b x over the last axis of y; returns (a, b)."""
    xc = x - x.mean()
    b = ((y - y.mean(-1, keepdims=True)) * xc).sum(-1) / (xc * xc).sum()
    return y.mean(-1) - b * x.mean(), b


def _grid_steps(runs: pd.DataFrame) -> dict:
    """Median log spacing of the trained settings per (series, size)."""
    out = {}
    for key, g in runs.groupby(list(SERIES_KEYS) + ["size"]):
        s = np.log(np.unique(pd.to_numeric(g["setting"], errors="coerce").dropna().to_numpy(float)))
        out[tuple(key)] = float(np.median(np.diff(s))) if s.size > 1 else float("nan")
    return out


def _law(key: tuple, opt: pd.DataFrame, steps: dict, target: int, n_boot: int, seed: int, draws=None) -> dict:
    """Fit one series' law and predict at target; the Law fields but the regret ones."""
    opt = opt.sort_values("size")
    sizes = opt["size"].to_numpy(int)
    fit_vals = opt["setting_star_fit"].to_numpy(float)
    use_fit = bool(np.isfinite(fit_vals).all() and (fit_vals > 0).all())
    source = "setting_star_fit" if use_fit else "setting_star"
    y = np.log(fit_vals if use_fit else opt["setting_star"].to_numpy(float))
    x = np.log(sizes.astype(float))
    nan = float("nan")
    edge = tuple(int(s) for s in opt.loc[opt["at_edge"].astype(bool), "size"])
    base: dict[str, Any] = dict(
        zip(SERIES_KEYS, key), setting_name=str(opt["setting_name"].iloc[0]), source=source,
        sizes=tuple(int(s) for s in sizes), target_size=int(target), edge=edge,
        min_seeds=int(opt["n_seeds"].min()),
    )  # fmt: skip
    if len(sizes) < 2 or not np.isfinite(y).all():
        why = "fewer than two sizes with an optimum" if np.isfinite(y).all() else "a size without an optimum"
        return dict(
            base, intercept=nan, slope=nan, predicted=nan, lo=nan, hi=nan, straight=False, max_miss=nan,
            extrapolation=target / sizes.max(), warning=f"no law: {why}",
        )  # fmt: skip
    a, b = _fit(x, y)
    xt = np.log(float(target))
    resampled = np.empty((0, len(x)))
    if draws is not None:  # every size's optimum from resampled seeds
        d_sizes, d_grid, d_fit = draws
        resampled = (d_fit if use_fit else d_grid)[:, np.isin(d_sizes, sizes)]
    _, pred, lo, hi = _predict(x, np.exp(np.vstack([y, resampled])), xt, n_boot, seed)
    resid = y - (a + b * x)
    allowed = np.array(
        [
            0.5 * (np.log(h) - np.log(lo_)) + 0.5 * steps.get(tuple(key) + (int(s),), 0.0)
            for s, lo_, h in zip(sizes, opt["lo"].to_numpy(float), opt["hi"].to_numpy(float))
        ]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        miss = np.abs(resid) / allowed
    max_miss = float(np.nanmax(miss)) if len(sizes) > 2 and np.isfinite(miss).any() else 0.0
    straight = max_miss <= 1.0
    ratio = target / sizes.max()
    warnings = _extrapolation(key[3], target, sizes)
    if not straight:
        warnings.append("a straight line in log-log is not supported by the per-size optima")
    if len(sizes) == 2:
        warnings.append("two sizes: the line passes through both, no interval and no check")
    if edge:
        warnings.append(
            f"the optimum sat on the edge of the swept grid at {key[3]} {list(edge)}: there it is a bound, and "
            "so is the law through it (widen the grid: --extend, or refine)"
        )
    if abs(b) > MAX_SUPPORTED_SLOPE:
        warnings.append(
            f"a slope of {b:.2g} is beyond what these sizes support (no rule here moves faster than ∝ size^"
            f"{MAX_SUPPORTED_SLOPE:g}; mean square's λ ∝ P ∝ width² is the steepest): read it as noise or an edge, "
            "not a law"
        )
    return dict(
        base, intercept=float(a), slope=float(b), predicted=pred, lo=lo, hi=hi, straight=bool(straight),
        max_miss=max_miss, extrapolation=float(ratio), warning="; ".join(warnings),
    )  # fmt: skip


def _extrapolation(axis: str, target: int, sizes: np.ndarray) -> list[str]:
    """The warning for a target more than EXTRAPOLATION_LIMIT× beyond the measured sizes, if it is."""
    if target > EXTRAPOLATION_LIMIT * sizes.max() or target * EXTRAPOLATION_LIMIT < sizes.min():
        return [
            f"the target {axis} {target} is more than {EXTRAPOLATION_LIMIT:g}× beyond the measured "
            f"{axis}s {sizes.min()}–{sizes.max()}: an extrapolation the study did not test"
        ]
    if target < sizes.min():
        return [
            f"the target {axis} {target} is below the smallest measured {axis} {sizes.min()}: an extrapolation "
            "downward (a sweep there costs less than the study's smallest size did)"
        ]
    return []


def _meta_params(model_factory, width: int, depth: int) -> int:
    """The model's parameter count on the meta device; 0 if the factory cannot be built there
    (then the table builds it for real, as before)."""
    try:
        return meta_params(model_factory, width, depth)
    except Exception:  # a factory that loads data or checks devices: counted by building it
        return 0


def _series_keys(runs: pd.DataFrame) -> list:
    return [tuple(k) for k, _ in runs.groupby(["task", "optimizer", "size_axis"], sort=True)]


# ----------------------------------------------------------------------------- public


def fit_laws(
    runs: pd.DataFrame,
    target: int,
    metric: str = "val_loss",
    n_boot: int = N_BOOT,
    seed: int = 0,
    analysis: Optional[StudyAnalysis] = None,
) -> list[Law]:
    """Every rule's law, fitted on the study's per-size optima, and its value at `target`;
    `analysis`: the study's analysis of `runs` where one is at hand (a report's), so the regrets
    the recommendation quotes are the ones its tables print."""
    if int(target) < 1:
        raise WdscaleError(f"the target size must be a whole number ≥ 1, got {target}")
    # the laws read the optima and the regret interval, not the verdicts: one bootstrap seed
    result = analysis or analyze(runs, metric=metric, n_boot=300, seed=seed, stability_seeds=1)
    optima = result.optima_frame()
    table = result.table()
    steps = _grid_steps(runs)
    draws = optimum_resamples(runs, metric=metric, n_boot=min(n_boot, 1000), seed=seed) if n_boot > 0 else {}
    laws = []
    for key, opt in optima.groupby(list(SERIES_KEYS), sort=True):
        fields = _law(tuple(key), opt, steps, int(target), n_boot, seed, draws.get(tuple(key)))
        row = table[(table[list(SERIES_KEYS)] == pd.Series(dict(zip(SERIES_KEYS, key)))).all(axis=1)].iloc[0]
        flat = ""
        if row["code"] == "flat":
            flat = str(row["verdict"]).split(": ", 1)[-1]
            fields["warning"] = "; ".join(
                [w for w in fields["warning"].split("; ") if not w.startswith("the optimum sat on the edge")] + [flat]
            )
        laws.append(
            Law(
                **fields,
                flat=flat,
                regret=float(row["regret"]),
                regret_lo=float(row["regret_lo"]),
                regret_hi=float(row["regret_hi"]),
                code=str(row["code"]),
                detectable=float(row["detectable"]),
            )
        )
    return laws


def _tied(a: Law, b: Law) -> bool:
    """Two measured regrets closer than the seed noise can tell apart (the larger detectable regret)."""
    noise = np.nanmax([a.detectable, b.detectable, 0.0])
    return bool(abs(b.regret - a.regret) <= noise)


def recommend(laws: list) -> tuple:
    """(rule, resolved, why): the rule with the smallest measured transfer regret; not resolved
    when its 90 % interval overlaps the runner-up's. Where regrets tie within the seed noise the
    tie is said, and broken by measurement: a resolved "transfers" verdict goes first (never the
    names' order); a tie nothing measured breaks is not resolved."""
    ranked = sorted((law for law in laws if np.isfinite(law.regret)), key=lambda law: law.regret)
    if not ranked:
        return "", False, "no rule's transfer regret was measured: no recommendation"
    tie = [law for law in ranked if _tied(ranked[0], law)]
    transfers = [law for law in tie if law.code == "transfers"]
    if len(tie) > 1:
        ranked = [*transfers, *[law for law in ranked if law not in transfers]]
    best = ranked[0]
    text = (
        f"{best.rule}: smallest measured transfer regret {percent(best.regret)} "
        f"[{percent(best.regret_lo)}, {percent(best.regret_hi)}]"
    )
    if len(ranked) == 1:
        return best.rule, False, text + " (the only rule measured: nothing to compare with)"
    if len(tie) > 1:
        others = ", ".join(f"{law.rule} {percent(law.regret)}" for law in tie if law is not best)
        text = (
            f"{best.rule}: a tie within seed noise on measured transfer regret ({best.rule} {percent(best.regret)}, "
            f"{others}); "
        )
        if len(transfers) == 1:
            return best.rule, True, text + f"{best.rule} is the one whose verdict is a resolved 'transfers'"
        why = "several have" if transfers else "none has"
        return (
            best.rule,
            False,
            text + f"{why} a resolved 'transfers' verdict: not resolved, nothing measured tells them apart",
        )
    second = ranked[1]
    resolved = bool(np.isfinite(best.regret_hi) and np.isfinite(second.regret_lo) and best.regret_hi < second.regret_lo)
    vs = f"runner-up {second.rule} {percent(second.regret)} [{percent(second.regret_lo)}, {percent(second.regret_hi)}]"
    if min(best.min_seeds, second.min_seeds) < 2:
        return (
            best.rule,
            False,
            (
                f"{text}; {vs}: not resolved (one seed per point measures no seed noise: its intervals say nothing; "
                "run at least 2 seeds)"
            ),
        )
    if resolved:
        return best.rule, True, f"{text}; {vs}: resolved (the intervals do not overlap)"
    return best.rule, False, f"{text}; {vs}: not resolved (the intervals overlap)"


def _target_config(runs: pd.DataFrame, axis: str, target: int) -> dict:
    """width, depth, base_width, base_depth, lr, n_train, batch_size, epochs at the target, from
    the study's runs (their most common value), the target axis replaced."""
    cfg: dict[str, Any] = {}
    for col in ("width", "depth", "base_width", "base_depth", "lr", "n_train", "batch_size", "epochs", "momentum"):
        if col not in runs.columns:
            continue
        values = runs[col]
        if col != "momentum":  # a knob stored 0 is not known (runs imported without it, `run.external`)
            values = values[pd.to_numeric(values, errors="coerce") > 0]
        if values.notna().any():
            cfg[col] = values.mode().iloc[0]
    cfg[axis] = target
    return cfg


def _optimizer_call(rule: str, optimizer: str, setting_name: str, setting: float, cfg: dict) -> str:
    kw = {"tau" if setting_name == "tau" else "weight_decay": setting}  # the rule may be unknown here
    parts = [f'model, "{optimizer}"', f'rule="{rule}"', f"lr={cfg.get('lr', 'LR')}"]
    parts += [f"{k}={v:.3g}" for k, v in kw.items()]
    parts.append("base=base_model")
    if all(k in cfg for k in ("n_train", "batch_size", "epochs")):
        parts.append(
            f"data=wdscale.DataFacts(n_samples={int(cfg['n_train'])}, batch_size={int(cfg['batch_size'])}, "
            f"epochs={int(cfg['epochs'])})"
        )
    if "depth" in cfg and "base_depth" in cfg and int(cfg["depth"]) != int(cfg["base_depth"]):
        parts.append(f"depth_mult={int(cfg['depth']) / int(cfg['base_depth']):g}")
    if optimizer == "sgd" and "momentum" in cfg:
        parts.append(f"momentum={cfg['momentum']:g}")
    return "wdscale.optimizer(" + ", ".join(parts) + ")"


def advise(
    runs: pd.DataFrame,
    target: int,
    axis: Optional[str] = None,
    model_factory: Optional[ModelFactory] = None,
    metric: str = "val_loss",
    n_boot: int = N_BOOT,
    seed: int = 0,
    analysis: Optional[StudyAnalysis] = None,
) -> Advice:
    """Predict every rule's optimum at size `target` on the study's size axis and recommend a rule.

    axis: the size axis the target is on; it must be the study's (None: the study's). With a
    model_factory(width, depth), the recommended rule's per-group settings at the target are
    tabulated by `wdscale.explain` (base model: the factory at the study's base width).
    analysis: the study's analysis of `runs` where one is at hand (see `fit_laws`).
    Raises WdscaleError for a target on another axis, a study of several axes, or bad runs."""
    axes = sorted(set(runs["size_axis"])) if "size_axis" in runs.columns else []
    if len(axes) != 1:
        raise WdscaleError(f"advise needs a study along one size axis; this one has {axes or 'none'}")
    study_axis = axes[0]
    if axis is not None and axis != study_axis:
        raise WdscaleError(
            f"the target is a {axis} but this study varies {study_axis}: give --target-{study_axis.replace('_', '-')}"
        )
    laws = fit_laws(runs, target, metric=metric, n_boot=n_boot, seed=seed, analysis=analysis)
    rule, resolved, why = recommend(laws)
    table, call = "", ""
    chosen = [law for law in laws if law.rule == rule and np.isfinite(law.predicted)]
    if chosen and chosen[0].flat:
        why += f"; no ready call: {chosen[0].flat} — take a λ there, or train longer for decay to matter"
        chosen = []
    if chosen and (chosen[0].edge or abs(chosen[0].slope) > MAX_SUPPORTED_SLOPE):
        why += "; no ready call: its law rests on a bound (see its warning)"
        chosen = []
    if chosen:
        law = chosen[0]
        cfg = _target_config(runs[runs["rule"] == rule], study_axis, int(target))
        call = _optimizer_call(rule, law.optimizer, law.setting_name, law.predicted, cfg)
        if (
            model_factory is not None
            and rule in RULES
            and {"width", "depth", "base_width", "base_depth", "lr"} <= set(cfg)
        ):
            width, depth = int(cfg["width"]), int(cfg["depth"])
            base = model_factory(int(cfg["base_width"]), depth)  # real first: a factory may cache data
            n_params = _meta_params(model_factory, width, depth)
            if n_params > MAX_BUILTIN_PARAMS:
                why += (
                    f"; no per-parameter table: the model at {study_axis} {int(target)} has {n_params:,} "
                    "parameters, too many to build here"
                )
                return Advice(laws, study_axis, int(target), rule, resolved, why, table, call)
            data = None
            if all(k in cfg for k in ("n_train", "batch_size", "epochs")):
                data = DataFacts(
                    n_samples=int(cfg["n_train"]), batch_size=int(cfg["batch_size"]), epochs=float(cfg["epochs"])
                )
            table = str(
                explain(
                    model_factory(width, depth),
                    rule=rule,
                    lr=float(cfg["lr"]),
                    **setting_kwargs(rule, law.predicted),
                    base=base,
                    data=data,
                    optimizer=law.optimizer,
                    depth_mult=depth / int(cfg["base_depth"]),
                )
            )
    return Advice(laws, study_axis, int(target), rule, resolved, why, table, call)


def render(advice: Advice) -> str:
    """The text report of an Advice."""
    axis, target = advice.target_axis, advice.target_size
    out = [
        f"advice for {axis} {target} (every setting below is a PREDICTION of a fitted law; nothing was trained there)"
    ]
    for law in advice.laws:
        sym = setting_symbol(law.setting_name)
        out.append(
            f"  {law.rule:<12} predicted {sym}* = {number(law.predicted)}  "
            f"90% interval [{number(law.lo)}, {number(law.hi)}]  "
            f"law {sym}* ∝ {axis}^{number(law.slope)} fitted on {law.source} at {axis} "
            f"{', '.join(map(str, law.sizes))}; measured transfer regret {percent(law.regret)} "
            f"[{percent(law.regret_lo)}, {percent(law.regret_hi)}]"
        )
        if law.warning:
            out.append(f"    warning: {law.warning}")
    out.append(f"recommended: {advice.why}" if advice.recommended else advice.why)
    if advice.settings_table:
        out.append(f"per-group settings for {advice.recommended} at {axis} {target} (predicted setting):")
        out.append(advice.settings_table)
    if advice.optimizer_call:
        out.append(f"ready call (setting predicted): {advice.optimizer_call}")
    out.append(
        "interval: the wider of a whole-pipeline seed bootstrap and a residual bootstrap about the line "
        "(see wdscale.study.analysis.advise)"
    )
    return "\n".join(out)


def holdout(runs: pd.DataFrame, metric: str = "val_loss", n_boot: int = N_BOOT, seed: int = 0) -> list[Holdout]:
    """Per rule: refit without the largest size, predict its optimum, and check against runs
    trained there (see `Holdout`). Rules with fewer than three sizes are skipped."""
    full = analyze(runs, metric=metric, n_boot=100, seed=seed, stability_seeds=1).optima_frame()  # optima only
    curves = mean_curves(runs, metric=metric)
    out = []
    for key, g in runs.groupby(list(SERIES_KEYS), sort=True):
        sizes = sorted(set(pd.to_numeric(g["size"]).astype(int)))
        if len(sizes) < 3:
            continue
        held = sizes[-1]
        rest = g[pd.to_numeric(g["size"]).astype(int) != held]
        law = fit_laws(rest, held, metric=metric, n_boot=n_boot, seed=seed)[0]
        this = pd.Series(dict(zip(SERIES_KEYS, key)))
        opt = full[(full[list(SERIES_KEYS)] == this).all(axis=1) & (full["size"] == held)].iloc[0]
        c = curves[(curves[list(SERIES_KEYS)] == this).all(axis=1) & (curves["size"] == held)]
        c = c[np.isfinite(c["mean"]) | np.isinf(c["mean"])]
        nan = float("nan")
        nearest = nearest_loss = best = regret = nan
        if np.isfinite(law.predicted) and len(c):
            s = c["setting"].to_numpy(float)
            i = int(np.argmin(np.abs(np.log(s) - np.log(law.predicted))))
            nearest, nearest_loss = float(s[i]), float(c["mean"].iloc[i])
            means = c["mean"].to_numpy(float)
            best = float(np.min(means[np.isfinite(means)])) if np.isfinite(means).any() else nan
            regret = nearest_loss / best - 1 if np.isfinite(best) and best != 0 else nan
        out.append(
            Holdout(
                task=law.task,
                optimizer=law.optimizer,
                rule=law.rule,
                size_axis=law.size_axis,
                setting_name=law.setting_name,
                held_out_size=held,
                fitted_sizes=law.sizes,
                predicted=law.predicted,
                lo=law.lo,
                hi=law.hi,
                measured=float(opt["setting_star"]),
                measured_fit=float(opt["setting_star_fit"]),
                nearest=nearest,
                nearest_loss=nearest_loss,
                best_loss=best,
                regret=float(regret),
                straight=law.straight,
            )  # fmt: skip
        )
    return out


def render_holdout(rows: list) -> str:
    """The hold-out as text: one line per rule."""
    if not rows:
        return "hold-out: no rule has three or more sizes (two to fit, one to hold out)"
    out = [
        "hold-out: the law refitted without the largest size; predicted optimum (a PREDICTION) vs the optimum "
        "measured there, and the measured loss at the trained grid setting nearest the prediction vs the best there"
    ]
    for h in rows:
        sym = setting_symbol(h.setting_name)
        out.append(
            f"  {h.rule:<12} {h.size_axis} {h.held_out_size} (fitted on {', '.join(map(str, h.fitted_sizes))}): "
            f"predicted {sym}* = {number(h.predicted)} [{number(h.lo)}, {number(h.hi)}]; "
            f"measured {sym}* = {number(h.measured)} (parabola {number(h.measured_fit)}); "
            f"nearest trained {sym} = {number(h.nearest)}: loss {number(h.nearest_loss)} "
            f"vs best {number(h.best_loss)}, regret {percent(h.regret)}"
            + ("" if h.straight else "; line not supported")
        )
    return "\n".join(out)


# ----------------------------------------------------------------------------- a joint study


@dataclass(frozen=True)
class JointLaw:
    """A recipe's joint optimum moving with size: lr* and setting* each ∝ size^slope (least
    squares on logs of the measured joint optima at `sizes`), PREDICTED at target_size with 90 %
    intervals (the wider of a whole-pipeline seed bootstrap and a residual bootstrap, as `Law`).
    edge: sizes whose optimum sat on the edge of the swept lrs or settings (there the optimum is
    only a bound). gap, gap_lo, gap_hi: the MEASURED loss gap at the largest size of the recipe
    tuned jointly at the smallest and carried over (joint.analyze_joint), for the recommendation."""

    rule: str
    setting_name: str
    sizes: tuple
    target_size: int
    lr_slope: float
    lr: float
    lr_lo: float
    lr_hi: float
    setting_slope: float
    setting: float
    setting_lo: float
    setting_hi: float
    edge: tuple
    warning: str
    gap: float
    gap_lo: float
    gap_hi: float


@dataclass(frozen=True)
class JointAdvice:
    laws: list
    axis: str
    target_size: int
    recommended: str
    resolved: bool
    why: str
    optimizer_call: str
    optimizer: str

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(law) for law in self.laws])

    def __str__(self) -> str:
        return render_joint(self)


def _predict(x: np.ndarray, draws: np.ndarray, xt: float, n_boot: int, seed: int) -> tuple[float, float, float, float]:
    """(slope, prediction, lo, hi) of log draws[0] (the measured optima) on x, at xt. The interval
    is the wider of two 90 % intervals: the line refitted on each further row of draws (the whole
    pipeline resampled) and a residual bootstrap about the line (more than two sizes)."""
    y = np.log(draws)
    a, b = _fit(x, y[0])
    pred = float(np.exp(a + b * xt))
    ends = []
    rows = y[1:][np.isfinite(y[1:]).all(1)]
    if len(rows):
        ab, bb = _fit(x, rows)
        ends.append(np.quantile(ab + bb * xt, [(1 - CI) / 2, (1 + CI) / 2]))
    if len(x) > 2 and n_boot > 0:
        resid = y[0] - (a + b * x)
        rng = np.random.default_rng(seed)
        resampled = (a + b * x) + np.sqrt(len(x) / (len(x) - 2)) * resid[rng.integers(0, len(x), (n_boot, len(x)))]
        ab, bb = _fit(x, resampled)
        ends.append(np.quantile(ab + bb * xt, [(1 - CI) / 2, (1 + CI) / 2]))
    if not ends:
        return float(b), pred, float("nan"), float("nan")
    return float(b), pred, float(np.exp(min(e[0] for e in ends))), float(np.exp(max(e[1] for e in ends)))


def joint_laws(runs: pd.DataFrame, target: int, metric: str = "val_loss", n_boot: int = 300, seed: int = 0) -> list:
    """Every recipe's JointLaw at `target` (see `JointLaw`)."""
    if int(target) < 1:
        raise WdscaleError(f"the target size must be a whole number ≥ 1, got {target}")
    draws = joint_optimum_draws(runs, metric=metric, n_boot=n_boot, seed=seed)
    choices = analyze_joint(runs, metric=metric, n_boot=n_boot, seed=seed, tpe_trials=()).choices_frame()
    axis = str(runs["size_axis"].iloc[0])
    laws = []
    for rule, (sizes, lr_d, set_d) in draws.items():
        x = np.log(sizes.astype(float))
        xt = math.log(float(target))
        lr_slope, lr, lr_lo, lr_hi = _predict(x, lr_d, xt, n_boot, seed)
        s_slope, st, s_lo, s_hi = _predict(x, set_d, xt, n_boot, seed)
        g = runs[runs["rule"] == rule]
        edge = []
        for j, size in enumerate(sizes):
            at = g[g["size"] == size]
            if lr_d[0, j] in (at["lr"].min(), at["lr"].max()) or set_d[0, j] in (
                at["setting"].min(),
                at["setting"].max(),
            ):
                edge.append(int(size))
        warnings = _extrapolation(axis, int(target), sizes)
        if edge:
            warnings.append(
                f"the optimum sat on the edge of the swept lrs or settings at {axis} {edge}: there it is a bound"
            )
        if len(sizes) == 2:
            warnings.append("two sizes: the line passes through both, no residual check")
        t = choices[
            (choices["strategy"] == "transfer (lr and setting)")
            & (choices["rule"] == rule)
            & (choices["proxy_size"] == sizes.min())
        ]
        gap = t.iloc[0] if len(t) else None
        nan = float("nan")
        laws.append(
            JointLaw(
                rule=rule, setting_name="tau" if rule in RULES and RULES[rule].takes == "tau" else "lambda",
                sizes=tuple(int(v) for v in sizes), target_size=int(target), lr_slope=lr_slope, lr=lr, lr_lo=lr_lo,
                lr_hi=lr_hi, setting_slope=s_slope, setting=st, setting_lo=s_lo, setting_hi=s_hi, edge=tuple(edge),
                warning="; ".join(warnings), gap=float(gap["gap"]) if gap is not None else nan,
                gap_lo=float(gap["lo"]) if gap is not None else nan,
                gap_hi=float(gap["hi"]) if gap is not None else nan,
            )
        )  # fmt: skip
    return laws


def advise_joint(
    runs: pd.DataFrame, target: int, metric: str = "val_loss", n_boot: int = 300, seed: int = 0
) -> JointAdvice:
    """A joint study's advice at `target`: every recipe's predicted (lr, setting) and the recipe
    whose joint transfer was measured best ("not resolved" when the gap intervals overlap)."""
    laws = joint_laws(runs, target, metric=metric, n_boot=n_boot, seed=seed)
    ranked = sorted((law for law in laws if np.isfinite(law.gap)), key=lambda law: law.gap)
    axis = str(runs["size_axis"].iloc[0])
    optimizer = str(runs["optimizer"].iloc[0])
    if not ranked:
        return JointAdvice(laws, axis, int(target), "", False, "no recipe's transfer was measured", "", optimizer)
    best = ranked[0]
    why = (
        f"{best.rule}: tuned jointly at {axis} {best.sizes[0]} and carried to {best.sizes[-1]}, it lost a measured "
        f"{percent(best.gap)} [{percent(best.gap_lo)}, {percent(best.gap_hi)}] against the best trained there"
    )
    resolved = False
    if len(ranked) > 1:
        second = ranked[1]
        resolved = bool(best.gap_hi < second.gap_lo)
        why += (
            f"; runner-up {second.rule} {percent(second.gap)} [{percent(second.gap_lo)}, {percent(second.gap_hi)}]: "
            + ("resolved (the intervals do not overlap)" if resolved else "not resolved (the intervals overlap)")
        )
    cfg = _target_config(runs[runs["rule"] == best.rule], axis, int(target))
    cfg["lr"] = float(f"{best.lr:.3g}")
    call = _optimizer_call(best.rule, optimizer, best.setting_name, best.setting, cfg)
    return JointAdvice(laws, axis, int(target), best.rule, resolved, why, call, optimizer)


def render_joint(advice: JointAdvice) -> str:
    axis, target = advice.axis, advice.target_size
    out = [
        f"advice for {axis} {target} from a joint (lr × setting) study (every lr and setting below is a "
        "PREDICTION of a fitted law; nothing was trained there)"
    ]
    for law in advice.laws:
        sym = setting_symbol(law.setting_name)
        out.append(
            f"  {law.rule:<12} lr* = {number(law.lr)} [{number(law.lr_lo)}, {number(law.lr_hi)}] "
            f"(∝ {axis}^{number(law.lr_slope)}), {sym}* = {number(law.setting)} "
            f"[{number(law.setting_lo)}, {number(law.setting_hi)}] (∝ {axis}^{number(law.setting_slope)}); "
            f"measured joint transfer {law.sizes[0]} → {law.sizes[-1]}: {percent(law.gap)} "
            f"[{percent(law.gap_lo)}, {percent(law.gap_hi)}]"
        )
        if law.warning:
            out.append(f"    warning: {law.warning}")
    out.append(f"recommended: {advice.why}" if advice.recommended else advice.why)
    if advice.optimizer_call:
        out.append(f"ready call (lr and setting predicted): {advice.optimizer_call}")
    out.append(
        "intervals: the wider of a whole-pipeline seed bootstrap and a residual bootstrap about the line "
        "(see wdscale.study.analysis.advise)"
    )
    return "\n".join(out)
