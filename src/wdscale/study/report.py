"""Turn a study's runs into report.md, report.html and the figures they embed.

The content is built once as a list of blocks (heading / paragraph / bullets / table / figure)
and rendered twice, so the markdown and the HTML report can never disagree.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from wdscale.study.analysis import SERIES_KEYS, StudyAnalysis, analyze, mean_curves
from wdscale.study.cost import SearchCost, builtin_n_params, search_cost

FIG_DIR = "figures"

# ----------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple


@dataclass(frozen=True)
class Table:
    header: tuple
    rows: tuple  # of tuples of str


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the report
    alt: str
    caption: str = ""


Block = Union[Heading, Paragraph, Bullets, Table, Figure]


def _md_text(s: str) -> str:
    # "λ* … λ*" would otherwise turn into emphasis.
    return s.replace("\\", "\\\\").replace("*", "\\*")


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md_text(b.text)}")
        elif isinstance(b, Paragraph):
            out.append(_md_text(b.text))
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_text(i)}" for i in b.items))
        elif isinstance(b, Table):
            cell = lambda c: _md_text(str(c)).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(cell(h) for h in b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            fig = f"![{b.alt}]({b.src})"
            out.append(fig + (f"\n\n*{_md_text(b.caption)}*" if b.caption else ""))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Figure):
            cap = f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else ""
            out.append(f'<figure><img src="{e(b.src)}" alt="{e(b.alt)}">{cap}</figure>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(out) + "\n</body>\n</html>\n"
    )


# ----------------------------------------------------------------------------- formatting


def _g(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _f2(x: float) -> str:
    """Exponents: always two decimals, as the verdicts print them."""
    return "–" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _sym(setting_name: str) -> str:
    return "τ" if setting_name == "tau" else "λ"


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s % 60:02d} s" if m else f"{s} s")


def _setting_label(name: str) -> str:
    if name == "tau":
        return "decay timescale τ (swept setting, log scale)"
    return "weight decay λ (swept setting, log scale)"


def _metric_label(metric: str) -> str:
    nice = {"val_loss": "validation loss", "best_val_loss": "best validation loss", "train_loss": "training loss"}.get(
        metric, metric
    )
    return f"{nice} (mean ± s.e.m. over seeds)"


# ----------------------------------------------------------------------------- figures


def _plot_curves(plt, key: tuple, curves: pd.DataFrame, optima: pd.DataFrame, metric: str, path: Path) -> None:
    """Loss against setting, one curve per size (μP's Figure 1 for a decay setting)."""
    task, optimizer, rule, axis = key
    name = str(curves["setting_name"].iloc[0])
    sym = _sym(name)
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
    labels.append(f"{sym}* (bars: 90% seed bootstrap)")
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


def _plot_drift(plt, group: tuple, optima: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """λ*/λ*(smallest size) against size, one line per rule: flat = the setting transfers."""
    from matplotlib.ticker import FuncFormatter, LogLocator

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
        sym = _sym(t["setting_name"])
        label = f"{rule} ({sym}*): slope {_f2(t['slope'])} [{_f2(t['slope_lo'])}, {_f2(t['slope_hi'])}]"
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


# ----------------------------------------------------------------------------- content


def _what_was_run(runs: pd.DataFrame, a: StudyAnalysis) -> Bullets:
    ok_runs = runs[runs["status"] != "failed"]
    names = (
        runs.groupby("rule")["setting_name"].first()
        if "setting_name" in runs
        else pd.Series("lambda", index=sorted(runs["rule"].unique()))
    )
    items = [
        f"Tasks: {', '.join(sorted(map(str, runs['task'].unique())))}",
        f"Optimizers: {', '.join(sorted(map(str, runs['optimizer'].unique())))}",
        "Rules: " + ", ".join(f"{r} ({_sym(n)})" for r, n in names.items()),
    ]
    for axis, g in runs.groupby("size_axis"):
        items.append(f"Size axis {axis}: {', '.join(str(s) for s in sorted(g['size'].unique()))}")
    for rule, g in ok_runs.groupby("rule"):
        s = np.sort(g["setting"].unique())
        per_dec = (len(s) - 1) / np.log10(s[-1] / s[0]) if len(s) > 1 and s[-1] > s[0] else float("nan")
        items.append(
            f"Grid for {rule}: {len(s)} values of {_sym(names.get(rule, 'lambda'))} "
            f"from {_g(s[0])} to {_g(s[-1])} ({_g(per_dec, 2)} per decade)"
        )
    seeds = sorted(runs["seed"].unique())
    items.append(f"Seeds: {len(seeds)} ({', '.join(map(str, seeds[:10]))}{', …' if len(seeds) > 10 else ''})")
    c = a.counts
    items.append(
        f"Runs: {sum(c.values())} — {c['ok']} ok, {c['not_learned']} did not learn and "
        f"{c['diverged']} diverged "
        f"(counted as infinite loss), {c['failed']} failed (excluded)"
    )
    items.append(_execution(runs))
    if "wall_time" in runs:
        items.append(f"Total wall time: {_duration(float(runs['wall_time'].fillna(0).sum()))} (summed over runs)")
    items.append(f"Metric: {a.metric} (lower is better); bootstrap: {a.n_boot} seed resamples, 90% intervals")
    return Bullets(tuple(items))


def _execution(runs: pd.DataFrame) -> str:
    """How the runs were executed: a run's numbers follow from its config, path and thread count."""

    def counts(col: str, unit: str = "") -> str:
        if col not in runs:
            return "not recorded"
        values = runs[col].where(runs[col].notna(), None)
        c = values.map(
            lambda v: (
                "not recorded" if v is None or v != v else f"{v:g}{unit}" if isinstance(v, float) else f"{v}{unit}"
            )
        ).value_counts()
        return ", ".join(f"{n} {k}" for k, n in c.items())

    return (
        f"Execution (a run's numbers follow from its config, path and threads): path {counts('path')}; "
        f"intra-op threads per run {counts('threads')}"
    )


def _verdict_table(table: pd.DataFrame) -> Table:
    has_acc = np.isfinite(table["acc_regret"].astype(float)).any()
    header = (
        ["task", "optimizer", "axis", "rule", "drift exponent [90% CI]", "fold change", "transfer regret (noise)"]
        + (["acc. lost"] if has_acc else [])
        + ["verdict"]
    )
    rows = []
    for _, t in table.iterrows():
        reg = (
            f"{100 * t['regret']:.2f}% ({100 * t['noise']:.2f}%)"
            if np.isfinite(t["regret"])
            else "∞ (diverges)"
            if t["regret"] == np.inf
            else "–"
        )
        row = [
            t["task"],
            t["optimizer"],
            t["size_axis"],
            t["rule"],
            f"{_f2(t['slope'])} [{_f2(t['slope_lo'])}, {_f2(t['slope_hi'])}]",
            f"×{_g(t['fold_change'], 3)}",
            reg,
        ]
        if has_acc:
            row.append(_g(t["acc_regret"], 3))
        rows.append(tuple(row + [t["verdict"]]))
    return Table(tuple(header), tuple(rows))


def _optima_table(optima: pd.DataFrame) -> Table:
    header = (
        "task",
        "optimizer",
        "axis",
        "rule",
        "size",
        "optimum λ*/τ*",
        "90% interval",
        "best grid point",
        "best loss",
        "seeds",
        "at grid edge",
    )
    rows = tuple(
        (
            o["task"],
            o["optimizer"],
            o["size_axis"],
            o["rule"],
            str(o["size"]),
            f"{_sym(o['setting_name'])}* = {_g(o['setting_star'])}",
            f"[{_g(o['lo'])}, {_g(o['hi'])}]",
            _g(o["grid_best"]),
            _g(o["best_loss"], 4),
            str(o["n_seeds"]),
            "EDGE: optimum outside grid" if o["at_edge"] else "no",
        )
        for _, o in optima.iterrows()
    )
    return Table(header, rows)


def _cost_table(costs: list) -> Table:
    has_p = any(np.isfinite(c.sweep_param_samples) for c in costs)
    header = [
        "task",
        "optimizer",
        "rule",
        "proxy → target",
        "settings",
        "proxy's best",
        "loss: transferred",
        "loss: target sweep",
        "regret",
        "core-s: transfer / sweep",
        "saved (time)",
    ]
    header += ["saved (params × samples)"] if has_p else []
    rows = []
    for c in costs:
        row = [
            c.task,
            c.optimizer,
            c.rule,
            f"{c.size_axis} {c.proxy_size} → {c.target_size}",
            str(c.n_settings),
            f"{_sym(c.setting_name)} = {_g(c.proxy_setting)}",
            _g(c.transfer_loss, 4),
            _g(c.sweep_loss, 4),
            f"{100 * c.regret:.2f}%" if np.isfinite(c.regret) else "∞ (diverges)",
            f"{c.transfer_seconds:.0f} / {c.sweep_seconds:.0f}",
            f"×{c.seconds_saved:.1f}",
        ]
        if has_p:
            row.append(f"×{c.params_saved:.1f}")
        rows.append(tuple(row))
    return Table(tuple(header), tuple(rows))


COST_TEXT = (
    "Two ways to find the setting at the largest size: sweep the grid at a small proxy (the "
    "largest size at most 1/16 of the target, else the smallest) and train the target once with "
    "the proxy's best grid setting under the rule; or sweep the whole grid at the target. Both "
    "losses are measured at the target (mean over seeds); compute is for one seed, in measured "
    "core-seconds and, for built-in models, in parameters × samples seen (∝ training FLOPs)."
)

HOW_TO_READ = (
    "Each loss figure is the picture of μP's Figure 1 for weight decay: validation loss against "
    "the swept decay setting, one curve per size, a star at each size's optimum (λ*, or τ* for "
    "τ-rules). If a rule makes the decay transfer, the stars line up vertically. "
    "The drift figure divides each rule's optimum by its optimum at the smallest size: a flat "
    "line (dashed) means the optimal setting transfers; a line parallel to the grey ∝ size^1 "
    "reference means the optimum grows in proportion to size. "
    "The drift exponent is the least-squares slope of log λ* against log size (λ* ∝ size^slope); "
    "its interval comes from resampling seeds with replacement. The fold change is "
    "λ*(largest)/λ*(smallest). Transfer regret is the relative loss increase at the largest size "
    "when the optimum found at the smallest size is reused there; noise is the relative standard "
    "error over seeds at the largest size's best setting, and a regret up to 2× noise is "
    "'within noise'. A rule 'transfers' only if the drift interval contains 0 and the regret is "
    "within noise. An optimum at the edge of the grid means the true optimum lies outside the "
    "swept range: no claim is made for that rule until the grid is widened. With few seeds the "
    "bootstrap intervals are too narrow (3 seeds allow only 10 distinct resamples), so read "
    "them as a lower bound on the uncertainty."
)


def _blocks(
    runs: pd.DataFrame,
    a: StudyAnalysis,
    title: str,
    drift_figs: list,
    curve_figs: list,
    costs: Sequence[SearchCost] = (),
) -> list:
    table = a.table()
    optima = a.optima_frame()
    blocks: list = [
        Heading(title, 1),
        Heading("What was run", 2),
        _what_was_run(runs, a),
        Heading("Verdict per rule", 2),
        _verdict_table(table),
    ]
    edge = table[table["code"] == "edge"]
    if len(edge):
        blocks.append(
            Paragraph(
                "Warning: for "
                + "; ".join(f"{r.rule} ({r.optimizer}, {r.task}, {r.size_axis})" for r in edge.itertuples())
                + " the best setting is at the edge of the swept grid for some sizes, so the true "
                "optimum lies outside the grid and these rows make no transfer claim."
            )
        )
    blocks += [Heading("Optimal setting per rule and size", 2), _optima_table(optima)]
    if costs:
        blocks += [Heading("Cost of finding the setting", 2), Paragraph(COST_TEXT), _cost_table(list(costs))]
    blocks += [Heading("Figures", 2), Heading("How the optimum moves with size", 3)]
    blocks += drift_figs
    blocks += [Heading("Loss against the decay setting", 3)]
    blocks += curve_figs
    blocks += [Heading("How to read this", 2), Paragraph(HOW_TO_READ)]
    return blocks


# ----------------------------------------------------------------------------- public


def write_report(
    runs: pd.DataFrame,
    out_dir: Union[str, Path],
    title: str = "wdscale study",
    analysis: Optional[StudyAnalysis] = None,
    metric: str = "val_loss",
) -> dict:
    """Write report.md, report.html and figures/*.png into out_dir.

    Returns the paths written: "md" -> report.md, "html" -> report.html, and for each figure
    its path relative to out_dir ("figures/curves_<task>_<optimizer>_<rule>_<axis>.png",
    "figures/drift_<task>_<optimizer>_<axis>.png") -> its full path. analysis defaults to
    analyze(runs, metric); when given, its own metric is the one plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if analysis is None:
        analysis = analyze(runs, metric=metric)
    out = Path(out_dir)
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    curves = mean_curves(runs, metric=analysis.metric)
    optima = analysis.optima_frame()
    table = analysis.table()
    files: dict = {}

    drift_figs = []
    for group, g in optima.groupby(["task", "optimizer", "size_axis"], sort=True):
        rel = f"{FIG_DIR}/drift_{_slug(*group)}.png"
        t = table[(table["task"] == group[0]) & (table["optimizer"] == group[1]) & (table["size_axis"] == group[2])]
        _plot_drift(plt, group, g, t, out / rel)
        files[rel] = out / rel
        drift_figs.append(
            Figure(
                rel,
                f"optimum against {group[2]} — {group[1]} — {group[0]}",
                "Optimal setting relative to the smallest size, per rule "
                "(bars: 90% seed-bootstrap interval; dashed: transfers).",
            )
        )

    curve_figs = []
    for key in analysis.series:
        sel = np.logical_and.reduce([curves[k] == v for k, v in zip(SERIES_KEYS, key)])
        osel = np.logical_and.reduce([optima[k] == v for k, v in zip(SERIES_KEYS, key)])
        rel = f"{FIG_DIR}/curves_{_slug(key[0], key[1], key[2], key[3])}.png"
        _plot_curves(plt, key, curves[sel], optima[osel], analysis.metric, out / rel)
        files[rel] = out / rel
        curve_figs.append(
            Figure(
                rel,
                f"{analysis.metric} against setting — {' — '.join(map(str, key))}",
                f"{key[2]} — {key[1]} — {key[0]}: one curve per {key[3]}.",
            )
        )

    costs = []
    # a proxy is only cheaper where compute grows with size: not on the batch-size axis
    cheap_proxy = runs[runs["size_axis"] != "batch_size"]
    if {"wall_time", "steps", "batch_size"}.issubset(runs.columns) and len(cheap_proxy):
        costs = search_cost(cheap_proxy, metric=analysis.metric, n_params=builtin_n_params(cheap_proxy))
    blocks = _blocks(runs, analysis, title, drift_figs, curve_figs, costs)
    (out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(to_html(blocks, title), encoding="utf-8")
    files["md"] = out / "report.md"
    files["html"] = out / "report.html"
    return files
