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

import numpy as np
import pandas as pd

from wdscale.study.analysis.advise import Holdout, holdout
from wdscale.study.analysis.cost import SearchCost, search_cost
from wdscale.study.analysis.joint import JointAnalysis, analyze_joint
from wdscale.study.analysis.study_analysis import (
    StudyAnalysis,
    analyze,
    core_seconds,
    params_samples,
    run_losses,
    with_setting_names,
)
from wdscale.study.plan.study_plan import StudyPlan, make_runs
from wdscale.study.plan.tasks import get_task
from wdscale.study.run.store import load_runs
from wdscale.study.search.refine import DESIGNS, design_replay, setting_means

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
        if np.isfinite(opt[0].product):
            s, lo, hi = (-v - t_slope for v in d.product_slope)
            lo, hi = min(lo, hi), max(lo, hi)
        else:
            s, lo, hi = d.setting_slope
        lines.append(f"| `{d.rule}` | {s:.2f} [{lo:.2f}, {hi:.2f}] | {published:g} | 0 |")
    return "\n".join(lines)


# tunes (§10): each climbed to the largest size of a joint study, whose sweep there is the reference
TUNE_STUDIES = {"tune_joint_width": ("joint_width", 512), "tune_joint_width_1024": ("joint_width_1024", 1024)}


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
    """The measured regret with its whole-pipeline interval, or why there is none."""
    if not np.isfinite(t["regret"]):
        return "∞ (diverges or does not learn)" if t["regret"] == np.inf else str(t["regret_reason"] or "–")
    lo, hi = (f"{100 * t[k]:.1f}" if np.isfinite(t[k]) else "–" for k in ("regret_lo", "regret_hi"))
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


def _point_losses(runs: pd.DataFrame, size: int) -> dict[tuple, np.ndarray]:
    """(rule, lr, setting) → the seeds' losses at `size` (+inf: diverged or did not learn)."""
    at = runs[(runs["size"] == size) & (runs["status"] != "failed")]
    at = at.assign(loss=run_losses(at))
    return {k: g["loss"].to_numpy() for k, g in at.groupby(["rule", "lr", "setting"])}


def tune_row(name: str, tune: pd.DataFrame, sweep: pd.DataFrame, target: int, n_boot: int = 2000) -> str:
    """One tune against the joint sweep at its target: the gap of the tune's pick (its seed-mean
    loss at the target) to the sweep's best over every recipe, with a bootstrap over seeds on both
    sides (the sweep's best re-chosen in every resample), and the compute of each."""
    picks = _point_losses(tune, target)
    means = {k: v.mean() for k, v in picks.items()}
    pick = min(means, key=means.get)
    ref = _point_losses(sweep, target)
    ref_means = {k: v.mean() for k, v in ref.items()}
    best = min(ref_means, key=ref_means.get)
    rng = np.random.default_rng(0)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        mine = rng.choice(picks[pick], len(picks[pick])).mean()
        theirs = min(rng.choice(v, len(v)).mean() for v in ref.values() if np.isfinite(v).all())
        draws[b] = mine / theirs - 1
    gap = means[pick] / ref_means[best] - 1
    lo, hi = np.quantile(draws, [0.05, 0.95])
    sem = ref[best].std(ddof=1) / np.sqrt(len(ref[best])) / ref_means[best] if len(ref[best]) > 1 else np.nan
    # compute in parameters × samples seen (core-seconds depend on the machine's load at the time)
    tune_s = float(core_seconds(tune).sum())
    at = sweep[sweep["size"] == target]
    bottom = tune[tune["size"] == tune["size"].min()]  # the tune's bottom grid: the joint study's coarse grid
    n_points = bottom.groupby("rule")[["lr", "setting"]].apply(lambda g: len(g.drop_duplicates())).median()
    recipe_sweep = float(n_points * params_samples(at).median())  # one recipe's grid at the target, one seed each
    tune_work = float(params_samples(tune).sum())
    rule, lr, setting = pick
    return (
        f"| `{name}` | {target} | `{rule}`, lr {lr:.3g}, λ {setting:.3g} ({len(picks[pick])} seeds) | "
        f"{means[pick]:.4f} | {ref_means[best]:.4f} (`{best[0]}`, lr {best[1]:.3g}, λ {best[2]:.3g}) | "
        f"{100 * gap:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] | {200 * math.sqrt(2) * sem:.1f} % | "
        f"{tune_work:.3g} ({tune_s:.0f} core-s) | {recipe_sweep:.3g} | {tune_work / recipe_sweep:.2f} | not run yet |"
    )


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


def pct(x: float, lo: float = np.nan, hi: float = np.nan) -> str:
    if x == np.inf:
        return "∞"
    if not np.isfinite(x):
        return "not measured"
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{100 * x:.1f} %{ci}"


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

    def tri(t: tuple) -> str:
        return "–" if not np.isfinite(t[0]) else f"{fmt(t[0])} [{fmt(t[1])}, {fmt(t[2])}]"

    def gap(strategy: str, rule: str) -> str:
        r = c[(c["strategy"] == strategy) & (c["rule"] == rule) & (c["proxy_size"] == sizes[0])]
        return pct(*r.iloc[0][["gap", "lo", "hi"]]) if len(r) else "–"

    for d in j.drifts:
        a = o[(o["rule"] == d.rule) & (o["size"] == sizes[0])].iloc[0]
        b = o[(o["rule"] == d.rule) & (o["size"] == sizes[-1])].iloc[0]
        # an optimum that is the last lr trained at its setting, or the last setting at its lr: a bound
        edge = {k: " at edge" if r["lr_edge"] or r["setting_edge"] else "" for k, r in (("a", a), ("b", b))}
        own = c[(c["strategy"] == "sweep at target") & (c["rule"] == d.rule)].iloc[0]
        out.append(
            f"| `{d.rule}` | ({a['lr']:.3g}, {a['setting']:.3g}){edge['a']} → ({b['lr']:.3g}, {b['setting']:.3g})"
            f"{edge['b']} "
            f"| {tri(d.lr_slope)} | {tri(d.setting_slope)} | {tri(d.product_slope)} | {tri(d.fixed_lr_setting_slope)} "
            f"| {b['loss']:.3f}, {pct(own['gap'], own['lo'], own['hi'])} "
            f"| {gap('transfer (lr and setting)', d.rule)} | {gap('transfer (setting only, fixed lr)', d.rule)} |"
        )
    return "\n".join(out)


def frontier_table(j: JointAnalysis, one_d: dict[str, float]) -> str:
    """What each way of choosing the target's (lr, setting) lost there and cost, per recipe."""
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
            f"| {how}{median} | `{r['rule']}` | {pct(r['gap'], r['lo'], r['hi'])} | {r['core_s']:.1f} "
            f"| {r['params_samples']:.2g} |"
        )
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
    return {name: joint_table(j), f"{name}_frontier": frontier_table(j, one_d_compute(runs, one_d))}, j


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


def designs_row(name: str, runs: pd.DataFrame, coarse: set[str], base_seeds: int) -> str:
    """A refined study's cheaper designs replayed (`design_replay`): each design's compute against
    the coarse grid's, and in how many rule series the regret's resolution and the drift's verdict
    are the ones the refinement as run reached."""
    r = design_replay(runs, coarse, base_seeds)
    cells = [
        f"×{g.compute.iloc[0]:.2f} ({int((g.same_regret & g.same_drift).sum())}/{len(g)})"
        for _, g in r.groupby("design", sort=False)
    ]
    return f"| `{name}` | " + " | ".join(cells) + " |"


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


def main() -> int:
    verdicts, blocks, missing, analyses = [], {}, [], {}
    held: list[tuple[str, Holdout]] = []
    loaded: dict[str, pd.DataFrame | None] = {}
    refined, designs = [], []
    for name, label in STUDIES.items():
        runs = loaded[name] = load(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        plan = StudyPlan.from_stored(json.loads((HERE / name / "plan.json").read_text()))
        coarse = coarse_ids(HERE / name)
        if plan.refined:
            refined.append(refined_row(name, runs, coarse))
            designs.append(designs_row(name, runs, coarse, plan.seeds))
        analyses[name] = analyze(runs)
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
    for name, (_, one_d_name) in JOINT_STUDIES.items():
        runs = load(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        joint, _ = joint_blocks(name, runs, loaded.get(one_d_name))
        blocks.update(joint)
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
    tau_pts: dict[str, pd.DataFrame] = {}
    for name in [*SCHEDULE_JOINT_STUDIES, *ONEPASS_STUDIES]:
        runs = exported(HERE / name)
        if runs is None or runs.empty:
            missing.append(name)
            continue
        joint, j = joint_blocks(name, runs, None)
        blocks.update(joint)
        if name in ONEPASS_STUDIES:
            axis, published = ONEPASS_STUDIES[name]
            blocks[f"{name}_tau"] = tau_table(j, runs, axis, published)
            tau_pts[name] = tau_points(j, runs)
    if tau_pts:
        tau_figure(tau_pts, HERE / "onepass_tau.png")
    tune_rows = []
    for name, (sweep_name, target) in TUNE_STUDIES.items():
        runs, sweep = exported(HERE / name), load(HERE / sweep_name)
        if runs is None or runs.empty or sweep is None:
            missing.append(name)
            continue
        tune_rows.append(tune_row(name, runs, sweep, target))
    if tune_rows:
        blocks["tune"] = "\n".join(
            [
                "| tune | target | its pick (seeds) | loss there | the sweep's best over all recipes | gap [90% CI] "
                "| detectable | tune: params × samples | one recipe's sweep | fraction | TPE's gap at that compute |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
                *tune_rows,
            ]
        )
    if {"shakespeare_width", "shakespeare_vectors"} <= set(analyses):
        blocks["vectors"] = vectors_table(analyses["shakespeare_width"], analyses["shakespeare_vectors"])
    blocks["holdout"] = holdout_table(held)
    if not verdicts:
        print("no study found under", HERE, file=sys.stderr)
        return 1
    doc = HERE.parent / "findings.md"
    doc.write_text(fill(doc.read_text(encoding="utf-8"), blocks), encoding="utf-8")
    figure(verdicts, HERE / "summary_regret.png")
    print(
        f"updated {doc} ({', '.join(blocks)}) and {HERE / 'summary_regret.png'}"
        + (f"; not run yet: {', '.join(missing)}" if missing else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
