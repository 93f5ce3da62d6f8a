"""The report's figures: loss against the decay setting per size, and the optimum against size.

pyplot is imported by `report.write_report`, which picks the Agg backend first, and handed in as `plt`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator

from ..analysis.study_analysis import exponent, setting_symbol


def _setting_label(name: str) -> str:
    if name == "tau":
        return "decay timescale τ (swept setting, log scale)"
    return "weight decay λ (swept setting, log scale)"


def _metric_label(metric: str) -> str:
    nice = {"val_loss": "validation loss", "best_val_loss": "best validation loss", "train_loss": "training loss"}.get(
        metric, metric
    )
    return f"{nice} (mean ± s.e.m. over seeds)"


def plot_curves(plt, key: tuple, curves: pd.DataFrame, optima: pd.DataFrame, metric: str, path: Path) -> None:
    """Loss against setting, one curve per size (μP's Figure 1 for a decay setting); the star at
    each size's best trained setting and its measured seed-mean loss (no fitted value)."""
    task, optimizer, rule, axis = key
    name = str(curves["setting_name"].iloc[0])
    sym = setting_symbol(name)
    sizes = sorted(curves["size"].unique())
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(sizes), 2)))
    fig, ax = plt.subplots(figsize=(9.5, 5))
    finite_all = curves.loc[np.isfinite(curves["mean"]), "mean"].to_numpy()
    any_edge = False
    for colour, size in zip(colours, sizes):
        c = curves[curves["size"] == size].sort_values("setting")
        ok = np.isfinite(c["mean"]).to_numpy()
        ax.errorbar(
            c["setting"][ok],
            c["mean"][ok],
            yerr=c["sem"][ok].fillna(0.0),
            fmt="-o",
            ms=3,
            lw=1.5,
            capsize=2,
            color=colour,
            label=f"{axis}={size}",
        )
        if (~ok).any():  # diverged settings: an x on the top edge
            ax.plot(
                c["setting"][~ok],
                np.ones((~ok).sum()),
                "x",
                color=colour,
                ms=7,
                mew=2,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
        o = optima[optima["size"] == size]
        if len(o) and np.isfinite(o["setting_star"].iloc[0]):
            o = o.iloc[0]
            any_edge |= bool(o["at_edge"])
            ax.errorbar(
                [o["setting_star"]],
                [o["best_loss"]],
                xerr=[[o["setting_star"] - o["lo"]], [o["hi"] - o["setting_star"]]],
                fmt="*",
                ms=15,
                color=colour,
                mec="red" if o["at_edge"] else "black",
                mew=1.5 if o["at_edge"] else 0.8,
                capsize=4,
                lw=1.2,
                zorder=5,
            )
    if finite_all.size:
        # Keep the minima readable: don't let a near-diverged setting squash the picture.
        lo = finite_all.min()
        q = np.quantile(finite_all, 0.75)
        top = min(finite_all.max(), lo + 2.0 * max(q - lo, 1e-12))
        top = max(top, optima["best_loss"].max())
        pad = 0.05 * max(top - lo, 1e-12)
        ax.set_ylim(lo - pad, top + pad)
    ax.set_xscale("log")
    ax.set_xlabel(_setting_label(name))
    ax.set_ylabel(_metric_label(metric))
    ax.set_title(f"{rule} — {optimizer} — {task}")
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    handles, labels = ax.get_legend_handles_labels()
    star = plt.Line2D([], [], marker="*", ls="", color="grey", mec="black", ms=12)
    handles.append(star)
    labels.append(f"{sym}* = best trained setting (bars: 90% bootstrap)")
    if any_edge:
        handles.append(plt.Line2D([], [], marker="*", ls="", color="grey", mec="red", ms=12))
        labels.append("optimum at grid edge")
    if (~np.isfinite(curves["mean"])).any():
        handles.append(plt.Line2D([], [], marker="x", ls="", color="grey", mew=2))
        labels.append("a seed diverged")
    ax.legend(
        handles,
        labels,
        fontsize=8,
        title=axis,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_drift(plt, group: tuple, optima: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """λ*/λ*(smallest size) against size, one line per rule (λ*: the best trained grid setting, so
    the lines move in grid steps): flat = the setting transfers."""
    task, optimizer, axis = group
    rules = sorted(optima["rule"].unique())
    fig, ax = plt.subplots(figsize=(9.5, 5))
    colours = plt.get_cmap("tab10")(np.arange(len(rules)) % 10)
    sizes = np.array(sorted(optima["size"].unique()), dtype=float)
    # Spread the rules a little sideways so their error bars don't sit on top of each other.
    jitter = np.exp(0.03 * (np.arange(len(rules)) - (len(rules) - 1) / 2))
    any_edge = False
    for colour, j, rule in zip(colours, jitter, rules):
        o = optima[optima["rule"] == rule].sort_values("size")
        o = o[np.isfinite(o["setting_star"])]
        if o.empty:
            continue
        base = o["setting_star"].iloc[0]
        y = (o["setting_star"] / base).to_numpy()
        err = np.vstack([y - o["lo"] / base, o["hi"] / base - y]).clip(min=0)
        t = table[table["rule"] == rule].iloc[0]
        sym = setting_symbol(t["setting_name"])
        label = f"{rule} ({sym}*): slope {exponent(t['slope'])} [{exponent(t['slope_lo'])}, {exponent(t['slope_hi'])}]"
        x = o["size"].to_numpy(float) * j
        ax.errorbar(x, y, yerr=err, fmt="-o", ms=6, capsize=3, color=colour, label=label)
        edge = o["at_edge"].to_numpy(bool)
        if edge.any():
            any_edge = True
            ax.plot(x[edge], y[edge], "o", ms=9, mfc="white", mec=colour, mew=2, zorder=5)
    lo_s, hi_s = sizes.min(), sizes.max()
    ax.axhline(1.0, ls="--", color="black", lw=1.2, label="flat: the setting transfers")
    xs = np.array([lo_s, hi_s])
    for p in (1.0, 0.5):
        ax.plot(xs, (xs / lo_s) ** p, color="0.55", lw=1, alpha=0.6, zorder=0)
        ax.annotate(
            rf"$\propto$ {axis}$^{{{p:g}}}$",
            (hi_s, (hi_s / lo_s) ** p),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            color="0.4",
            fontsize=8,
        )
    if any_edge:
        ax.plot([], [], "o", ms=9, mfc="white", mec="grey", mew=2, label="optimum at grid edge")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:g}" for s in sizes])
    ax.minorticks_off()
    ax.yaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlim(lo_s / 1.25, hi_s * 1.25)
    ax.set_xlabel(f"{axis} (log scale)")
    ax.set_ylabel("optimal setting / optimal setting at smallest size\n(λ*/λ*₀, or τ*/τ*₀ for τ-rules)")
    ax.set_title(f"Does the optimal decay move with {axis}? — {optimizer} — {task}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_joint_plane(plt, rule: str, means: pd.DataFrame, optima: pd.DataFrame, axis: str, path: Path) -> None:
    """One panel per size: every trained (lr, setting) of `rule`, coloured by its seed-mean loss
    over that size's best (a measured gap), a star at the joint optimum, an x where a seed
    diverged or did not learn, and the ridge η·λ = η*·λ* through the optimum (λ-rules: the line
    where the per-step decay stays the optimum's)."""
    from matplotlib.colors import LogNorm

    sizes = sorted(means["size"].unique())
    name = str(means["setting_name"].iloc[0])
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4.2), sharex=True, sharey=True, squeeze=False)
    norm = LogNorm(vmin=1e-3, vmax=1.0)
    sc = None
    for ax, size in zip(axes[0], sizes):
        m = means[means["size"] == size]
        o = optima[optima["size"] == size].iloc[0]
        ok = np.isfinite(m["mean"]).to_numpy()
        gap = (m["mean"][ok] / o["loss"] - 1).clip(lower=1e-3, upper=1.0)
        sc = ax.scatter(m["lr"][ok], m["setting"][ok], c=gap, cmap="viridis", norm=norm, s=60, marker="s")
        ax.plot(m["lr"][~ok], m["setting"][~ok], "x", color="red", ms=6)
        ax.plot([o["lr"]], [o["setting"]], "*", ms=18, mfc="white", mec="black", zorder=5)
        if name != "tau":
            lrs = np.array([m["lr"].min(), m["lr"].max()])
            ax.plot(lrs, o["lr"] * o["setting"] / lrs, "--", color="black", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{axis}={size}: best {o['loss']:.4g}")
        ax.set_xlabel("base lr η (log scale)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel(f"{'τ' if name == 'tau' else 'λ'} (log scale)")
    if sc is not None:
        bar = fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.9)
        bar.set_label("loss / best loss at this size − 1 (clipped to [0.1 %, 100 %])")
    fig.suptitle(f"{rule}: loss over (lr, setting); ★ joint optimum, -- η·λ = η*·λ*, x diverged or did not learn")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_frontier(plt, choices: pd.DataFrame, target: str, path: Path) -> None:
    """Gap to the target's best loss against tuning compute, one marker per way of choosing; TPE
    as a line over its trial budgets (median, bars: 90 % over sampler seeds)."""
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    rules = sorted(r for r in choices["rule"].unique() if r != "all")
    colours = dict(zip(rules, plt.get_cmap("tab10")(np.arange(len(rules)) % 10)))
    floor = 1e-4  # a gap of 0 drawn on the log axis's floor
    for (strategy, rule), g in choices.groupby(["strategy", "rule"], sort=False):
        c = colours.get(rule, "black")
        y = g["gap"].clip(lower=floor).to_numpy(float)
        err = np.vstack([y - g["lo"].clip(lower=floor), g["hi"].clip(lower=floor) - y]).clip(min=0)
        err = np.where(np.isfinite(err), err, 0.0)
        if strategy.startswith("TPE"):
            continue
        marker = {"sweep at target": "s", "transfer (lr and setting)": "o"}.get(strategy, "^")
        label = f"{rule}: {strategy}"
        ax.errorbar(g["core_s"], y, yerr=err, fmt=marker, color=c, ms=7, capsize=2, label=label, alpha=0.85)
    tpe = choices[choices["strategy"].str.startswith("TPE")]
    for rule, g in tpe.groupby("rule"):
        g = g.sort_values("core_s")
        y = g["gap"].clip(lower=floor).to_numpy(float)
        err = np.vstack([y - g["lo"].clip(lower=floor), g["hi"].clip(lower=floor) - y]).clip(min=0)
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(
            g["core_s"],
            y,
            yerr=err,
            fmt=":d",
            color=colours.get(rule, "black"),
            capsize=2,
            label=f"{rule}: TPE at target (4-32 trials)",
        )
    ax.axhline(0.01, color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.5, None)
    ax.set_xlabel("tuning compute (core-seconds, one seed per point searched; log scale)")
    ax.set_ylabel(f"loss gap to the best at {target} (measured; 0 drawn at 0.01 %)")
    ax.set_title(f"What each way of choosing (lr, setting) costs and loses at {target}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
