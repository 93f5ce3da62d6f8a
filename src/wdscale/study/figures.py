"""The report's figures: loss against the decay setting per size, and the optimum against size.

pyplot is imported by `report.write_report`, which picks the Agg backend first, and handed in as `plt`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator

from .analysis import setting_symbol
from .document import exponent


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
