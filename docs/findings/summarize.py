"""The tables and the summary figure of docs/findings.md, from the studies committed beside this file.

    .venv/bin/python docs/findings/summarize.py

rewrites every block of docs/findings.md between `<!-- begin:NAME -->` and `<!-- end:NAME -->`:
NAME a study directory (its per-rule table) or `cost` (the cost of finding λ on the `full` study),
and draws docs/findings/summary_regret.png (transfer regret per rule, one panel per study),
schedule_regret.png (§8: constant lr beside the schedule) and onepass_tau.png (§9). Each
study is read from its runs.parquet (or runs.sqlite); a study directory that is missing is named.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import prose  # docs/findings/prose.py, beside this script
from scipy import stats

from wdscale.groups import classify
from wdscale.rules import RULES
from wdscale.study.analysis.advise import Holdout, holdout
from wdscale.study.analysis.cost import SearchCost, search_cost
from wdscale.study.analysis.joint import JointAnalysis, JointDrift, _points, analyze_joint
from wdscale.study.analysis.study_analysis import (
    STABILITY_SEEDS,
    StudyAnalysis,
    analyze,
    core_seconds,
    params_samples,
    run_losses,
    with_setting_names,
)
from wdscale.study.plan.study_plan import StudyPlan, make_runs
from wdscale.study.plan.tasks import get_task
from wdscale.study.report.study_report import interval_end_percent, interval_end_text
from wdscale.study.run.store import load_runs
from wdscale.study.search.optuna_search import TRIALS_FILE, counted_work
from wdscale.study.search.refine import DESIGNS, design_replay, setting_means
from wdscale.study.search.tune import finite_optima, placed_point
from wdscale.study.train.loop import chance_loss

HERE = Path(__file__).resolve().parent

# directory -> what it varies, on what
STUDIES = {
    "full": "width · MNIST-1D MLP · AdamW",
    "sgd_width": "width · MNIST-1D MLP · SGD",
    "digits_width": "width · digits MLP · AdamW",
    "shakespeare_width": "width · char transformer · AdamW",
    "mnist1d_data": "training-set size · MNIST-1D MLP (w 128) · AdamW",
    "mnist1d_batch": "batch size · MNIST-1D MLP (w 128) · AdamW",
    "mnist1d_depth": "depth · MNIST-1D MLP (w 128) · AdamW",
    "resmlp_depth": "depth · residual MLP (w 128) · AdamW",
    "resmlp_depth_completep": "depth · residual MLP, CompleteP branches · AdamW",
    "shakespeare_vectors": "width · char transformer · AdamW · vectors decayed",
}


# joint (lr × setting) studies (§6) -> what they vary, and the 1-D study of the same question whose
# compute they are compared with (its runs at the same sizes and rules)
JOINT_STUDIES = {
    "joint_width": ("width · MNIST-1D MLP · AdamW", "full"),
    "joint_digits": ("width · digits MLP · AdamW", "digits_width"),
    "joint_shakespeare": ("width · char transformer · AdamW", "shakespeare_width"),
    "joint_data": ("training-set size · MNIST-1D MLP (w 128) · AdamW", "mnist1d_data"),
}


# studies rerun under an lr schedule (§8) -> their constant-lr twin and the schedule, in words
SCHEDULE_STUDIES = {
    "mnist1d_data_cosine": ("mnist1d_data", "warmup 5 % + cosine to 10 %"),
    "mnist1d_batch_cosine": ("mnist1d_batch", "warmup 5 % + cosine to 10 %"),
    "full_cosine": ("full", "warmup 5 % + cosine to 10 %"),
    "full_linear": ("full", "warmup 5 % + linear to 0"),
    "shakespeare_width_cosine": ("shakespeare_width", "warmup 5 % + cosine to 10 %"),
}
SCHEDULE_JOINT_STUDIES = {"joint_width_cosine": "joint_width", "joint_shakespeare_cosine": "joint_shakespeare"}


# Muon for the hidden matrices, AdamW for the rest (§11) -> what they vary, on what
MUON_STUDIES = {"muon_width_cosine": "width · MNIST-1D MLP · Muon + AdamW · warmup + cosine"}
# λ × lr jointly under Muon + AdamW (§11) -> the AdamW joint study on the same task, widths, grids
# and schedule, whose tuned (lr, λ) Muon reuses
MUON_JOINT_STUDIES = {
    "joint_muon_width_cosine": "joint_width_cosine",
    "joint_muon_shakespeare_cosine": "joint_shakespeare_cosine",
}


# one pass over a token budget (§9): the axis τ* is read against, and the published laws' slope there
# (Power Lines: τ* ∝ TPP^−0.527, so flat across width at a fixed TPP; Wang & Aitchison: τ_epoch flat)
ONEPASS_STUDIES = {"onepass_width": ("width", 0.0), "onepass_tpp": ("TPP", -0.527)}
POWER_LINES_EXPONENT = -0.527  # τ = c · TPP^−0.527, c ≈ 1 (references.md: back-calculated, unverified)


def tau_points(j: JointAnalysis, runs: pd.DataFrame) -> pd.DataFrame:
    """Per recipe and size: tokens per parameter, τ* of the joint optimum and whether it is at an edge."""
    facts = runs.groupby("size").agg(n_train=("n_train", "first"), n_params=("n_params", "first"),
                                      batch=("batch_size", "first"))  # fmt: skip
    per_sample = get_task(str(runs["task"].iloc[0])).tokens_per_sample
    rows = []
    for o in j.optima:
        f = facts.loc[o.size]
        steps = math.ceil(f["n_train"] / f["batch"])
        tau = o.setting if not np.isfinite(o.product) else 1 / (o.product * steps)
        rows.append(dict(rule=o.rule, size=o.size, tpp=f["n_train"] * per_sample / f["n_params"], steps=steps, tau=tau,
                         edge=o.lr_edge or o.setting_edge))  # fmt: skip
    return pd.DataFrame(rows)


def tau_figure(points: dict[str, pd.DataFrame], path: Path) -> None:
    """τ* against tokens per parameter (one-pass TPP study) and against width at 20 TPP, with Power
    Lines' law (c ≈ 1, unverified) and a constant τ drawn through the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for ax, (name, xcol, xlabel) in zip(
        axes, [("onepass_tpp", "tpp", "tokens per parameter (width 16)"), ("onepass_width", "size", "width (20 TPP)")]
    ):
        d = points.get(name)
        if d is None:
            ax.axis("off")
            continue
        for rule, g in d.groupby("rule"):
            ax.plot(g[xcol], g["tau"], "o-", label=f"{rule} (joint optimum)")
            ax.plot(g.loc[g["edge"], xcol], g.loc[g["edge"], "tau"], "o", mfc="none", mec="k", ms=11)
        x = np.array(sorted(d[xcol].unique()), float)
        tpp = np.array(sorted(d["tpp"].unique()), float) if xcol == "tpp" else np.full(len(x), 20.0)
        ax.plot(x, tpp**POWER_LINES_EXPONENT, "k--", label="Power Lines: TPP^−0.527 (c ≈ 1)")
        ax.axhline(float(np.median(d["tau"])), color="grey", lw=0.8, label="constant τ (median)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:.3g}" for v in x], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("τ* (fraction of the run)")
        ax.legend(fontsize=7)
    fig.suptitle("One pass over a token budget: the best AdamW timescale (circled: at an edge, a bound)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tau_table(j: JointAnalysis, runs: pd.DataFrame, axis: str, published: float) -> str:
    """τ* = 1/(η_g·λ_g·T) of each recipe's joint optimum (the hidden weights' per-step decay, T the
    run's steps; a τ-rule's setting is τ in epochs, here one pass), and its slope against the axis
    with the whole-pipeline interval: a λ-rule's is −(η*·λ* slope) − (T's slope), T fixed by the plan."""
    pts = tau_points(j, runs)
    sizes = np.array(sorted(pts["size"].unique()), float)
    steps = pts.drop_duplicates("size").set_index("size").loc[sizes, "steps"].to_numpy(float)
    t_slope = float(np.polyfit(np.log(sizes), np.log(steps), 1)[0])
    lines = [
        r"| recipe | size | tokens per parameter | steps | lr\* | setting\* | τ\* (fraction of the run) | at edge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o, p in zip(j.optima, pts.itertuples()):
        edge = ", ".join(k for k, e in (("lr", o.lr_edge), ("setting", o.setting_edge)) if e) or "no"
        lines.append(
            f"| `{o.rule}` | {o.size} | {p.tpp:.1f} | {int(p.steps)} | {o.lr:.3g} | {o.setting:.3g} | "
            f"{p.tau:.3g} | {edge} |"
        )
    lines += [
        "",
        rf"| recipe | τ\* ∝ {axis}^slope [90% CI] | published slope | Wang & Aitchison (τ_epoch fixed) |",
        "|---|---|---|---|",
    ]
    for d in j.drifts:
        opt = [o for o in j.optima if o.rule == d.rule]
        if np.isfinite(opt[0].product):  # τ ∝ 1/(η·λ·T): the product's ends swap, with their margins
            (s, a, b), (ma, mb) = d.product_slope, d.product_slope_mc
            s, lo, hi, lo_mc, hi_mc = -s - t_slope, -b - t_slope, -a - t_slope, mb, ma
        else:
            (s, lo, hi), (lo_mc, hi_mc) = d.setting_slope, d.setting_slope_mc
        ends = f"[{interval_end_text(lo, lo_mc, 2, lower=True)}, {interval_end_text(hi, hi_mc, 2)}]"
        lines.append(f"| `{d.rule}` | {fmt(s)} {ends} | {published:g} | 0 |")
    return "\n".join(lines)


# §9 in loss terms: what τ costs, not only where its best grid point falls. The candidate slopes of
# τ* along a study's axis (Power Lines' −0.527 among them), the share of the best loss a τ may lose
# and still count as near it, and the resamples behind the intervals
TAU_SLOPES = (-0.6, POWER_LINES_EXPONENT, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4)
TAU_NEAR = 0.01
TAU_BOOT = 2000
TAU_SAME = 0.02  # decades: τ values closer than this are one τ (4-digit lrs and settings)


@dataclasses.dataclass(frozen=True)
class TauProfile:
    """One recipe at one size: its loss against τ, the best over the lrs trained at each τ (a
    τ-rule's setting is τ; a λ-rule's τ = 1/(η·λ·T)). log_tau: the distinct τ trained, ascending;
    loss: (τ, 1 + resamples), column 0 the seed means, then seed-resampled means."""

    rule: str
    size: int
    tpp: float  # tokens per parameter
    log_tau: np.ndarray
    loss: np.ndarray
    noise: float  # the seed s.e.m. of the best point over its loss


def tau_profiles(runs: pd.DataFrame, n_boot: int = TAU_BOOT, seed: int = 0) -> list[TauProfile]:
    """Every recipe's and size's τ profile, from every trained point (seeds resampled with
    replacement, each resampled mean spread as a fresh mean of its seeds, as the joint analysis does)."""
    p = _points(runs, "val_loss", n_boot, seed)
    facts = runs.groupby("size").agg(n_train=("n_train", "first"), n_params=("n_params", "first"),
                                      batch=("batch_size", "first"))  # fmt: skip
    per_sample = get_task(str(runs["task"].iloc[0])).tokens_per_sample
    values = np.column_stack([p.mean, p.boot])
    keys = pd.DataFrame(p.keys, columns=["rule", "size", "lr", "setting"])
    out = []
    for (rule, size), g in keys.groupby(["rule", "size"], sort=True):
        f = facts.loc[size]
        steps = math.ceil(f["n_train"] / f["batch"])
        takes_tau = rule in RULES and RULES[rule].takes == "tau"
        tau = g["setting"] if takes_tau else 1 / (g["lr"] * g["setting"] * steps)
        order = np.argsort(np.log10(tau.to_numpy(float)))
        log_tau, idx = np.log10(tau.to_numpy(float))[order], g.index.to_numpy()[order]
        group = np.concatenate([[0], np.cumsum(np.diff(log_tau) > TAU_SAME)])
        lt = np.array([log_tau[group == k].mean() for k in np.unique(group)])
        loss = np.array([values[idx[group == k]].min(axis=0) for k in np.unique(group)])
        best = idx[int(np.argmin(values[idx, 0]))]
        tpp = f["n_train"] * per_sample / f["n_params"]
        out.append(TauProfile(str(rule), int(size), float(tpp), lt, loss, float(p.sem[best] / p.mean[best])))
    return out


def _trained_lrs(runs: pd.DataFrame, rule: str, size: int) -> tuple[int, list[int], str]:
    """How the cross through a recipe's optimum was trained: the lrs at its setting, the lrs at each
    neighbouring setting (the nearest trained below and above), and how many of those neighbours
    were trained at the optimum's lr."""
    ok = setting_means(runs[(runs["rule"] == rule) & (runs["size"] == size)])
    best = ok.loc[ok["mean"].idxmin()]
    settings = sorted(ok["setting"].unique())
    k = settings.index(best["setting"])
    near = [settings[i] for i in (k - 1, k + 1) if 0 <= i < len(settings)]
    lrs_at = [int((ok["setting"] == s).sum()) for s in near]
    at_best_lr = sum(bool(((ok["setting"] == s) & (ok["lr"] == best["lr"])).any()) for s in near)
    return int((ok["setting"] == best["setting"]).sum()), lrs_at, f"{at_best_lr} of {len(near)}"


def _near_span(pr: TauProfile) -> tuple[int, int, int]:
    """The best τ's index and the first and last of the τ around it over which the profile stays
    within TAU_NEAR of the best."""
    m = pr.loss[:, 0]
    k = int(np.argmin(m))
    near = m <= (1 + TAU_NEAR) * m[k]
    lo = hi = k
    while lo > 0 and near[lo - 1]:
        lo -= 1
    while hi < len(m) - 1 and near[hi + 1]:
        hi += 1
    return k, lo, hi


def tau_span_rows(name: str, runs: pd.DataFrame, profiles: list[TauProfile]) -> list[str]:
    """Per recipe and size: τ*, its loss, the τ range around it over which the profile stays within
    TAU_NEAR of the best (a range that reaches the last τ trained is a bound, ≥), and how the cross
    through the optimum was trained."""
    rows = []
    for pr in profiles:
        m = pr.loss[:, 0]
        k, lo, hi = _near_span(pr)
        bound = "≥ " if lo == 0 or hi == len(m) - 1 else ""
        n_best, n_near, at_lr = _trained_lrs(runs, pr.rule, pr.size)
        rows.append(
            f"| `{name}` | `{pr.rule}` | {pr.size} | {pr.tpp:.3g} | {10 ** pr.log_tau[k]:.3g} | {m[k]:.3f} "
            f"| {10 ** pr.log_tau[lo]:.3g} – {10 ** pr.log_tau[hi]:.3g} "
            f"| {bound}×{10 ** (pr.log_tau[hi] - pr.log_tau[lo]):.3g} "
            f"| {noise_pct(pr.noise)} | {n_best} | {', '.join(map(str, n_near))} | {at_lr} |"
        )
    return rows


def slope_costs(profiles: list[TauProfile], slopes: tuple[float, ...] = TAU_SLOPES) -> np.ndarray:
    """The loss cost of setting τ ∝ TPP^slope from the middle size's τ* (per resample: the middle
    size's best τ in that resample), each size's loss read off its profile interpolated in log τ and
    taken over its own best, minus 1; NaN where the line leaves the τ trained. Returns the costs
    (slopes, sizes, 1 + resamples); the middle size costs 0 by construction."""
    mid = profiles[len(profiles) // 2]
    anchor = mid.log_tau[np.argmin(mid.loss, axis=0)]  # (1 + resamples,)
    cols = np.arange(len(anchor))
    costs = np.full((len(slopes), len(profiles), len(anchor)), np.nan)
    for j, pr in enumerate(profiles):
        if len(pr.log_tau) < 2:  # one τ trained: nothing to read a line off
            continue
        best = pr.loss.min(axis=0)
        for i, slope in enumerate(slopes):
            target = anchor + slope * (math.log10(pr.tpp) - math.log10(mid.tpp))
            inside = (target >= pr.log_tau[0]) & (target <= pr.log_tau[-1])
            upper = np.clip(np.searchsorted(pr.log_tau, target), 1, len(pr.log_tau) - 1)
            x0, x1 = pr.log_tau[upper - 1], pr.log_tau[upper]
            y0, y1 = pr.loss[upper - 1, cols], pr.loss[upper, cols]
            w = np.clip((target - x0) / (x1 - x0), 0.0, 1.0)
            with np.errstate(invalid="ignore"):  # an end that diverged: +inf, not inf × 0
                at = np.where(w == 0, y0, np.where(w == 1, y1, (1 - w) * y0 + w * y1))
            costs[i, j] = np.where(inside, at / best - 1, np.nan)
    return costs


def _slope(x: float) -> str:
    return fmt(x, 3 if x == POWER_LINES_EXPONENT else 1)


def tau_slope_rows(name: str, profiles: list[TauProfile]) -> tuple[list[str], list[str]]:
    """Per recipe: each candidate slope's loss cost over the sizes away from the middle (their mean
    and the worst, with 90 % intervals over the resamples) and its excess over the least-cost slope
    (paired resamples: told apart where the interval's lower end is above 0); and per recipe a
    summary row: the least-cost slope and the slopes not told apart from it."""
    rows, summary = [], []
    for rule in sorted({pr.rule for pr in profiles}):
        mine = sorted((pr for pr in profiles if pr.rule == rule), key=lambda pr: pr.tpp)
        away = np.delete(slope_costs(mine), len(mine) // 2, axis=1)  # (slopes, the other sizes, draws)
        mean, worst = away.mean(axis=1), away.max(axis=1)
        least = int(np.nanargmin(mean[:, 0]))
        same = []
        for i, slope in enumerate(TAU_SLOPES):
            excess = mean[i, 1:] - mean[least, 1:]
            if not np.isfinite(mean[i, 0]):  # the line leaves the τ trained: nothing to compare
                told = "–"
            else:
                told = "least cost" if i == least else ("yes" if np.nanpercentile(excess, 5) > 0 else "no")
            if told in ("least cost", "no"):
                same.append(slope)
            rows.append(
                f"| `{name}` | `{rule}` | {_slope(slope)} | {cost_pct(mean[i, 0], mean[i, 1:])} "
                f"| {cost_pct(worst[i, 0], worst[i, 1:])} | {cost_pct(mean[i, 0] - mean[least, 0], excess)} | {told} |"
            )
        summary.append(
            f"| {_slope(TAU_SLOPES[least])} | {_slope(min(same))} | {_slope(max(same))} "
            f"| {len(same)} of {len(TAU_SLOPES)} |"
        )
    return rows, summary


def noise_pct(x: float) -> str:
    """A seed noise (s.e.m. over the loss) in percent; – where it was not measured (one seed)."""
    return f"{100 * x:.2f} %" if np.isfinite(x) else "–"


def cost_pct(x: float, draws: np.ndarray) -> str:
    """A loss cost in percent to two decimals (the costs are tenths of a percent) and its 90 %
    interval over the resamples to one (the resampling moves the second)."""
    if not np.isfinite(x):
        return "off the τ trained"
    lo, hi = np.nanpercentile(draws, [5, 95])
    return f"{100 * x:.2f} % [{100 * lo:.1f}, {100 * hi:.1f}]".replace("-", "−")


def tau_loss_block(studies: dict[str, pd.DataFrame]) -> str:
    """§9 in loss terms, from the one-pass studies' runs: how wide the near-best τ is at each size
    (both studies) and what each candidate slope of τ* in tokens per parameter costs in loss."""
    spans, slopes, summary, coarse = [], [], [], []
    for name, runs in studies.items():
        profiles = tau_profiles(runs)
        spans += tau_span_rows(name, runs, profiles)
        rows, summ = tau_slope_rows(name, profiles) if ONEPASS_STUDIES[name][0] == "TPP" else ([], [])
        slopes += rows
        if summ:  # the same on the coarse grid alone: every setting at every coarse lr, on the same seeds
            on_grid = tau_profiles(runs[runs["run_id"].isin(coarse_ids(HERE / name))])
            rules = sorted({pr.rule for pr in on_grid})
            coarse += [f"| `{name}` | `{r}` {row}" for r, row in zip(rules, tau_slope_rows(name, on_grid)[1])]
        for rule in sorted({pr.rule for pr in profiles}):
            mine = [pr for pr in profiles if pr.rule == rule]
            widths = [10 ** (pr.log_tau[hi] - pr.log_tau[lo]) for pr in mine for _, lo, hi in [_near_span(pr)]]
            noise = noise_pct(float(np.nanmean([pr.noise for pr in mine])))
            slope = summ.pop(0) if summ else "| – | – | – | – |"
            summary.append(f"| `{name}` | `{rule}` | ×{min(widths):.3g} | ×{max(widths):.3g} | {noise} {slope}")
    return "\n".join(
        [
            r"| study | recipe | size | tokens per parameter | τ\* | its loss "
            f"| τ within {100 * TAU_NEAR:g} % of the best "
            r"| ×span | seed noise of the best (s.e.m.) | lrs trained at setting\* | lrs trained at each neighbouring "
            r"setting | neighbours trained at lr\* |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *spans,
            "",
            r"| study | recipe | τ\* ∝ TPP^slope from the middle size's τ\* | loss cost, mean over the other sizes "
            "[90% CI] | the worst size's cost [90% CI] | over the least-cost slope [90% CI] | told apart from it |",
            "|---|---|---|---|---|---|---|",
            *slopes,
            "",
            f"| study | recipe | ×span within {100 * TAU_NEAR:g} %, narrowest | widest "
            "| seed noise of the optima (mean s.e.m.) | least-cost slope in TPP | lowest slope not told apart "
            "| highest slope not told apart | slopes not told apart |",
            "|---|---|---|---|---|---|---|---|---|",
            *summary,
            "",
            "| study | recipe | on the coarse grid alone: least-cost slope | lowest not told apart "
            "| highest not told apart | how many not told apart |",
            "|---|---|---|---|---|---|",
            *coarse,
        ]
    )


def onepass_scope_table(points: dict[str, pd.DataFrame], studies: dict[str, pd.DataFrame]) -> str:
    """The range of τ* over the one-pass optima (those inside what was trained through them, those
    at an edge, and those inside at the width study's tokens per parameter), and each study's
    parameters and steps."""
    pts = pd.concat([d.assign(study=n) for n, d in points.items()], ignore_index=True)
    width_tpp = float(points["onepass_width"]["tpp"].median()) if "onepass_width" in points else math.nan
    inside = pts[~pts["edge"]]
    groups = [
        ("inside what was trained through them, both studies", inside),
        ("at an edge of what was trained through them (a bound)", pts[pts["edge"]]),
        ("inside, at the width study's tokens per parameter", inside[np.isclose(inside["tpp"], width_tpp, rtol=0.05)]),
    ]
    lines = [r"| optima | how many | lowest τ\* | highest τ\* |", "|---|---|---|---|"]
    for label, g in groups:
        lo, hi = (f"{g['tau'].min():.3g}", f"{g['tau'].max():.3g}") if len(g) else ("–", "–")
        lines.append(f"| {label} | {len(g)} | {lo} | {hi} |")
    lines += ["", "| study | parameters | steps |", "|---|---|---|"]
    every = []
    for name, runs in studies.items():
        steps = np.ceil(runs["n_train"] / runs["batch_size"])
        every.append((runs["n_params"], steps))
        lines.append(f"| `{name}` | {runs['n_params'].min():,} – {runs['n_params'].max():,} "
                     f"| {int(steps.min())} – {int(steps.max())} |")  # fmt: skip
    n_params, steps = pd.concat([e[0] for e in every]), pd.concat([e[1] for e in every])
    lines.append(f"| both | {n_params.min():,} – {n_params.max():,} | {int(steps.min())} – {int(steps.max())} |")
    return "\n".join(lines)


# tunes (§10): each climbed to the largest size of a joint sweep, the reference there: the four
# joint studies and the two held-out targets (swept at the target only to check the tune)
TUNE_TARGETS = {
    "joint_width": 512,
    "joint_digits": 512,
    "joint_data": 4000,
    "joint_shakespeare": 64,
    "joint_width_1024": 1024,
    "joint_shakespeare_128": 128,
}
# the budgets tuned at (a fraction of one recipe's sweep at the target) -> the directories' suffix:
# tune_<sweep><suffix> (the ladder), tune_tpe_… and tune_hb_… (Optuna at the ladder's compute)
TUNE_BUDGETS = {0.1: "", 0.25: "_b25"}
# issue 34's one-pass targets, measured for their noise before any tune (their reference sweeps)
ONEPASS_TUNE_TARGETS = {
    "onepass_markovmlp_64": 64,
    "onepass_markovmlp_128": 128,
    "onepass_markov200_16": 16,
    "onepass_markov200_32": 32,
}
NOISE_TARGETS = {"onepass_markov_32": 32, **ONEPASS_TUNE_TARGETS}
# the six published targets re-tuned beside fairly matched peers (issue 34): every method's directory
# and the sweep's best on fresh seeds (FAIR / <sweep> / rescore) under FAIR, the same names as above
FAIR = HERE / "fair"


def load(d: Path) -> pd.DataFrame | None:
    return load_runs(d) if (d / "runs.parquet").exists() or (d / "runs.sqlite").exists() else None


def exported(d: Path) -> pd.DataFrame | None:
    """A study's committed export only (its store may be a run still in progress)."""
    return pd.read_parquet(d / "runs.parquet") if (d / "runs.parquet").exists() else None


def fmt(x: float, digits: int = 2) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{digits}f}".replace("-", "−")


def verdict_rows(name: str, label: str, a: StudyAnalysis) -> list[dict]:
    optima = a.optima_frame()
    rows = []
    for _, t in a.table().iterrows():
        o = optima[optima["rule"] == t["rule"]].sort_values("size")
        edge = o["at_edge"].any()
        bound = "≥ " if edge else ""
        rows.append(
            dict(
                study=name,
                label=label,
                rule=t["rule"],
                sizes=f"{o['size'].iloc[0]} → {o['size'].iloc[-1]}",
                drift="at grid edge" if edge else f"{fmt(t['slope'])} [{fmt(t['slope_lo'])}, {fmt(t['slope_hi'])}]",
                fold=f"×{t['fold_change']:.3g}",
                regret=t["regret"],
                regret_lo=t["regret_lo"],
                regret_hi=t["regret_hi"],
                noise=t["noise"],
                edge=edge,
                regret_txt=regret_text(t, bound),
                detectable=f"{100 * t['detectable']:.1f} %" if np.isfinite(t["detectable"]) else "–",
                resolution=t["resolution"],
                best=f"{o['best_loss'].iloc[-1]:.3f}",
                verdict=t["verdict"],
            )
        )
    return rows


def regret_text(t: pd.Series, bound: str) -> str:
    """The measured regret with its whole-pipeline interval, or why there is none; each end the
    median of the bootstrap seeds' panel, to the digit its Monte Carlo margin leaves standing."""
    if not np.isfinite(t["regret"]):
        return "∞ (diverges or does not learn)" if t["regret"] == np.inf else str(t["regret_reason"] or "–")
    lo, hi = (interval_end_percent(t[k], t[f"{k}_mc"]) for k in ("regret_lo", "regret_hi"))
    return f"{bound}{100 * t['regret']:.1f} % [{lo}, {hi}]"


def study_table(rows: list[dict]) -> str:
    out = [
        "| rule | sizes | drift of the best grid point [90% CI] | fold change | transfer regret, measured "
        "[90% CI] | detectable | resolution | best loss at the largest size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["regret"], r["rule"])):
        out.append(
            f"| `{r['rule']}` | {r['sizes']} | {r['drift']} | {r['fold']} | {r['regret_txt']} | {r['detectable']} "
            f"| {r['resolution']} | {r['best']} |"
        )
    return "\n".join(out)


def _optimum_text(a: StudyAnalysis, rule: str) -> str:
    """The best trained setting at the smallest and the largest size (≥/≤ where on the grid's edge)."""
    o = a.optima_frame()
    o = o[o["rule"] == rule].sort_values("size")
    if o.empty:
        return "–"
    ends = [o.iloc[0], o.iloc[-1]]
    return " → ".join(f"{'edge ' if r['at_edge'] else ''}{r['setting_star']:.3g}" for r in ends)


def schedule_table(constant: StudyAnalysis, scheduled: StudyAnalysis) -> str:
    """Each rule under a constant lr and under a schedule, side by side: the optimum at the two
    ends, its drift, the measured transfer regret and what the design could detect."""
    by_rule = {r["rule"]: r for r in verdict_rows("", "", constant)}
    out = [
        "| rule | best setting, smallest → largest: constant · scheduled | drift [90% CI]: constant · scheduled "
        "| transfer regret [90% CI]: constant · scheduled | detectable: constant · scheduled | verdict changes? |",
        "|---|---|---|---|---|---|",
    ]
    for s in sorted(verdict_rows("", "", scheduled), key=lambda r: (r["regret"], r["rule"])):
        c = by_rule.get(s["rule"])
        if c is None:
            continue
        change = "same" if c["resolution"] == s["resolution"] else f"{c['resolution']} → {s['resolution']}"
        out.append(
            f"| `{s['rule']}` | {_optimum_text(constant, s['rule'])} · {_optimum_text(scheduled, s['rule'])} "
            f"| {c['drift']} · {s['drift']} | {c['regret_txt']} · {s['regret_txt']} "
            f"| {c['detectable']} · {s['detectable']} | {change} |"
        )
    return "\n".join(out)


def schedule_runs_table() -> str:
    """§8's reruns under a schedule: per study its constant-lr twin, the schedule, its mean lr
    multiplier over a run (the exact mean over each run's steps, the range over the study's step
    counts), its runs on the coarse grid and refined, the refinement's compute (coarse and refined
    core-s over the coarse grid's, as `refined_row`), the twin's runs and the commands that
    regenerate it (refined with extra seeds at the ends only, except the joint studies)."""
    out = [
        "| study | twin | schedule | mean lr multiplier | runs: coarse + refined | compute × the coarse grid's "
        "| twin's runs | regenerate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reruns = {name: twin for name, (twin, _) in SCHEDULE_STUDIES.items()} | SCHEDULE_JOINT_STUDIES
    for name, twin in reruns.items():
        runs, twin_runs = exported(HERE / name), load(HERE / twin)
        if runs is None or twin_runs is None:
            continue
        plan = StudyPlan.from_stored(json.loads((HERE / name / "plan.json").read_text()))
        steps = {
            math.ceil(n / b) * e for n, b, e in runs[["n_train", "batch_size", "epochs"]].drop_duplicates().to_numpy()
        }
        mean = sorted({f"{plan.lr_schedule.mean_multiplier(int(t)):.2f}" for t in steps})
        core, is_coarse = core_seconds(runs), runs["run_id"].isin(coarse_ids(HERE / name))
        compute = float(core.sum()) / float(core[is_coarse].sum())
        seeds_at = "" if name in SCHEDULE_JOINT_STUDIES else " --seeds-at ends"
        out.append(
            f"| `{name}` | `{twin}` | {plan.lr_schedule.describe()} | {'–'.join(mean)} "
            f"| {int(is_coarse.sum())} + {int((~is_coarse).sum())} | ×{compute:.2f} | {len(twin_runs)} "
            f"| `wdscale study run --preset {name} --out docs/findings/{name} && wdscale study refine "
            f"docs/findings/{name}{seeds_at} && wdscale study report docs/findings/{name}` |"
        )
    return "\n".join(out)


def _point_losses(runs: pd.DataFrame, size: int) -> dict[tuple, np.ndarray]:
    """(rule, lr, setting) → the seeds' losses at `size` (+inf: diverged or did not learn)."""
    at = runs[(runs["size"] == size) & (runs["status"] != "failed")]
    at = at.assign(loss=run_losses(at))
    return {k: g["loss"].to_numpy() for k, g in at.groupby(["rule", "lr", "setting"])}


def _target_noise(sweep: pd.DataFrame, target: int, sweep_dir: Path | None = None) -> float:
    """The relative seed-to-seed s.d. of the loss at the target, pooled over the sweep's points
    there within 10 % of its best (log losses; every seed finite), as `tune` pools it. A sweep of
    one seed a point measures none: then its best's runs on fresh seeds (`sweep_dir`/rescore)."""
    losses = _point_losses(sweep, target)
    best = min(v.mean() for v in losses.values())
    logs = [np.log(v) for v in losses.values() if len(v) > 1 and np.isfinite(v).all() and v.mean() <= 1.1 * best]
    if not logs and sweep_dir is not None:
        fresh = _rescored(sweep_dir, target, min(losses, key=lambda k: losses[k].mean())).to_numpy()
        logs = [np.log(fresh)] if len(fresh) > 1 and np.isfinite(fresh).all() else []
    dof = sum(len(v) - 1 for v in logs)
    return math.sqrt(sum(float(((v - v.mean()) ** 2).sum()) for v in logs) / dof) if dof else math.nan


_BEST_DRAWS: dict[tuple, tuple[pd.DataFrame, np.ndarray]] = {}  # the frame held: its id stays its own


def _best_draws(sweep: pd.DataFrame, target: int, n_boot: int, stream: int) -> np.ndarray:
    """The sweep's best seed-mean loss at the target in each of n_boot resamples of its seeds (the
    best re-chosen each time; points with a diverged seed left out) on bootstrap stream `stream`,
    computed once per sweep and stream."""
    key = (id(sweep), target, n_boot, stream)
    if key not in _BEST_DRAWS:
        rng = np.random.default_rng([1, stream])
        means = [
            rng.choice(v, (n_boot, len(v))).mean(axis=1)
            for v in _point_losses(sweep, target).values()
            if np.isfinite(v).all()
        ]
        _BEST_DRAWS[key] = (sweep, np.min(means, axis=0))
    return _BEST_DRAWS[key][1]


STREAMS = range(STABILITY_SEEDS)  # the bootstrap streams every interval end is the median over


def _stream_ends(draws: list[np.ndarray]) -> tuple[float, float, float, float]:
    """(lo, hi, lo_mc, hi_mc): the 90 % interval's ends as the median over the bootstrap streams'
    draws (one array per stream, STABILITY_SEEDS of them), and their Monte Carlo margins (half
    the ends' range)."""
    ends = [np.quantile(d, [0.05, 0.95]) for d in draws]
    (lo, hi), (lo_mc, hi_mc) = np.median(ends, axis=0), np.ptp(ends, axis=0) / 2
    return float(lo), float(hi), float(lo_mc), float(hi_mc)


def search_gap(
    runs: pd.DataFrame, sweep: pd.DataFrame, target: int, n_boot: int = 4000, seed: int = 0, noise: float | None = None
) -> dict:
    """A search's pick at the target (its lowest seed-mean loss there) against the sweep's best
    over every recipe: the gap and its 90 % interval (the sweep's seeds resampled, its best
    re-chosen each time; the pick's own seeds resampled where it has two or more, else its loss
    moved by the target's pooled seed noise; each end the median over STABILITY_SEEDS bootstrap
    streams from `seed` on, lo_mc / hi_mc its Monte Carlo margin, half the ends' range over them), and the gap
    2.8 standard errors wide (what these seeds detect at 80 % power)."""
    picks = _point_losses(runs, target)
    means = {k: v.mean() for k, v in picks.items()}
    pick = min(means, key=means.get)
    ref = _point_losses(sweep, target)
    ref_means = {k: v.mean() for k, v in ref.items()}
    best = min(ref_means, key=ref_means.get)
    noise = _target_noise(sweep, target) if noise is None else noise
    mine_seeds = picks[pick]
    draws = []
    for stream in range(seed, seed + STABILITY_SEEDS):
        rng = np.random.default_rng(stream)
        if len(mine_seeds) > 1:
            mine = rng.choice(mine_seeds, (n_boot, len(mine_seeds))).mean(axis=1)
        else:
            mine = mine_seeds[0] * np.exp(rng.normal(0.0, noise, n_boot))
        draws.append(mine / _best_draws(sweep, target, n_boot, stream) - 1)
    lo, hi, lo_mc, hi_mc = _stream_ends(draws)
    return dict(
        pick=pick,
        seeds=len(mine_seeds),
        loss=means[pick],
        best=best,
        best_loss=ref_means[best],
        gap=means[pick] / ref_means[best] - 1,
        lo=lo,
        hi=hi,
        lo_mc=lo_mc,
        hi_mc=hi_mc,
        detectable=2.8 * noise * math.sqrt(1 / len(mine_seeds) + 1 / len(ref[best])),
    )


def _completed(d: Path, runs: pd.DataFrame, sampler_seed: int) -> pd.DataFrame:
    """One Optuna search's runs without the trials its pruner stopped (not an answer it could give)."""
    trials = pd.read_csv(d / TRIALS_FILE)
    trials = trials[trials["sampler_seed"] == sampler_seed]

    def key(rule: str, lr: float, setting: float) -> tuple:
        return rule, float(f"{lr:.4g}"), float(f"{setting:.4g}")

    done = {key(*t) for t in trials.loc[trials["state"] == "complete", ["rule", "lr", "setting"]].to_numpy()}
    return runs[[key(*r) in done for r in runs[["rule", "lr", "setting"]].to_numpy()]]


def recipe_sweep(ladder_runs: pd.DataFrame, sweep: pd.DataFrame, target: int) -> float:
    """One recipe's sweep at the target in parameters × samples: the coarse grid's points (the
    ladder's bottom grid, the joint study's) once each, at the measured cost of a target run."""
    bottom = ladder_runs[ladder_runs["size"] == ladder_runs["size"].min()]
    n_points = bottom.groupby("rule")[["lr", "setting"]].apply(lambda g: len(g.drop_duplicates())).median()
    return float(n_points * params_samples(sweep[sweep["size"] == target]).median())


def optuna_gaps(d: Path, sweep: pd.DataFrame, target: int) -> list[tuple[dict, int, float]]:
    """Per search (sampler seed) in an Optuna directory: its pick's gap, its trials, its counted
    compute; [] where it was not run."""
    runs = exported(d)
    if runs is None:
        return []
    trials = pd.read_csv(d / TRIALS_FILE)
    seeds = sorted(trials["sampler_seed"].unique())
    n_trials = trials["sampler_seed"].value_counts()
    return [(search_gap(_completed(d, runs, k), sweep, target), int(n_trials[k]), counted_work(d, k)) for k in seeds]


def optuna_text(d: Path, sweep: pd.DataFrame, target: int, one_recipe: float) -> str:
    """An Optuna baseline's gap: one search's with its interval; several searches' median gap and
    the range of their gaps (each search one draw of the sampler), trials and compute per search."""
    found = optuna_gaps(d, sweep, target)
    if not found:
        return "not run"
    gaps = np.array([g["gap"] for g, _, _ in found])
    trials = int(np.median([n for _, n, _ in found]))
    fraction = float(np.median([w for _, _, w in found])) / one_recipe
    if len(found) == 1:
        g = found[0][0]
        return f"{pct(*(g[k] for k in GAP))} ({trials} trials, {fraction:.2f})"
    return (
        f"median {100 * np.median(gaps):.1f} % of {len(found)} searches (range {100 * gaps.min():.1f} to "
        f"{100 * gaps.max():.1f}; {trials} trials, {fraction:.2f} each)"
    )


# issue 34's low-noise targets (§10), two families on text from a Markov chain, each trained once
# over it: a one-hot MLP at 20 tokens per parameter (dev width 64, held-out 128) and a transformer
# at 200 (dev width 16, held-out 32); each held-out target tuned once, with the method frozen.
# Beside it its peers at the target at its compute (`wdscale tune --search`), every pick re-trained
# on fresh seeds (the search's `rescore/`), as is the sweep's own best (its `rescore/`, by
# rescore_best.py): each pick is compared with the best seed by seed (ONEPASS_TUNE_TARGETS above)
TUNE_METHODS = {  # a directory's prefix after `tune_` -> the method in words
    "": "the ladder",
    "mutransfer_": "μTransfer (μP's bottom grid, its best run once at the target)",
    "laws_": "laws (the lower rungs' optima on a line, run once at the target)",
    "tpe_": "TPE at the target alone, at the climb's core-seconds",
    "hb_": "TPE + Hyperband (its pruner over epochs, or 9 evaluations of a one-pass run), at the climb's core-seconds",
}


def _rescored(d: Path, target: int, point: tuple | None = None) -> pd.Series:
    """seed -> loss of the fresh-seed runs in d/rescore at the target (at `point`, where given)."""
    runs = exported(d / "rescore")
    if runs is None:
        return pd.Series(dtype=float)
    at = runs[(runs["size"] == target) & (runs["status"] != "failed")]
    if point is not None:
        rule, lr, setting = point
        near = np.isclose(at["lr"], lr, rtol=1e-4) & np.isclose(at["setting"], setting, rtol=1e-4)
        at = at[(at["rule"] == rule).to_numpy() & near]
    return pd.Series(run_losses(at), index=at["seed"].to_numpy()).groupby(level=0).mean()


def fresh_gap(pick: pd.Series, best: pd.Series) -> dict:
    """A pick against the sweep's best, both trained on the same fresh seeds (seed -> loss): the gap
    of their means over the common seeds, the 90 % t-interval of the mean per-seed log ratio (the
    same seed is the same initialisation and data order, so the pair's difference is far less
    noisy than two means), and the gap 2.8 standard errors wide (detectable at 80 % power)."""
    common = sorted(set(pick.index) & set(best.index))
    a, b = pick.loc[common].to_numpy(float), best.loc[common].to_numpy(float)
    out = dict(n=len(common), gap=math.nan, lo=math.nan, hi=math.nan, detectable=math.nan)
    if not common or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return {**out, "gap": math.inf if common else math.nan}
    d = np.log(a / b)
    out["gap"] = float(a.mean() / b.mean() - 1)
    if len(d) > 1:
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        half = float(stats.t.ppf(0.95, len(d) - 1)) * se
        out.update(lo=math.expm1(d.mean() - half), hi=math.expm1(d.mean() + half), detectable=2.8 * se)
    return out


def _fresh_text(g: dict) -> str:
    ci = f" [{100 * g['lo']:.2f}, {100 * g['hi']:.2f}]" if np.isfinite(g["lo"]) else ""
    return "not re-trained" if not g["n"] else f"{100 * g['gap']:.2f} %{ci} ({g['n']} seeds)".replace("-", "−")


def _target_run_core_s(at: pd.DataFrame, sweep_dir: Path) -> float:
    """One run's cost at the target: the median CPU seconds of the sweep's best re-trained on fresh
    seeds where those were measured (what a busy machine does not inflate), else the median core-
    seconds of the sweep's runs there (wall time × threads, under whatever load they ran)."""
    fresh = exported(sweep_dir / "rescore")
    if fresh is not None and "cpu_time" in fresh and fresh["cpu_time"].notna().any():
        return float(fresh["cpu_time"].dropna().median())
    return float(core_seconds(at).median())


METHOD_HEADER = [  # the table of every method at a target (onepass_tune_rows)
    "| sweep | target | one run's seed noise σ | method | pick (seeds) "
    "| core-s (fraction of one recipe's sweep) | parameters × samples (fraction) "
    "| gap on its own seeds | gap on fresh seeds [90% CI] | detectable |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def onepass_tune_rows(
    sweep_name: str, sweep: pd.DataFrame, target: int, root: Path = HERE, points: list[dict] | None = None
) -> list[str]:
    """Per method at the target: its pick, its compute (measured core-seconds and parameters ×
    samples, each over one recipe's sweep at the target), its gap to the sweep's best on its own
    seeds (as §10's other table) and on fresh seeds (`fresh_gap`; TPE: the median over its
    searches, and their range). The methods' directories and the sweep's fresh seeds lie under
    `root` (`fair/` for the six published targets, whose first tunes stay where they were). Each
    pick's (core-s fraction, fresh-seed gap) joins `points`, for `method_figure`."""
    points = [] if points is None else points
    losses = _point_losses(sweep, target)
    best = _rescored(root / sweep_name, target, min(losses, key=lambda k: losses[k].mean()))
    at = sweep[(sweep["size"] == target) & (sweep["status"] != "failed")]
    ladder = exported(root / f"tune_{sweep_name}")
    coarse = ladder[ladder["size"] == ladder["size"].min()] if ladder is not None else at  # its bottom grid
    n_points = coarse.groupby("rule")[["lr", "setting"]].apply(lambda g: len(g.drop_duplicates())).median()
    one_core_s = float(n_points * _target_run_core_s(at, root / sweep_name))  # one recipe's coarse grid
    one_work = float(n_points * params_samples(at).median())
    noise = _target_noise(sweep, target, root / sweep_name)
    rows = []
    for prefix, method in TUNE_METHODS.items():
        d = root / f"tune_{prefix}{sweep_name}"
        runs = exported(d)
        if runs is None:
            continue
        if prefix in ("tpe_", "hb_"):
            trials = pd.read_csv(d / TRIALS_FILE)
            searches = sorted(trials["sampler_seed"].unique())
            own = [search_gap(_completed(d, runs, k), sweep, target, noise=noise) for k in searches]
            fresh = [fresh_gap(_rescored(d, target, g["pick"]), best) for g in own]
            core = float(trials.groupby("sampler_seed")["core_s"].sum().median())  # as each search counted it
            work = float(np.median([counted_work(d, k) for k in searches]))
            gaps = np.array([f["gap"] for f in fresh])
            own_gaps = np.array([g["gap"] for g in own])
            pick = f"{len(searches)} searches, {int(trials['sampler_seed'].value_counts().median())} trials each"
            own_text = f"median {100 * np.median(own_gaps):.2f} %"
            fresh_text = (
                f"median {100 * np.median(gaps):.2f} % (range {100 * gaps.min():.2f} to {100 * gaps.max():.2f})"
            ).replace("-", "−")
            detectable = float(np.nanmedian([f["detectable"] for f in fresh]))
            per_search = trials.groupby("sampler_seed")["core_s"].sum()
            points += [
                dict(
                    target=sweep_name,
                    method=prefix,
                    fraction=per_search[k] / one_core_s,
                    gap=f["gap"],
                    lo=math.nan,
                    hi=math.nan,
                )  # fmt: skip
                for k, f in zip(searches, fresh)
            ]
        else:
            g = search_gap(runs, sweep, target, noise=noise)
            f = fresh_gap(_rescored(d, target, g["pick"]), best)
            core, work = float(core_seconds(runs).sum()), float(params_samples(runs).sum())
            rule, lr, setting = g["pick"]
            pick = f"`{rule}`, lr {lr:.3g}, λ {setting:.3g} ({g['seeds']})"
            own_text = pct(*(g[k] for k in GAP))
            fresh_text, detectable = _fresh_text(f), f["detectable"]
            points.append(dict(target=sweep_name, method=prefix, fraction=core / one_core_s, gap=f["gap"], lo=f["lo"],
                               hi=f["hi"]))  # fmt: skip
        rows.append(
            f"| `{sweep_name}` | {target} | {100 * noise:.2f} % | {method} | {pick} "
            f"| {core:.0f} ({core / one_core_s:.2f}) | {work / one_work:.2f} | {own_text} | {fresh_text} "
            f"| {fmt(100 * detectable)} % |"
        )
    return rows


def tune_rows(sweep_name: str, sweep: pd.DataFrame, target: int) -> list[str]:
    """Per budget tuned at: the ladder's pick and gap at the target, its compute, and Optuna's TPE
    and TPE + Hyperband run for real at the ladder's compute."""
    rows = []
    for budget, suffix in TUNE_BUDGETS.items():
        ladder_runs = exported(HERE / f"tune_{sweep_name}{suffix}")
        if ladder_runs is None:
            continue
        g = search_gap(ladder_runs, sweep, target)
        one_recipe = recipe_sweep(ladder_runs, sweep, target)
        fraction = float(params_samples(ladder_runs).sum()) / one_recipe
        optuna = [optuna_text(HERE / f"tune_{kind}_{sweep_name}{suffix}", sweep, target, one_recipe)
                  for kind in ("tpe", "hb")]  # fmt: skip
        rule, lr, setting = g["pick"]
        b_rule, b_lr, b_setting = g["best"]
        rows.append(
            f"| `{sweep_name}` | {target} | {budget:g} of a sweep "
            f"| `{rule}`, lr {lr:.3g}, λ {setting:.3g} ({g['seeds']}) | "
            f"{g['loss']:.4f} | {g['best_loss']:.4f} (`{b_rule}`, lr {b_lr:.3g}, λ {b_setting:.3g}) | "
            f"{pct(*(g[k] for k in GAP))} | {100 * g['detectable']:.1f} % | {fraction:.2f} "
            f"| {int((ladder_runs['size'] == target).sum())} | "
            f"{optuna[0]} | {optuna[1]} |"
        )
    return rows


def tune_noise_table() -> str:
    """§10's noise floor, per tuned target: one run's relative seed-to-seed s.d. of the loss there
    (`_target_noise`, as `tune` pools it), the sweep's points at the target and their seeds, the
    largest lr it trained there, and the seeds a side that would detect a 1 % gap at 80 % power
    (2 × (2.8 σ / 1 %)², a two-sample difference of means)."""
    out = [
        "| sweep | target | one run's seed noise σ | points at the target | seeds a point | largest lr trained there "
        "| seeds a side to detect 1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, target in {**TUNE_TARGETS, **NOISE_TARGETS}.items():
        sweep = load(HERE / name)
        if sweep is None:
            continue
        sigma, points = _target_noise(sweep, target, HERE / name), _point_losses(sweep, target)
        seeds = sorted({len(v) for v in points.values()})
        spread = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
        out.append(
            f"| `{name}` | {target} | {100 * sigma:.1f} % | {len(points)} | {spread} "
            f"| {sweep.loc[sweep['size'] == target, 'lr'].max():.3g} | {math.ceil(2 * (2.8 * sigma / 0.01) ** 2)} |"
        )
    return "\n".join(out)


def cost_table(costs: list[SearchCost]) -> str:
    out = [
        "| rule | proxy → target | settings | loss: transferred | loss: sweep at target | regret "
        "| core-s: transfer / sweep | compute saved (params × samples) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(costs, key=lambda c: c.regret):
        out.append(
            f"| `{c.rule}` | {c.proxy_size} → {c.target_size} | {c.n_settings} | {c.transfer_loss:.3f} "
            f"| {c.sweep_loss:.3f} | {100 * c.regret:.1f} % | {c.transfer_seconds:.0f} / {c.sweep_seconds:.0f} "
            f"| ×{c.params_saved:.1f} |"
        )
    return "\n".join(out)


def vectors_table(without: StudyAnalysis, with_: StudyAnalysis, rule: str = "mup") -> str:
    """λ* and best loss per width for one rule, vectors (biases, norm gains) undecayed vs decayed."""
    a, b = (o[o["rule"] == rule].set_index("size") for o in (without.optima_frame(), with_.optima_frame()))
    out = [
        "| width | λ\\* vectors undecayed | λ\\* vectors decayed | best loss undecayed | best loss decayed |",
        "|---|---|---|---|---|",
    ]
    for size in sorted(set(a.index) & set(b.index)):
        out.append(
            f"| {size} | {a.loc[size, 'setting_star']:.3g} | {b.loc[size, 'setting_star']:.3g} "
            f"| {a.loc[size, 'best_loss']:.3f} | {b.loc[size, 'best_loss']:.3f} |"
        )
    return "\n".join(out)


def holdout_table(rows: list[tuple[str, Holdout]]) -> str:
    """Each rule's law refitted without the largest size, against what was measured there."""
    out = [
        "| study | rule | held out (fitted on) | predicted optimum [90% interval] | measured optimum "
        "| regret at the nearest trained setting |",
        "|---|---|---|---|---|---|",
    ]
    for study, h in rows:
        sym = "τ\\*" if h.setting_name == "tau" else "λ\\*"
        fitted = ", ".join(str(s) for s in h.fitted_sizes)
        interval = f"[{h.lo:.3g}, {h.hi:.3g}]" if np.isfinite(h.lo) and np.isfinite(h.hi) else "[–]"
        regret = f"{100 * h.regret:.1f} %" if np.isfinite(h.regret) else "–"
        out.append(
            f"| `{study}` | `{h.rule}` | {h.held_out_size} ({fitted}) | {sym} {h.predicted:.3g} {interval} "
            f"| {h.measured:.3g} | {regret} |"
        )
    return "\n".join(out)


def holdout_summary(rows: list[tuple[str, Holdout]]) -> str:
    """§7's count: how far the trained setting nearest each prediction was from the best, and how
    often the measured optimum fell inside the predicted 90 % interval."""
    regrets = np.array([h.regret for _, h in rows], float)
    inside = sum(bool(h.lo <= h.measured <= h.hi) for _, h in rows if np.isfinite(h.lo) and np.isfinite(h.hi))
    measured = regrets[np.isfinite(regrets)]
    return (
        f"Of {len(rows)} rule × study hold-outs, the trained setting nearest the prediction lost ≤ 1 % in "
        f"{int((measured <= 0.01).sum())} and ≤ 5 % in {int((measured <= 0.05).sum())} (median "
        f"{100 * np.median(measured):.1f} %; {len(rows) - len(measured)} without a measured regret); the measured "
        f"optimum fell inside the predicted 90 % interval in {inside} of {len(rows)}."
    )


GAP = ("gap", "lo", "hi", "lo_mc", "hi_mc")  # a gap, its interval's ends and their Monte Carlo margins


def pct(x: float, lo: float = np.nan, hi: float = np.nan, lo_mc: float = np.nan, hi_mc: float = np.nan) -> str:
    """A gap in percent with its interval, each end to the digit its Monte Carlo margin (lo_mc,
    hi_mc: half its range over the bootstrap streams; NaN: one decimal) leaves standing."""
    if x == np.inf:
        return "∞"
    if not np.isfinite(x):
        return "not measured"
    ends = (interval_end_text(lo, lo_mc, 1, 100, lower=True), interval_end_text(hi, hi_mc, 1, 100))
    ci = f" [{ends[0]}, {ends[1]}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{100 * x:.1f} %{ci}".replace("-", "−")


def joint_table(j: JointAnalysis) -> str:
    """Per recipe: the joint optimum at the smallest and largest size, its drift in lr, λ and η·λ,
    the λ-only view's drift, and the measured gaps at the largest size."""
    o = j.optima_frame()
    c = j.choices_frame()
    sizes = sorted(o["size"].unique())
    out = [
        rf"| recipe | (lr\*, setting\*) at {sizes[0]} → {sizes[-1]} | slope of lr\* | slope of setting\* "
        r"| slope of η\*·λ\* | slope of λ\* at the fixed lr | recipe's best at the target, gap to the best "
        f"| tuned jointly at {sizes[0]}, carried over | λ only at the fixed lr, carried over |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def tri(d: JointDrift, slope: str) -> str:  # each end to the digit its Monte Carlo margin leaves
        t, margins = getattr(d, slope), getattr(d, f"{slope}_mc")
        ends = ", ".join(interval_end_text(e, m, 2, lower=k == 0) for k, (e, m) in enumerate(zip(t[1:], margins)))
        return "–" if not np.isfinite(t[0]) else f"{fmt(t[0])} [{ends}]"

    def gap(strategy: str, rule: str) -> str:
        r = c[(c["strategy"] == strategy) & (c["rule"] == rule) & (c["proxy_size"] == sizes[0])]
        return pct(*r.iloc[0][list(GAP)]) if len(r) else "–"

    for d in j.drifts:
        a = o[(o["rule"] == d.rule) & (o["size"] == sizes[0])].iloc[0]
        b = o[(o["rule"] == d.rule) & (o["size"] == sizes[-1])].iloc[0]
        # an optimum that is the last lr trained at its setting, or the last setting at its lr: a bound
        edge = {k: " at edge" if r["lr_edge"] or r["setting_edge"] else "" for k, r in (("a", a), ("b", b))}
        own = c[(c["strategy"] == "sweep at target") & (c["rule"] == d.rule)].iloc[0]
        out.append(
            f"| `{d.rule}` | ({a['lr']:.3g}, {a['setting']:.3g}){edge['a']} → ({b['lr']:.3g}, {b['setting']:.3g})"
            f"{edge['b']} "
            f"| {tri(d, 'lr_slope')} | {tri(d, 'setting_slope')} | {tri(d, 'product_slope')} "
            f"| {tri(d, 'fixed_lr_setting_slope')} "
            f"| {b['loss']:.3f}, {pct(*own[list(GAP)])} "
            f"| {gap('transfer (lr and setting)', d.rule)} | {gap('transfer (setting only, fixed lr)', d.rule)} |"
        )
    return "\n".join(out)


def law_rows(name: str, runs: pd.DataFrame, target: int) -> list[str]:
    """Per recipe: the straight lines of log lr* and log setting* through the smaller sizes'
    optima, read at the target and trained there: the sweep's own runs at the trained point within
    half a grid step of the law's (both axes), or the runs of `tune_law_<name>` where the law left
    the sweep's grid (trained for this row alone); else the law is off the grid and says so."""
    optima = finite_optima(runs[runs["size"] < target], "val_loss")
    sizes = sorted(optima["size"].unique())
    extra = exported(HERE / f"tune_law_{name}")
    at = pd.concat([runs[runs["size"] == target], *([] if extra is None else [extra[extra["size"] == target]])])
    out = []
    for rule in sorted(optima["rule"].unique()):
        law = placed_point(optima, rule, sizes, target)
        if law is None:
            continue
        mine = at[at["rule"] == rule]
        points = mine[["lr", "setting"]].drop_duplicates().to_numpy(float)
        d = np.abs(np.log10(points / np.array(law)))
        near = points[(d <= 0.25 + 1e-6).all(axis=1)]  # half of the joint grids' half-decade step
        how = f"law from {', '.join(map(str, sizes))}, trained at the target"
        if not len(near):
            out.append(f"| {how} | `{rule}` | off the grid (lr {law[0]:.3g}, λ {law[1]:.3g}): not trained | | |")
            continue
        lr, setting = near[np.argmin(d[(d <= 0.25 + 1e-6).all(axis=1)].sum(axis=1))]
        point = mine[np.isclose(mine["lr"], lr) & np.isclose(mine["setting"], setting)]
        g = search_gap(point, runs, target)
        spent = pd.concat([runs[(runs["size"] < target) & (runs["rule"] == rule)], point])
        out.append(
            f"| {how} (lr {lr:.3g}, λ {setting:.3g}) | `{rule}` | {pct(*(g[k] for k in GAP))} "
            f"| {float(core_seconds(spent).sum()):.1f} | {float(params_samples(spent).sum()):.2g} |"
        )
    return out


def tune_frontier_rows(sweep_name: str, sweep: pd.DataFrame, target: int) -> list[str]:
    """The ladder of `wdscale tune` and Optuna run for real at its compute, as frontier rows."""
    out = []
    for budget, suffix in TUNE_BUDGETS.items():
        for kind, label in (("", "tune (ladder)"), ("tpe_", "TPE at target, run"), ("hb_", "TPE + Hyperband, run")):
            d = HERE / f"tune_{kind}{sweep_name}{suffix}"
            runs = exported(d)
            if runs is None:
                continue
            if kind:  # each search (sampler seed) is one draw: their median, as in §10's table
                found = optuna_gaps(d, sweep, target)
                gaps = [g["gap"] for g, _, _ in found]
                picks = sorted({g["pick"][0] for g, _, _ in found})
                gap = pct(float(np.median(gaps))) + (f" (median of {len(found)} searches)" if len(found) > 1 else "")
                work = float(np.median([w for _, _, w in found]))
                core_s = float(core_seconds(runs).sum()) / len(found)
                out.append(f"| {label} at budget {budget:g} | all → `{'`/`'.join(picks)}` | {gap} | {core_s:.1f} "
                           f"| {work:.2g} |")  # fmt: skip
                continue
            g = search_gap(runs, sweep, target)
            out.append(
                f"| {label} at budget {budget:g} | all → `{g['pick'][0]}` | {pct(*(g[k] for k in GAP))} "
                f"| {float(core_seconds(runs).sum()):.1f} | {float(params_samples(runs).sum()):.2g} |"
            )
    return out


def frontier_table(j: JointAnalysis, one_d: dict[str, float], measured: tuple[str, ...] = ()) -> str:
    """What each way of choosing the target's (lr, setting) lost there and cost, per recipe; with
    `measured`, rows of the ways trained at the target beyond the sweep (`law_rows`,
    `tune_frontier_rows`)."""
    c = j.choices_frame()
    sizes = sorted(j.optima_frame()["size"].unique())
    out = [
        "| way of choosing | recipe | gap to the target's best [90%] | tuning core-s | params × samples |",
        "|---|---|---|---|---|",
    ]
    order = ["sweep at target", "transfer (lr and setting)", "transfer (setting only, fixed lr)"]
    rows = c[c["strategy"].isin(order) | c["strategy"].str.startswith("TPE")]
    rows = rows[rows["proxy_size"].isna() | (rows["proxy_size"] == sizes[0])]
    for _, r in rows.iterrows():
        how = r["strategy"] if np.isnan(r["proxy_size"]) else f"{r['strategy']} from {int(r['proxy_size'])}"
        median = " (median of 10 sampler seeds)" if r["strategy"].startswith("TPE") else ""
        out.append(
            f"| {how}{median} | `{r['rule']}` | {pct(*r[list(GAP)])} | {r['core_s']:.1f} | {r['params_samples']:.2g} |"
        )
    out += list(measured)
    out.append("")
    if not np.isfinite(one_d["equivalent"]):  # a rerun under a schedule: no 1-D study to set it against
        out.append(f"Compute: the joint study (coarse grid and refinement) took {j.core_s:.0f} core-s.")
        return "\n".join(out)
    out.append(
        f"Compute: the joint study (coarse grid and refinement) took {j.core_s:.0f} core-s; the 1-D study of "
        f"the same sizes and rules in §1–2 ({one_d['runs']:.0f} runs: 3–4 settings per decade, 3 seeds) would "
        f"take {one_d['equivalent']:.0f} core-s at the joint study's measured cost per run and size "
        f"(×{j.core_s / one_d['equivalent']:.1f}); its own recorded time, under the earlier execution design "
        f"(timing-chosen batched paths), was {one_d['recorded']:.0f} core-s."
    )
    return "\n".join(out)


def one_d_compute(runs: pd.DataFrame, one_d: pd.DataFrame | None) -> dict[str, float]:
    """The 1-D study of the same question: its run count per (rule, size) at the joint study's sizes
    (a rule it lacks: its median count), costed at the joint study's mean core-s per run there."""
    if one_d is None:
        return {"runs": np.nan, "equivalent": np.nan, "recorded": np.nan}
    one_d = one_d[one_d["size"].isin(runs["size"].unique())]
    counts = one_d.groupby(["rule", "size"]).size()
    core = core_seconds(runs)
    per_run = runs.assign(core=core).groupby(["rule", "size"])["core"].mean()
    n = {k: float(counts.get(k, counts.median())) for k in per_run.index}
    same = one_d[one_d["rule"].isin(runs["rule"].unique())]
    return {
        "runs": sum(n.values()),
        "equivalent": float(sum(n[k] * per_run[k] for k in per_run.index)),
        "recorded": float(same["wall_time"].fillna(0).sum()),
    }


def joint_blocks(name: str, runs: pd.DataFrame, one_d: pd.DataFrame | None) -> tuple[dict[str, str], JointAnalysis]:
    plan = json.loads((HERE / name / "plan.json").read_text())
    j = analyze_joint(runs, base_lr=plan.get("lr"))
    if one_d is not None:  # its coarse grid: what a 1-D study of the question runs before any refinement
        one_d = one_d[one_d["run_id"].isin(coarse_ids(HERE / JOINT_STUDIES[name][1]))]
    measured = []
    if name in TUNE_TARGETS:  # the ways measured at the target beyond the sweep's own (§10)
        measured = law_rows(name, runs, TUNE_TARGETS[name]) + tune_frontier_rows(name, runs, TUNE_TARGETS[name])
    return {name: joint_table(j), f"{name}_frontier": frontier_table(j, one_d_compute(runs, one_d), tuple(measured))}, j


def coarse_ids(study_dir: Path) -> set[str]:
    """The run ids of a study's coarse grid (its plan without the refined points)."""
    plan = StudyPlan.from_stored(json.loads((study_dir / "plan.json").read_text()))
    return {c.run_id for c in make_runs(dataclasses.replace(plan, refined={}), get_task(plan.task))}


def refined_row(name: str, runs: pd.DataFrame, coarse: set[str]) -> str:
    """A study's coarse grid against what `wdscale study refine` added: runs and core-seconds."""
    core = core_seconds(runs)
    is_coarse = runs["run_id"].isin(coarse)
    c, r = float(core[is_coarse].sum()), float(core[~is_coarse].sum())
    return (
        f"| `{name}` | {int(is_coarse.sum())} | {int((~is_coarse).sum())} | {c:.0f} | {r:.0f} | ×{(c + r) / c:.2f} "
        f"| ×{len(runs) / is_coarse.sum():.2f} |"
    )


def designs_row(name: str, r: pd.DataFrame) -> str:
    """A refined study's cheaper designs replayed (`r`, its `design_replay`): each design's compute
    against the coarse grid's, and in how many rule series the regret's resolution and the drift's
    verdict are the ones the refinement as run reached."""
    cells = [
        f"×{g.compute.iloc[0]:.2f} ({int((g.same_regret & g.same_drift).sum())}/{len(g)})"
        for _, g in r.groupby("design", sort=False)
    ]
    return f"| `{name}` | " + " | ".join(cells) + " |"


# the refinement's goal: its compute within this factor of the coarse grid's
REFINE_GOAL = 1.5


def designs_summary(replays: dict[str, pd.DataFrame]) -> str:
    """The designs table read across studies, one line per design: its compute against the coarse
    grid's (least and most, and on how many studies within `REFINE_GOAL`), and in how many rule
    series both verdicts are the refinement's, naming the studies where one changed."""
    lines = []
    for design in DESIGNS:
        compute, kept, series, changed = [], 0, 0, []
        for name, r in replays.items():
            g = r[r["design"] == design]
            compute.append(float(g["compute"].iloc[0]))
            same = int((g["same_regret"] & g["same_drift"]).sum())
            kept, series = kept + same, series + len(g)
            if same < len(g):
                changed.append(f"`{name}` {len(g) - same}")
        within = sum(c <= REFINE_GOAL for c in compute)
        verdicts = "" if design == "as run" else (
            f"; both verdicts the refinement's in {kept} of the {series} rule series"
            + (f" (changed: {', '.join(changed)})" if changed else "")
        )  # fmt: skip
        lines.append(
            f"- *{design}*: ×{min(compute):.2f}–{max(compute):.2f} the coarse grid's compute, within "
            f"{REFINE_GOAL:g}× on {within} of the {len(compute)} studies{verdicts}."
        )
    return "\n".join(lines)


def overview_row(part: str, what: str, name: str, runs: pd.DataFrame | None, coarse: set[str]) -> str:
    """One study of the page's overview: its runs on the coarse grid and added by refinement, and
    the coarse grid's compute as recorded (core-minutes)."""
    if runs is None:
        return f"| {part} | {what} | `{name}` | not run yet | |"
    is_coarse = runs["run_id"].isin(coarse)
    core = float(core_seconds(runs)[is_coarse].sum())
    return f"| {part} | {what} | `{name}` | {int(is_coarse.sum())} + {int((~is_coarse).sum())} | {core / 60:.0f} |"


# the overview table at the top of findings.md: (part, what the study varies, its directory), in
# the page's order; None: a part read from another study's runs
OVERVIEW = (
    ("1 width", "MNIST-1D MLP, AdamW, 16 → 1024", "full"),
    ("1 width", "MNIST-1D MLP, SGD + momentum, 16 → 512", "sgd_width"),
    ("1 width", "digits MLP, AdamW, 32 → 512", "digits_width"),
    ("1 width", "character-level transformer (Shakespeare), AdamW, 8 → 128", "shakespeare_width"),
    ("1 width", "the transformer's `mup` with biases and LayerNorm decayed", "shakespeare_vectors"),
    ("2 data", "MNIST-1D MLP (width 128), AdamW, n_train 250 → 4000", "mnist1d_data"),
    ("2 batch", "MNIST-1D MLP (width 128), AdamW, batch 16 → 256", "mnist1d_batch"),
    ("3 depth", "MNIST-1D MLP (width 128), AdamW, depth 1 → 8", "mnist1d_depth"),
    ("3 depth", "MNIST-1D residual MLP (width 128), AdamW, depth 1 → 8", "resmlp_depth"),
    ("3 depth", "the same with CompleteP's 1/depth branches", "resmlp_depth_completep"),
    ("5 cost", "from the `full` study", None),
    ("6 lr × λ", "MNIST-1D MLP, AdamW, width 32 → 512, 3 recipes", "joint_width"),
    ("6 lr × λ", "digits MLP, AdamW, width 32 → 512, 3 recipes", "joint_digits"),
    ("6 lr × λ", "character transformer, AdamW, width 8 → 64, 2 recipes", "joint_shakespeare"),
    ("6 lr × λ", "MNIST-1D MLP (width 128), n_train 250 → 4000, 3 recipes", "joint_data"),
)


def overview_table() -> str:
    """The overview of the constant-lr studies (§1–§6), their runs counted from their exports."""
    out = [
        "| part | study | preset | runs (coarse + refined) | coarse grid's compute (core-min, as recorded) |",
        "|---|---|---|---|---|",
    ]
    for part, what, name in OVERVIEW:
        if name is None:
            out.append(f"| {part} | {what} | | | |")
            continue
        out.append(overview_row(part, what, name, exported(HERE / name), coarse_ids(HERE / name)))
    return "\n".join(out)


def _kind(name: str) -> str:
    """What made a directory under docs/findings: Optuna's baselines (`tune_tpe_…`, `tune_hb_…`),
    a tune's ladder (`tune_…`, but the law point `tune_law_…`, a study run), or a study."""
    if name.startswith(("tune_tpe_", "tune_hb_")):
        return "optuna"
    return "tune" if name.startswith("tune_") and not name.startswith("tune_law_") else "study"


def corpus_text() -> str:
    """The page's first line: how many studies, tunes and Optuna baselines, and their runs."""
    counts = {"study": 0, "tune": 0, "optuna": 0}
    runs = 0
    for d in sorted(p for p in HERE.iterdir() if (p / "runs.parquet").exists()):
        counts[_kind(d.name)] += 1
        runs += len(pd.read_parquet(d / "runs.parquet", columns=["run_id"]))
    return (
        f"{counts['study']} studies, {counts['tune']} tunes and {counts['optuna']} Optuna baselines "
        f"({runs:,} training runs), on 2 CPU cores."
    )


# the tasks whose chance loss the page states, in words
CHANCE_TASKS = {"mnist1d_mlp": "MNIST-1D", "digits_mlp": "digits", "shakespeare_char": "Shakespeare (characters)"}


def not_learned_text() -> str:
    """Chance per task (what `not_learned` is read against) and how many committed runs are
    `not_learned`, with the studies that hold the most."""
    chance = ", ".join(f"{chance_loss(get_task(t).load()):.3f} on {w}" for t, w in CHANCE_TASKS.items())
    per_study, total = {}, 0
    for d in sorted(p for p in HERE.iterdir() if (p / "runs.parquet").exists()):
        status = pd.read_parquet(d / "runs.parquet", columns=["status"])["status"]
        per_study[d.name] = int((status == "not_learned").sum())
        total += len(status)
    most = sorted(per_study.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return (
        f"Chance, the loss of predicting the training labels' frequencies: {chance}. In the committed "
        f"exports {sum(per_study.values()):,} of the {total:,} runs are `not_learned`; the most in "
        + ", ".join(f"`{n}` ({c})" for n, c in most)
        + "."
    )


# width studies whose `mean` rule (λ/P Σ w²) is read against its decayed parameter count P
MEAN_PARAM_STUDIES = ("full", "sgd_width", "digits_width", "shakespeare_width")


def decayed_count(task: str, width: int, depth: int, decay_vectors: bool) -> int:
    """P: the decayed parameters of a task's model at a width (what `mean` divides λ by)."""
    model = get_task(task).make_model(width, depth)
    return sum(p.numel for p in classify(model, None, decay_vectors=decay_vectors) if p.decayed)


def mean_params_row(name: str, runs: pd.DataFrame, a: StudyAnalysis) -> str:
    """Mean square's λ* against its decayed parameter count: how much each grew from the smallest
    width to the largest, and the exponent that makes λ* ∝ P^k over those two ends."""
    o = a.optima_frame()
    o = o[o["rule"] == "mean"].sort_values("size")
    ends = [int(o["size"].iloc[0]), int(o["size"].iloc[-1])]
    counts = []
    for w in ends:
        r = runs[(runs["size"] == w) & (runs["rule"] == "mean")].iloc[0]
        counts.append(decayed_count(str(r["task"]), int(r["width"]), int(r["depth"]), bool(r["decay_vectors"])))
    fold = float(o["setting_star"].iloc[-1] / o["setting_star"].iloc[0])
    grew = counts[1] / counts[0]
    return (
        f"| `{name}` | {ends[0]} → {ends[1]} | {counts[0]:,} → {counts[1]:,} | ×{grew:.0f} | ×{fold:.3g} "
        f"| {math.log(fold) / math.log(grew):.2f} |"
    )


def mean_params_table(rows: list[str]) -> str:
    return "\n".join(
        [
            "| study | widths | decayed parameters P | P grew | `mean`'s λ\\* grew | k in λ\\* ∝ P^k |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


# rules that are the same optimizer on a study's axis (tests/test_rules.py checks the identities):
# their runs at settings that differ only by grid rounding are replicates
REPLICATE_PAIRS = {"full": [("sum", "per_sample"), ("mup", "timescale")]}


def replicate_table(runs: pd.DataFrame, coarse: set[str], pairs: list[tuple[str, str]], near: float = 0.05) -> str:
    """Replicate noise: per pair of rules that are one optimizer, the seed-mean losses at matching
    settings (same size and seed count, settings equal to 0.2 % after mapping one rule's grid onto
    the other's through their coarse grids' centres; a τ-rule maps inversely) within `near` of the
    size's best. Runs whose settings coincide exactly are identical and counted apart."""
    means = setting_means(runs)
    best = means.groupby(["rule", "size"])["mean"].transform("min")
    means = means[means["mean"] <= (1 + near) * best]
    names = dict(zip(runs["rule"], with_setting_names(runs)["setting_name"]))
    out = [
        "| same optimizer | points compared | identical | differ: median | 90th percentile | largest |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in pairs:
        grid = runs[runs["run_id"].isin(coarse)]
        centre = {r: float(np.exp(np.log(grid.loc[grid["rule"] == r, "setting"].unique()).mean())) for r in (a, b)}
        inverse = names[a] != names[b]
        diffs = []
        for size, x in means[means["rule"] == a].groupby("size"):
            y = means[(means["rule"] == b) & (means["size"] == size)]
            for s, mean, n in zip(x["setting"], x["mean"], x["n"]):
                mapped = centre[a] * centre[b] / s if inverse else s * centre[b] / centre[a]
                j = int(np.argmin(np.abs(np.log(y["setting"].to_numpy() / mapped)))) if len(y) else -1
                if j >= 0 and abs(math.log(y["setting"].iloc[j] / mapped)) < 2e-3 and y["n"].iloc[j] == n:
                    other = float(y["mean"].iloc[j])
                    diffs.append(abs(mean - other) / min(mean, other))
        d = np.array(diffs)
        moved = d[d > 1e-9]
        out.append(
            f"| `{a}` / `{b}` | {len(d)} | {len(d) - len(moved)} | {100 * np.median(moved):.2f} % "
            f"| {100 * np.quantile(moved, 0.9):.2f} % | {100 * moved.max():.2f} % |"
        )
    return "\n".join(out)


def fill(doc: str, blocks: dict[str, str]) -> str:
    """Replace the text between each block's markers; a block without markers is an error."""
    for name, body in blocks.items():
        begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
        if begin not in doc or end not in doc:
            raise SystemExit(f"docs/findings.md has no {begin} ... {end} markers for block {name!r}")
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = f"{head}{begin}\n{body}\n{end}{tail}"
    return doc


def _bars(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Regret bars in % and their interval's arms (a measured 0 % at the log axis's left edge)."""
    floor = 1e-3
    finite = np.isfinite(g["regret"].to_numpy(float))
    reg = 100 * g["regret"].where(finite, floor).clip(lower=floor).to_numpy(float)
    lo = 100 * g["regret_lo"].fillna(g["regret"]).where(finite, floor).clip(lower=floor).to_numpy(float)
    hi = 100 * g["regret_hi"].fillna(g["regret"]).where(finite, floor).clip(lower=floor).to_numpy(float)
    return reg, np.vstack([np.maximum(reg - lo, 0), np.maximum(hi - reg, 0)])


def schedule_figure(pairs: dict[str, tuple[StudyAnalysis, StudyAnalysis, str]], path: Path) -> None:
    """§8: per study rerun under a schedule, each rule's transfer regret at a constant lr beside
    the scheduled one (bars: 90 % intervals; "≥ (edge)": optimum on the grid's edge, a bound)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.1 * rows), squeeze=False)
    for ax, (name, (constant, scheduled, schedule)) in zip(axes.flat, pairs.items()):
        c = pd.DataFrame(verdict_rows("", "", constant)).set_index("rule")
        s = pd.DataFrame(verdict_rows("", "", scheduled)).set_index("rule")
        rules = [r for r in s.sort_values("regret", ascending=False).index if r in c.index]
        y = np.arange(len(rules))
        for frame, dy, color, label in ((c, 0.2, "#9aa9bd", "constant lr"), (s, -0.2, "#d9822b", schedule)):
            g = frame.loc[rules]
            reg, err = _bars(g)
            ax.barh(y + dy, reg, height=0.38, color=color, xerr=err, ecolor="#444444", capsize=2, label=label)
            for yi, edge in zip(y + dy, g["edge"]):
                if edge:
                    ax.text(0.12, yi, "≥ (edge)", va="center", fontsize=6, color="#aa3333")
        ax.set_yticks(y, rules)
        ax.set_xscale("log")
        ax.set_xlim(0.1, 200)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("transfer regret, %", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=6, loc="upper right")
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.suptitle("Under a schedule (orange) beside the constant-lr twin (grey): loss lost at the largest size, "
                 "trained at the smallest size's best setting", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tune_points(sweep_name: str, sweep: pd.DataFrame, target: int) -> pd.DataFrame:
    """§10's figure: per way of choosing the target's settings, its compute as a fraction of one
    recipe's sweep and its gap at the target (ladder: each budget, with its interval; Optuna:
    each search; one recipe's sweep: each recipe at 1)."""
    rows = []
    for suffix in TUNE_BUDGETS.values():
        ladder_runs = exported(HERE / f"tune_{sweep_name}{suffix}")
        if ladder_runs is None:
            continue
        one_recipe = recipe_sweep(ladder_runs, sweep, target)
        g = search_gap(ladder_runs, sweep, target)
        rows.append(dict(way="ladder (wdscale tune)", fraction=float(params_samples(ladder_runs).sum()) / one_recipe,
                         gap=g["gap"], lo=g["lo"], hi=g["hi"]))  # fmt: skip
        for kind, way in (("tpe", "TPE (each search)"), ("hb", "TPE + Hyperband (each search)")):
            for g, _, work in optuna_gaps(HERE / f"tune_{kind}_{sweep_name}{suffix}", sweep, target):
                rows.append(dict(way=way, fraction=work / one_recipe, gap=g["gap"], lo=np.nan, hi=np.nan))
    for rule in sorted(sweep.loc[sweep["size"] == target, "rule"].unique()):
        g = search_gap(sweep[sweep["rule"] == rule], sweep, target)
        rows.append(dict(way="one recipe's sweep at the target", fraction=1.0, gap=g["gap"], lo=g["lo"], hi=g["hi"]))
    return pd.DataFrame(rows)


def _gap_points(ax: Any, g: pd.DataFrame, marker: str, color: str, label: str) -> None:
    """Gaps (%) against compute fractions, with their 90 % intervals where every point has one (the
    resampled best, a minimum re-chosen, sits below the measured one: an interval may lie above its
    gap)."""
    arms = np.vstack([g["gap"] - g["lo"], g["hi"] - g["gap"]]).clip(min=0) * 100
    err = arms if g["lo"].notna().all() else None
    ax.errorbar(g["fraction"], 100 * g["gap"], yerr=err, fmt=marker, color=color, capsize=2, label=label,
                ms=6 if marker != "+" else 9)  # fmt: skip


def method_figure(points: list[dict], path: Path) -> None:
    """§10: each method's pick at each target, its gap to the sweep's best on the same fresh seeds
    against its measured core-seconds (a fraction of one recipe's sweep at the target); TPE's and
    TPE + Hyperband's searches one marker each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    pts = pd.DataFrame(points)
    targets = list(dict.fromkeys(pts["target"]))
    cols = min(4, len(targets))
    rows = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False)
    style = {"": ("o", "#d9822b"), "mutransfer_": ("s", "#8172b2"), "laws_": ("D", "#937860"),
             "tpe_": ("x", "#4c72b0"), "hb_": ("+", "#55a868")}  # fmt: skip
    labels = {"": "the ladder", "mutransfer_": "μTransfer", "laws_": "laws' point", "tpe_": "TPE (each search)",
              "hb_": "TPE + Hyperband (each search)"}  # fmt: skip
    for ax, name in zip(axes.flat, targets):
        here = pts[pts["target"] == name]
        for method, (marker, color) in style.items():
            g = here[here["method"] == method]
            if g.empty:
                continue
            _gap_points(ax, g, marker, color, labels[method])
        ax.axhline(1, color="#aa3333", lw=0.8, ls="--")
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.margins(y=0.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("core-s / one recipe's sweep at the target", fontsize=8)
        ax.set_ylabel("gap on fresh seeds, %", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(targets) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="best")
    fig.suptitle("Every method's pick re-trained on fresh seeds, against the compute it spent (bars: 90 % "
                 "intervals; dashed: the goal's 1 %; y linear within ±1 %)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tune_figure(points: dict[str, pd.DataFrame], path: Path) -> None:
    """§10: gap at the target against compute, per target (x: fraction of one recipe's sweep)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(points))
    rows = math.ceil(len(points) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows), squeeze=False)
    style = {
        "ladder (wdscale tune)": ("o", "#d9822b"),
        "TPE (each search)": ("x", "#4c72b0"),
        "TPE + Hyperband (each search)": ("+", "#55a868"),
        "one recipe's sweep at the target": ("s", "#777777"),
    }
    for ax, (name, pts) in zip(axes.flat, points.items()):
        for way, (marker, color) in style.items():
            g = pts[pts["way"] == way]
            if g.empty:
                continue
            _gap_points(ax, g, marker, color, way)
        ax.axhline(1, color="#aa3333", lw=0.8, ls="--")
        ax.axvline(0.1, color="#aa3333", lw=0.8, ls=":")
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_xscale("log")
        ax.set_title(f"{name} (target {TUNE_TARGETS[name]})", fontsize=9)
        ax.set_xlabel("compute / one recipe's sweep at the target", fontsize=8)
        ax.set_ylabel("gap to the sweep's best, %", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(points) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper right")
    fig.suptitle("Tuning the target without sweeping it: the gap measured there (bars: 90 % intervals; dashed: "
                 "the goal's 1 %, dotted: its tenth of a sweep)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure(verdicts: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(verdicts)
    studies = list(dict.fromkeys(df["study"]))
    cols = min(3, len(studies))
    rows = math.ceil(len(studies) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.9 * rows), squeeze=False)
    for ax, s in zip(axes.flat, studies):
        g = df[df["study"] == s].sort_values("regret", ascending=False)
        y = np.arange(len(g))
        reg, err = _bars(g)
        colors = ["#bbbbbb" if e else "#3b6ea8" for e in g["edge"]]
        ax.barh(y, reg, color=colors, xerr=err, ecolor="#444444", capsize=2)
        ax.set_yticks(y, g["rule"])
        for yi, r in zip(y, g["regret"].to_numpy(float)):
            if not np.isfinite(r):  # no bar: say why, so an empty row does not read as 0 %
                text = "diverges or does not learn" if r > 0 else "not measured"
                ax.text(0.12, yi, text, va="center", fontsize=7, color="#aa3333")
        ax.set_xscale("log")
        ax.set_xlim(0.1, 200)
        ax.set_title(g["label"].iloc[0], fontsize=9)
        ax.set_xlabel("transfer regret, % (grey: ≥, optimum off the grid)", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(studies) :]:
        ax.axis("off")
    fig.suptitle(
        "Loss lost at the largest size, trained at the smallest size's best setting (bars: 90 % whole-pipeline "
        "interval)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _carried(losses: dict[tuple, np.ndarray], key: tuple) -> tuple | None:
    """The point of `losses` at `key` = (rule, lr, setting), matched within refine's rounding."""
    for k in losses:
        if k[0] == key[0] and math.isclose(k[1], key[1], rel_tol=1e-3) and math.isclose(k[2], key[2], rel_tol=1e-3):
            return k
    return None


def _reuse_draws(losses: dict[tuple, np.ndarray], point: tuple, n_boot: int, stream: int) -> np.ndarray:
    """Per resample of a sweep's seeds at one size (`losses`: `_point_losses` there; every point's
    seeds resampled together): the loss at `point` over the best point's, the best re-chosen each
    time (so never below 0; +inf where `point` has a diverged seed)."""
    rng = np.random.default_rng([3, stream])
    means = {k: rng.choice(v, (n_boot, len(v))).mean(axis=1) for k, v in losses.items() if np.isfinite(v).all()}
    if point not in means:
        return np.full(n_boot, np.inf)
    return means[point] / np.min(list(means.values()), axis=0) - 1


def muon_reuse_table(muon: pd.DataFrame, adamw: pd.DataFrame, j: JointAnalysis, n_boot: int = 4000) -> str:
    """Per width and recipe: AdamW's tuned (lr*, λ*) (its measured joint optimum there), Muon +
    AdamW trained at that same point, Muon's own joint optimum, what reusing AdamW's point costs
    against Muon's own best (90 % interval: the Muon study's seeds at that width resampled, every
    point together, its best re-chosen each time; ends over the bootstrap streams as
    `search_gap`'s) and the gap these seeds detect, and Muon's best against AdamW's best of the
    same recipe (both re-chosen)"""
    o = j.optima_frame()
    out = [
        r"| size | recipe | AdamW's (lr\*, λ\*) | Muon there: loss (seeds) | Muon's own (lr\*, λ\*): loss "
        r"| cost of reusing AdamW's [90% CI] | detectable | Muon's best vs AdamW's [90% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in sorted(muon["size"].unique()):
        noise = _target_noise(muon, size)
        for rule in sorted(set(muon["rule"]) & set(adamw["rule"])):
            a_runs, m_runs = adamw[adamw["rule"] == rule], muon[muon["rule"] == rule]
            a = _point_losses(a_runs, size)
            a_key = min(a, key=lambda k: a[k].mean())
            own = o[(o["rule"] == rule) & (o["size"] == size)].iloc[0]
            edge = " at edge" if own["lr_edge"] or own["setting_edge"] else ""
            m_losses = _point_losses(m_runs, size)
            point = _carried(m_losses, a_key)
            if point is None:
                carried, cost, det = "not trained", "–", "–"
            else:
                there = m_losses[point]
                ends = _stream_ends([_reuse_draws(m_losses, point, n_boot, k) for k in STREAMS])
                carried = f"{there.mean():.3f} ({len(there)})"
                cost = pct(there.mean() / own["loss"] - 1, *ends)
                det = f"{100 * 2.8 * noise * math.sqrt(1 / len(there) + 1 / own['n_seeds']):.1f} %"
            ends = _stream_ends(
                [_best_draws(m_runs, size, n_boot, k) / _best_draws(a_runs, size, n_boot, k) - 1 for k in STREAMS]
            )
            vs = pct(own["loss"] / a[a_key].mean() - 1, *ends)
            out.append(
                f"| width {size} | `{rule}` | ({a_key[1]:.3g}, {a_key[2]:.3g}) | {carried} "
                f"| ({own['lr']:.3g}, {own['setting']:.3g}){edge}: {own['loss']:.3f} | {cost} | {det} | {vs} |"
            )
    return "\n".join(out)


def muon_ranking_table(muon: pd.DataFrame, adamw: pd.DataFrame, n_boot: int = 4000) -> str:
    """At the largest width: every recipe's best under each optimizer and its gap to the best of
    all (90 % interval: every point's seeds resampled, each best re-chosen; ends over the streams)."""
    size = int(muon["size"].max())
    sides = {
        (opt, rule): runs[runs["rule"] == rule]
        for opt, runs in (("AdamW alone", adamw), ("Muon + AdamW", muon))
        for rule in sorted(runs["rule"].unique())
    }
    means = {k: min(v.mean() for v in _point_losses(r, size).values()) for k, r in sides.items()}
    best = min(means.values())

    def gap_draws(k: tuple[str, str], stream: int) -> np.ndarray:
        everyone = np.min(np.vstack([_best_draws(r, size, n_boot, stream) for r in sides.values()]), axis=0)
        return _best_draws(sides[k], size, n_boot, stream) / everyone - 1

    out = [f"| optimizer | recipe | best loss at width {size} | gap to the best [90% CI] |", "|---|---|---|---|"]
    for k in sorted(means, key=means.__getitem__):
        ends = _stream_ends([gap_draws(k, stream) for stream in STREAMS])
        out.append(f"| {k[0]} | `{k[1]}` | {means[k]:.3f} | {pct(means[k] / best - 1, *ends)} |")
    return "\n".join(out)


def main() -> int:
    verdicts, blocks, missing, analyses = [], {}, [], {}
    held: list[tuple[str, Holdout]] = []
    loaded: dict[str, pd.DataFrame | None] = {}
    refined, designs = [], []
    replays: dict[str, pd.DataFrame] = {}
    mean_params: list[str] = []
    for name, label in STUDIES.items():
        runs = loaded[name] = load(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        plan = StudyPlan.from_stored(json.loads((HERE / name / "plan.json").read_text()))
        coarse = coarse_ids(HERE / name)
        if plan.refined:
            refined.append(refined_row(name, runs, coarse))
            replays[name] = design_replay(runs, coarse, plan.seeds)
            designs.append(designs_row(name, replays[name]))
        analyses[name] = analyze(runs)
        if name in MEAN_PARAM_STUDIES:
            mean_params.append(mean_params_row(name, runs, analyses[name]))
        rows = verdict_rows(name, label, analyses[name])
        verdicts += rows
        blocks[name] = study_table(rows)
        if name == "full":
            blocks["cost"] = cost_table(search_cost(runs))
        if name in REPLICATE_PAIRS:
            blocks[f"{name}_replicates"] = replicate_table(runs, coarse, REPLICATE_PAIRS[name])
        held += [(name, h) for h in holdout(runs)]
    blocks["refined"] = "\n".join(
        [
            "| study | coarse-grid runs | refined runs | coarse core-s (as recorded) | refined core-s "
            "| compute × | runs × |",
            "|---|---|---|---|---|---|---|",
            *refined,
        ]
    )
    blocks["designs"] = "\n".join(
        ["| study | " + " | ".join(DESIGNS) + " |", "|---|" + "---|" * len(DESIGNS), *designs]
    )
    blocks["designs_summary"] = designs_summary(replays)
    blocks["mean_vs_params"] = mean_params_table(mean_params)
    blocks["overview"] = overview_table()
    blocks["corpus"] = corpus_text()
    blocks["not_learned"] = not_learned_text()
    joint_runs: list[str] = []
    joint_edges: list[int] = []  # per joint study of §6: its ends (smallest and largest size), those at an edge
    for name, (_, one_d_name) in JOINT_STUDIES.items():
        runs = load(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        joint, j = joint_blocks(name, runs, loaded.get(one_d_name))
        blocks.update(joint)
        o = j.optima_frame()
        ends = o[o["size"].isin([o["size"].min(), o["size"].max()])]
        joint_edges += [len(ends), int((ends["lr_edge"] | ends["setting_edge"]).sum())]
        is_coarse = runs["run_id"].isin(coarse_ids(HERE / name))
        joint_runs.append(f"| `{name}` | {int(is_coarse.sum())} | {int((~is_coarse).sum())} | {len(runs)} |")

    n_ends, n_edge = sum(joint_edges[::2]), sum(joint_edges[1::2])
    blocks["joint_edges"] = f"{n_edge} of the {n_ends} ends (smallest and largest size) in §6's tables are at an edge."
    pairs: dict[str, tuple[StudyAnalysis, StudyAnalysis, str]] = {}
    for name, (twin, schedule) in SCHEDULE_STUDIES.items():
        runs = exported(HERE / name)
        if runs is None or runs.empty or twin not in analyses:
            missing.append(name)
            continue
        scheduled = analyze(runs)
        pairs[name] = (analyses[twin], scheduled, schedule)
        blocks[name] = study_table(verdict_rows(name, STUDIES[twin], scheduled))
        blocks[f"{name}_vs_constant"] = schedule_table(analyses[twin], scheduled)
    if pairs:
        schedule_figure(pairs, HERE / "schedule_regret.png")
        blocks["schedule_runs"] = schedule_runs_table()
    for name, label in MUON_STUDIES.items():
        runs = exported(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        blocks[name] = study_table(verdict_rows(name, label, analyze(runs)))
    for name, twin in MUON_JOINT_STUDIES.items():
        runs, adamw = exported(HERE / name), load(HERE / twin)
        if runs is None or runs.empty or adamw is None:
            missing.append(name)
            continue
        j = analyze_joint(runs, tpe_trials=())
        blocks[name] = joint_table(j)
        blocks[f"{name}_reuse"] = muon_reuse_table(runs, adamw, j)
        blocks[f"{name}_ranking"] = muon_ranking_table(runs, adamw)
    tau_pts: dict[str, pd.DataFrame] = {}
    for name in [*SCHEDULE_JOINT_STUDIES, *ONEPASS_STUDIES]:
        runs = exported(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        joint, j = joint_blocks(name, runs, None)
        blocks.update(joint)
        is_coarse = runs["run_id"].isin(coarse_ids(HERE / name))
        joint_runs.append(f"| `{name}` | {int(is_coarse.sum())} | {int((~is_coarse).sum())} | {len(runs)} |")
        if name in ONEPASS_STUDIES:
            axis, published = ONEPASS_STUDIES[name]
            blocks[f"{name}_tau"] = tau_table(j, runs, axis, published)
            tau_pts[name] = tau_points(j, runs)
    if tau_pts:
        tau_figure(tau_pts, HERE / "onepass_tau.png")
    onepass = {name: r for name in ONEPASS_STUDIES if (r := exported(HERE / name)) is not None and not r.empty}
    if len(onepass) == len(ONEPASS_STUDIES):
        blocks["onepass_tau_loss"] = tau_loss_block(onepass)
        blocks["onepass_scope"] = onepass_scope_table(tau_pts, onepass)
    blocks["joint_runs"] = "\n".join(
        ["| joint study | coarse-grid runs | refined runs | all runs |", "|---|---|---|---|", *joint_runs]
    )
    tuned: list[str] = []
    tune_pts = {}
    for sweep_name, target in TUNE_TARGETS.items():
        sweep = load(HERE / sweep_name)
        found = sweep is not None and (rows_here := tune_rows(sweep_name, sweep, target))
        if not found:
            missing.append(f"tune_{sweep_name}")
            continue
        tuned += rows_here
        tune_pts[sweep_name] = tune_points(sweep_name, sweep, target)
    if tune_pts:
        tune_figure(tune_pts, HERE / "tune_frontier.png")
        blocks["tune_noise"] = tune_noise_table()
    if tuned:
        blocks["tune"] = "\n".join(
            [
                "| sweep | target | budget | the ladder's pick (seeds) | its loss | the sweep's best over all recipes "
                "| gap [90% CI] | detectable | fraction of one recipe's sweep | the ladder's runs at the target "
                "| TPE at that compute: gap (trials, fraction) | TPE + Hyperband: gap (trials, fraction) |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
                *tuned,
            ]
        )
    onepass_tuned: list[str] = []
    method_points: list[dict] = []
    for sweep_name, target in ONEPASS_TUNE_TARGETS.items():
        sweep = load(HERE / sweep_name)
        rows_here = [] if sweep is None else onepass_tune_rows(sweep_name, sweep, target, points=method_points)
        if not rows_here:
            missing.append(f"tune_{sweep_name}")
        onepass_tuned += rows_here
    if onepass_tuned:
        blocks["tune_onepass"] = "\n".join(
            [
                *METHOD_HEADER,
                *onepass_tuned,
            ]
        )
    fair_tuned: list[str] = []
    for sweep_name, target in TUNE_TARGETS.items():  # the six published targets, every peer made fair
        sweep = load(HERE / sweep_name)
        rows_here = [] if sweep is None else onepass_tune_rows(sweep_name, sweep, target, FAIR, method_points)
        if not rows_here:
            missing.append(f"fair/tune_{sweep_name}")
        fair_tuned += rows_here
    if fair_tuned:
        blocks["tune_fair"] = "\n".join(
            [
                *METHOD_HEADER,
                *fair_tuned,
            ]
        )
    if method_points:
        method_figure(method_points, HERE / "tune_methods.png")
    if {"shakespeare_width", "shakespeare_vectors"} <= set(analyses):
        blocks["vectors"] = vectors_table(analyses["shakespeare_width"], analyses["shakespeare_vectors"])
    blocks["holdout"] = holdout_table(held)
    blocks["holdout_summary"] = holdout_summary(held)
    if not verdicts:
        print("no study found under", HERE, file=sys.stderr)
        return 1
    doc = HERE.parent / "findings.md"
    text = fill(doc.read_text(encoding="utf-8"), blocks)
    found = prose.tables(text)  # the prose's numbers, rewritten from the tables just generated
    doc.write_text(prose.fill_refs(text, found), encoding="utf-8")
    readme = HERE.parents[1] / "README.md"
    readme.write_text(prose.fill_refs(readme.read_text(encoding="utf-8"), found), encoding="utf-8")
    figure(verdicts, HERE / "summary_regret.png")
    print(
        f"updated {doc} ({', '.join(blocks)}) and {HERE / 'summary_regret.png'}"
        + (f"; not run yet: {', '.join(missing)}" if missing else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
