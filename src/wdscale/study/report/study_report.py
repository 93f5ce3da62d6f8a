"""Turn a study's runs into report.md, report.html and the figures they embed: what the report
says (the blocks of `document.py`, rendered twice) and where it writes them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from ...errors import WdscaleError
from ...schedules import Schedule
from ..analysis.advise import Advice, JointAdvice, JointLaw, Law, advise, advise_joint
from ..analysis.cost import SearchCost, search_cost
from ..analysis.joint import JointAnalysis, analyze_joint, fixed_lr_slice, is_joint, point_means
from ..analysis.study_analysis import (
    SERIES_KEYS,
    StudyAnalysis,
    analyze,
    exponent,
    mean_curves,
    number,
    percent,
    setting_symbol,
    with_setting_names,
)
from ..plan.config import REGIME_DEFAULTS
from ..run.store import with_regime_defaults
from .document import Bullets, Figure, Heading, Paragraph, Table, to_html, to_markdown
from .figures import plot_curves, plot_drift, plot_frontier, plot_joint_plane

FIG_DIR = "figures"

# ----------------------------------------------------------------------------- formatting


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s % 60:02d} s" if m else f"{s} s")


# ----------------------------------------------------------------------------- content


def _what_was_run(runs: pd.DataFrame, a: StudyAnalysis) -> Bullets:
    runs = with_setting_names(runs)
    ok_runs = runs[runs["status"] != "failed"]
    names = runs.groupby("rule")["setting_name"].first()
    items = [
        f"Tasks: {', '.join(sorted(map(str, runs['task'].unique())))}",
        f"Optimizers: {', '.join(sorted(map(str, runs['optimizer'].unique())))}",
        "Rules: " + ", ".join(f"{r} ({setting_symbol(n)})" for r, n in names.items()),
    ]
    for axis, g in runs.groupby("size_axis"):
        items.append(f"Size axis {axis}: {', '.join(str(s) for s in sorted(g['size'].unique()))}")
    for rule, g in ok_runs.groupby("rule"):
        s = np.sort(g["setting"].unique())
        per_dec = (len(s) - 1) / np.log10(s[-1] / s[0]) if len(s) > 1 and s[-1] > s[0] else float("nan")
        items.append(
            f"Grid for {rule}: {len(s)} values of {setting_symbol(names.get(rule, 'lambda'))} "
            f"from {number(s[0])} to {number(s[-1])} ({number(per_dec, 2)} per decade)"
        )
    items.append(_regime(runs))
    seeds = sorted(runs["seed"].unique())
    items.append(f"Seeds: {len(seeds)} ({', '.join(map(str, seeds[:10]))}{', …' if len(seeds) > 10 else ''})")
    c = a.counts
    items.append(
        f"Runs: {sum(c.values())} — {c['ok']} ok, {c['not_learned']} did not learn and "
        f"{c['diverged']} diverged "
        f"(counted as infinite loss), {c['failed']} failed (excluded)"
        + (f"; left out, too few settings after failed runs: {', '.join(a.sizes_dropped)}" if a.sizes_dropped else "")
    )
    failed = runs[runs["status"] == "failed"]
    if len(failed) and "error" in failed:
        first = failed.iloc[0]
        why = str(first["error"]).split("\n")[0].split("; log ")[0]
        log = f"logs/{first['run_id']}.log"
        items.append(
            f"First failed run: {first['rule']} {first['size_axis']}={first['size']} "
            f"setting {number(first['setting'])} lr {number(first['lr'])}: {why}"
            + (f" (its output: {log})" if "; log " in str(first["error"]) else "")
        )
    items.append(_execution(runs))
    if "wall_time" in runs:
        items.append(f"Total wall time: {_duration(float(runs['wall_time'].fillna(0).sum()))} (summed over runs)")
    items.append(
        f"Metric: {a.metric} (lower is better); bootstrap: {a.n_boot} resamples of the whole pipeline "
        "(seeds drawn per size and setting), 90% intervals"
    )
    items.append(_stability(a))
    return Bullets(tuple(items))


def _stability(a: StudyAnalysis) -> str:
    """How stable the verdicts are under the bootstrap's random seed."""
    panel = max((v.panel for v in a.verdicts), default=1)
    if panel <= 1:
        return "Verdicts: taken under one bootstrap seed (no stability check)"
    shaky = [v for v in a.verdicts if v.agree < v.panel]
    if not shaky:
        return f"Verdicts: every one the same under {panel} bootstrap random seeds"
    names = ", ".join(f"{v.rule} ({v.agree} of {v.panel})" for v in shaky)
    return (
        f"Verdicts: {len(a.verdicts) - len(shaky)} of {len(a.verdicts)} the same under {panel} bootstrap random "
        f"seeds; reported not resolved because the seeds disagree: {names}"
    )


def _regime(runs: pd.DataFrame) -> str:
    """How the runs trained: the lr schedule, epochs and optimizer steps (part of each run's config;
    runs stored before schedules existed trained at a constant lr)."""
    runs = with_regime_defaults(runs.copy())
    cols = [*REGIME_DEFAULTS, *(["epochs"] if "epochs" in runs else [])]
    parts = []
    for key, g in runs.groupby(cols, sort=True):
        d = dict(zip(cols, key))
        s = Schedule(str(d["schedule"]), float(d["warmup"]), float(d["final_lr"]), float(d["decay_fraction"]))
        what = ["constant lr" if s.is_constant else f"lr schedule {s.describe()}"]
        # runs that took steps: a store may hold `ok` runs of 0 steps, from before such runs failed
        stepped = g[(g["status"] == "ok") & (g["steps"] > 0)] if "steps" in g else g.iloc[:0]
        if not s.is_constant and len(stepped):
            mean = s.mean_multiplier(int(stepped["steps"].median()))
            what += [
                f"mean lr multiplier {mean:.3g} (a τ, read at the peak lr as the rules define it, is τ/{mean:.3g} "
                "averaged over the run)"
            ]
        # runs imported with their epochs not known store 0 (`run.external`)
        what += [f"{int(d['epochs'])} epochs"] if "epochs" in d and d["epochs"] > 0 else []
        steps = stepped["steps"] if "steps" in g else pd.Series(dtype=float)
        what += [f"{int(steps.median())} optimizer steps (median run)"] if len(steps) else []
        parts.append(", ".join(what) + (f" ({len(g)} runs)" if len(g) < len(runs) else ""))
    return "Training regime: " + "; ".join(parts)


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


def interval_end_digits(margin: float) -> int:
    """The decimals an interval end in percent is printed to: its last digit one its Monte Carlo
    margin (half the range of the end over bootstrap RNG seeds, a fraction) leaves standing, i.e.
    a unit of that digit at least twice the margin: 1 (tenths), 0 (units) or −1 (tens); 1 for NaN."""
    m = 100 * margin if np.isfinite(margin) else 0.0
    return 1 if 2 * m <= 0.1 else 0 if 2 * m <= 1.0 else -1


def interval_end_percent(end: float, margin: float) -> str:
    """An interval end (a fraction) in percent, to `interval_end_digits(margin)`; "–" when not
    finite; "> 0" for an end above 0 that its digit would round to 0 (a "costs" verdict needs a
    lower end above 0 under every bootstrap seed: printed as 0 it would contradict its verdict).

    Args:
        end: the interval end, a fraction (0.43 for 43 %).
        margin: its Monte Carlo margin, a fraction; NaN (no panel) prints one decimal.

    Returns:
        The end as text, e.g. "43.0", "43", "40" or "> 0"."""
    if not np.isfinite(end):
        return "–"
    digits = interval_end_digits(margin)
    shown = round(100 * end, digits)
    if end > 0 and shown == 0:
        return "> 0"
    return f"{shown:.{max(digits, 0)}f}"


# a printed end's unit against its Monte Carlo margin (half the end's range over the panel's
# streams): the median of another panel of streams must land within one unit of the printed end,
# rounding included; at twice the margin about one continuous end in ten did not (the joint
# studies' gaps to their sweep's best, §10), at four times none of the committed studies' did
UNIT_PER_MARGIN = 4


def end_decimals(margin: float, finest: int) -> int:
    """The decimals an interval end is printed to: at most `finest`, and fewer (down to tens,
    hundreds: negative) until a unit of the last digit is at least `UNIT_PER_MARGIN` times the
    end's Monte Carlo margin (half its range over the bootstrap RNG seeds of a stability panel),
    in the printed unit; `finest` where the margin is 0 or unknown (NaN)."""
    if not np.isfinite(margin) or margin <= 0:
        return finest
    return min(finest, math.floor(-math.log10(UNIT_PER_MARGIN * margin) + 1e-9))


def interval_end_text(end: float, margin: float, finest: int, scale: float = 1.0, lower: bool = False) -> str:
    """An interval end × `scale` (100 for a fraction in percent) to `end_decimals(margin × scale,
    finest)`, a minus sign "−"; "–" when not finite. Where that digit is coarser than the end
    itself (it would round it to 0 or to a power of ten above it) but the end is told from 0 (it
    exceeds the panel's whole range, twice its margin): a lower end above 0 reads "> 0", any
    other is printed to its own leading digit with that range beside it, "70 ± 20".

    Args:
        end: the interval end (the stability panel's median).
        margin: its Monte Carlo margin, in the end's units; NaN: printed to `finest`.
        finest: the most decimals printed (2 for a slope, 1 for a percentage).
        scale: what the end and its margin are multiplied by for printing.
        lower: whether it is an interval's lower end.

    Returns:
        The end as text, e.g. "0.42", "−1.3", "40", "> 0", "70 ± 20"."""
    if not np.isfinite(end):
        return "–"
    digits = end_decimals(scale * margin, finest)
    value, spread = scale * end, 2 * scale * margin
    if abs(value) < 10.0**-digits and abs(value) > spread:  # the digit would erase the end
        if lower and value > 0:
            return "> 0"
        if spread > 0:
            lead = -math.floor(math.log10(spread))  # the range to one significant digit, rounded up
            r = math.ceil(spread * 10.0**lead) / 10.0**lead
            lead = -math.floor(math.log10(r) + 1e-9)
            return f"{round(value, lead):.{max(lead, 0)}f} ± {r:.{max(lead, 0)}f}".replace("-", "−")
    shown = round(value, digits) + 0.0  # no "-0"
    return f"{shown:.{max(digits, 0)}f}".replace("-", "−")


def _regret_cell(t) -> str:
    """Measured transfer regret with its whole-pipeline interval; never a fitted value."""
    if t["regret"] == np.inf:
        return "∞ (diverges or does not learn)"
    if not np.isfinite(t["regret"]):
        return "not measured" if str(t["regret_reason"]).startswith("not measured") else "–"
    # percent(): the verdict's words print the same numbers the same way (one value per number)
    cell = f"{percent(t['regret'])} [{percent(t['regret_lo'])}, {percent(t['regret_hi'])}]"
    if np.isfinite(t["boot_measured"]) and t["boot_measured"] < 1:
        cell += f" ({100 * t['boot_measured']:.0f}% of resamples measured)"
    return cell


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.2f}%"


def _verdict_table(table: pd.DataFrame) -> Table:
    has_acc = np.isfinite(table["acc_regret"].astype(float)).any()
    header = (
        [
            "task",
            "optimizer",
            "axis",
            "rule",
            "drift exponent of the best grid point [90% CI]",
            "drift exponent (fit)",
            "fold change",
            "transfer regret, measured [90% CI]",
            "detectable regret",
            "noise (seed s.e.m.)",
        ]
        + (["acc. lost"] if has_acc else [])
        + ["verdict"]
    )
    rows = []
    for _, t in table.iterrows():
        row = [
            t["task"],
            t["optimizer"],
            t["size_axis"],
            t["rule"],
            f"{exponent(t['slope'])} [{exponent(t['slope_lo'])}, {exponent(t['slope_hi'])}]",
            exponent(t["slope_fit"]),
            f"×{number(t['fold_change'], 3)}",
            _regret_cell(t),
            percent(t["detectable"]),  # as the verdict's words print it
            _pct(t["noise"]),
        ]
        if has_acc:
            row.append(number(t["acc_regret"], 3))
        rows.append(tuple(row + [t["verdict"]]))
    return Table(tuple(header), tuple(rows))


def _optima_table(optima: pd.DataFrame) -> Table:
    header = (
        "task",
        "optimizer",
        "axis",
        "rule",
        "size",
        "best grid point λ*/τ*",
        "90% interval",
        "optimum (fit)",
        "best loss (trained)",
        "noise (seed s.e.m.)",
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
            f"{setting_symbol(o['setting_name'])}* = {number(o['setting_star'])}",
            f"[{number(o['lo'])}, {number(o['hi'])}]",
            number(o["setting_star_fit"]),
            number(o["best_loss"], 4),
            _pct(o["noise"]),
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
            f"{setting_symbol(c.setting_name)} = {number(c.proxy_setting)}",
            number(c.transfer_loss, 4) if np.isfinite(c.transfer_loss) else "not measured",
            number(c.sweep_loss, 4),
            percent(c.regret) if np.isfinite(c.regret) else "–" if c.reason else "∞ (diverges or does not learn)",
            f"{number(c.transfer_seconds, 3)} / {c.sweep_seconds:.0f}"
            if c.reason
            else f"{c.transfer_seconds:.0f} / {c.sweep_seconds:.0f}",
            f"×{number(c.seconds_saved, 2)}" if c.reason else f"×{c.seconds_saved:.1f}",
        ]
        if has_p:
            row.append(f"×{number(c.params_saved, 2)}" if c.reason else f"×{c.params_saved:.1f}")
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
    "the swept decay setting, one curve per size, a star at each size's best trained setting (λ*, "
    "or τ* for τ-rules). If a rule makes the decay transfer, the stars line up vertically. "
    "The drift figure divides each rule's optimum by its optimum at the smallest size: a flat "
    "line (dashed) means the optimal setting transfers; a line parallel to the grey ∝ size^1 "
    "reference means the optimum grows in proportion to size. "
    "Every loss, best loss and regret here is a seed mean of runs that were trained; nothing is "
    "read off a fitted curve. λ* is the grid point with the lowest mean loss, so it moves in grid "
    "steps. Columns marked (fit) are predictions: the vertex of a parabola in log λ through the "
    "points around the grid minimum, an estimate of where the optimum lies between grid points "
    "(no run trained it), and its drift exponent. "
    "The drift exponent is the least-squares slope of log λ* against log size (λ* ∝ size^slope); "
    "the fold change is λ*(largest)/λ*(smallest). Transfer regret is the relative loss increase "
    "at the largest size when the best grid setting of the smallest size is trained there, "
    "against the best loss measured there; when that setting was not trained at the largest "
    "size the regret is 'not measured'. Intervals come from bootstrapping the whole pipeline: at "
    "every size and setting the seeds are resampled with replacement, the smallest size's choice "
    "is made again (so it moves when seeds disagree), and the regret and drift recomputed. "
    "Noise is the seed standard error at the largest size's best setting, relative to its loss; "
    "the detectable regret is 2·√2 × noise (a difference of two seed means, each with that "
    "error, below two standard errors cannot be told from 0). A regret interval below the "
    "detectable regret is 'within noise'; one that spans both 0 and the detectable regret is "
    "'not resolved': more seeds, or a finer grid near the optimum, are needed to decide. A rule "
    "'transfers' only if the drift interval contains 0 and the regret is within noise. An "
    "optimum at the edge of the grid means the true optimum lies outside the swept range: no "
    "claim is made for that rule until the grid is widened. With few seeds the bootstrap "
    "intervals are too narrow (with 3 seeds a setting's mean takes only 10 distinct values over "
    "resamples, with 2 only 3), so read them as a lower bound on the uncertainty."
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
    return blocks


# ----------------------------------------------------------------------------- advice

ADVICE_FACTORS = (4, 16)

ADVICE_TEXT = (
    "What this study predicts for the next sizes, {factors}× its largest ({axis} {largest}): per rule, "
    "the law fitted to the measured optima (a straight line in log-log), evaluated there. Every value "
    "is a PREDICTION (nothing was trained there), with a 90 % interval; 16× is beyond the 4× this "
    "tool extrapolates without a warning. `wdscale advise DIR --target-{flag} N` prints the same for "
    "any size, with a ready `wdscale.optimizer(...)` call; `--holdout` checks the laws on the largest "
    "size trained."
)


def _predicted(law: Union[Law, JointLaw]) -> str:
    """A law's prediction with its interval: the setting, and for a joint study the lr too."""
    sym = setting_symbol(law.setting_name)
    if isinstance(law, JointLaw):
        return (
            f"lr {number(law.lr)} [{number(law.lr_lo)}, {number(law.lr_hi)}]; "
            f"{sym} {number(law.setting)} [{number(law.setting_lo)}, {number(law.setting_hi)}]"
        )
    return f"{sym} {number(law.predicted)} [{number(law.lo)}, {number(law.hi)}]"


def _opening(advice: Optional[Union[Advice, JointAdvice]], table: Optional[pd.DataFrame]) -> Paragraph:
    """Two plain sentences before anything else: which rule to use, how sure, and why (the
    recommendation at 4× the largest size, its regret as the verdict table prints it)."""
    if advice is None or not advice.recommended:
        why = advice.why if advice is not None else "no advice could be fitted to these runs"
        return Paragraph(f"No rule can be recommended from this study yet. Why: {why}.")
    rule = advice.recommended
    axis = advice.target_axis if isinstance(advice, Advice) else advice.axis
    measured = ""
    if table is not None and (table["rule"] == rule).any():
        t = table[table["rule"] == rule].iloc[0]
        if np.isfinite(t["regret"]):
            measured = (
                f": of the {table['rule'].nunique()} rules tried, its best decay setting at the smallest {axis} lost "
                f"the least when reused at the largest ({percent(t['regret'])}, 90 % interval "
                f"[{percent(t['regret_lo'])}, {percent(t['regret_hi'])}])"
            )
    first = f"Use {rule}{'' if advice.resolved else ' for now'}{measured}."
    reason = advice.why.split(": ", 1)[-1] if advice.why.startswith(f"{rule}: ") else advice.why
    sure = "Sure" if advice.resolved else "Not sure (more seeds, or a finer grid near the optimum, would decide it)"
    return Paragraph(f"{first} {sure}: {reason}.")


def _advice_blocks(
    runs: pd.DataFrame, joint: bool, metric: str, analysis: Optional[StudyAnalysis] = None
) -> tuple[list, Optional[Union[Advice, JointAdvice]]]:
    """The advice section, and the advice at the first target (what the report opens with)."""
    axis = str(runs["size_axis"].iloc[0])
    largest = int(runs["size"].max())
    targets = [f * largest for f in ADVICE_FACTORS]
    blocks: list = [
        Heading("Advice for the next sizes", 2),
        Paragraph(
            ADVICE_TEXT.format(
                factors=" and ".join(map(str, ADVICE_FACTORS)), axis=axis, largest=largest, flag=axis.replace("_", "-")
            )
        ),
    ]
    rows, whys = [], []
    first: Optional[Union[Advice, JointAdvice]] = None
    try:
        for t in targets:
            advice = (
                advise_joint(runs, t, metric=metric, n_boot=200)
                if joint
                else advise(runs, t, metric=metric, n_boot=300, analysis=analysis)
            )
            first = first or advice
            rows += [(f"{axis} {t}", law.rule, _predicted(law), law.warning or "–") for law in advice.laws]
            whys.append(f"{axis} {t}: " + (advice.why if advice.recommended else "no recommendation: " + advice.why))
    except WdscaleError as e:
        return blocks + [Paragraph(f"No advice: {e}")], None
    blocks.append(Table(("target", "rule", "predicted optimum [90%]", "warning"), tuple(rows)))
    blocks.append(Bullets(tuple(f"Recommended at {w}" for w in whys)))
    return blocks, first


# ----------------------------------------------------------------------------- a joint study

JOINT_TEXT = (
    "This study swept the learning rate together with the decay setting. Each rule is a recipe: a "
    "parameterisation (its own per-layer lr scaling: standard for sum/decoupled/per_sample, μP for "
    "mup/timescale/sqrt_width) with a decay rule, trained on the same base lrs. The joint optimum is "
    "the trained (lr, setting) with the lowest seed-mean loss; the sections after this one show the "
    "λ-only view inside the same study: the runs at the fixed lr η = {fixed}."
)

CHOICES_TEXT = (
    "Ways to choose the (lr, setting) of the largest size ({target}), each measured there: the "
    "seed-mean loss of the runs trained at the target at the chosen point, and its gap to the best "
    "seed-mean loss over every recipe and point trained at the target ({best}, {best_rule}). "
    "'transfer (lr and setting)': the recipe tuned jointly at a smaller size, its optimum carried "
    "over by its own rule; 'transfer (setting only, fixed lr)': tuned over λ only at the fixed lr; "
    "'sweep at target': every point at the target; 'TPE at target (n trials)': Optuna's TPE "
    "sampler over the recipe's coarse grid at the target, replayed on the trained runs (one seed "
    "per trial), median over {repeats} sampler seeds, its interval the 90 % spread over them. "
    "Compute is the search's: one seed per point searched (a transfer adds its one target run), "
    "in measured core-seconds and parameters × samples seen. Gap intervals of a transfer and a "
    "sweep are 90 % whole-pipeline bootstrap intervals (every point's seeds resampled at every "
    "size, the choice made again); a best loss is a minimum over many noisy points, so resampled "
    "bests sit lower and an interval may lie just above the measured gap. TPE searches the coarse "
    "grid only (the points trained at every size): an optimum that refinement found outside it is "
    "out of TPE's reach. A gap whose interval reaches 0 is not resolved from 0."
)


def _triple(t: tuple, margins: tuple = (np.nan, np.nan)) -> str:
    """A slope and its interval, each end to the digit its Monte Carlo margin leaves standing."""
    lo, hi = (interval_end_text(e, m, 2, lower=k == 0) for k, (e, m) in enumerate(zip(t[1:], margins)))
    return f"{exponent(t[0])} [{lo}, {hi}]"


def _joint_blocks(j: JointAnalysis, axis: str, lrs: list, n_runs: int, figs: list) -> list:
    optima = j.optima_frame()
    rows = tuple(
        (
            o["rule"],
            str(o["size"]),
            number(o["lr"]),
            number(o["setting"]),
            number(o["product"]),
            number(o["loss"], 4),
            _pct(o["noise"]),
            str(o["n_seeds"]),
            ", ".join(n for n, e in (("lr", o["lr_edge"]), ("setting", o["setting_edge"])) if e) or "no",
            number(o["fixed_lr_setting"]),
        )
        for _, o in optima.iterrows()
    )
    optima_table = Table(
        (
            "rule", axis, "lr*", "setting*", "η*·λ*", "best loss (trained)", "noise", "seeds", "at edge",
            f"setting* at fixed lr {number(j.fixed_lr)}",
        ),
        rows,
    )  # fmt: skip
    drift_table = Table(
        ("rule", "lr* slope", "setting* slope", "η*·λ* slope", "setting* slope at fixed lr"),
        tuple(
            (
                d.rule,
                _triple(d.lr_slope, d.lr_slope_mc),
                _triple(d.setting_slope, d.setting_slope_mc),
                _triple(d.product_slope, d.product_slope_mc),
                _triple(d.fixed_lr_setting_slope, d.fixed_lr_setting_slope_mc),
            )
            for d in j.drifts
        ),
    )
    c = j.choices_frame()

    def gap(r) -> str:
        if not np.isfinite(r["gap"]):
            return "∞ (diverges or does not learn)" if r["gap"] == np.inf else "not measured"
        lo, hi = (interval_end_text(r[k], r[f"{k}_mc"], 2, 100, lower=k == "lo") for k in ("lo", "hi"))
        return f"{_pct(r['gap'])} [{lo}{'%' * (lo != '–')}, {hi}{'%' * (hi != '–')}]"

    choice_table = Table(
        (
            "strategy", "recipe", "proxy", "lr", "setting", "loss at target", "gap [90%]", "core-s",
            "params × samples", "points",
        ),
        tuple(
            (
                r["strategy"], r["rule"], "–" if not np.isfinite(r["proxy_size"]) else str(int(r["proxy_size"])),
                number(r["lr"]), number(r["setting"]), number(r["loss"], 4), gap(r), number(r["core_s"], 3),
                number(r["params_samples"], 3), str(r["n_points"]),
            )
            for _, r in c.iterrows()
        ),
    )  # fmt: skip
    compute = (
        f"Compute: the joint study took {j.core_s:.0f} core-seconds; its runs at the fixed lr (the λ-only "
        f"study inside it) {j.fixed_lr_core_s:.0f} (×{j.core_s / j.fixed_lr_core_s:.1f})."
        if j.fixed_lr_core_s
        else ""
    )
    blocks: list = [
        Heading("λ and lr together", 2),
        Paragraph(
            JOINT_TEXT.format(fixed=number(j.fixed_lr))
            + f" Base lrs swept: {', '.join(map(number, lrs))}; {n_runs} runs in all (the list above counts "
            "those at the fixed lr)."
        ),
        Heading("Joint optimum per recipe and size", 3),
        optima_table,
        Heading("How the joint optimum moves", 3),
        Paragraph(
            "Least-squares slopes of log lr*, log setting*, log η*·λ* and of the fixed-lr view's log "
            "setting* against log size, over the measured optima (90 % whole-pipeline bootstrap "
            "intervals). η*·λ* with a slope interval around 0 while λ* at the fixed lr moves says it is "
            "the timescale that stays put when the lr is tuned too."
        ),
        drift_table,
        Heading("What each way of choosing costs and loses", 3),
        Paragraph(
            CHOICES_TEXT.format(target=j.target_size, best=number(j.best.loss, 4), best_rule=j.best.rule, repeats=10)
        ),
        choice_table,
    ]
    if compute:
        blocks.append(Paragraph(compute))
    blocks += [Paragraph(n) for n in j.notes]
    blocks += figs
    return blocks


def _joint_section(runs: pd.DataFrame, out: Path, plt, metric: str, base_lr: Optional[float], files: dict) -> list:
    j = analyze_joint(runs, metric=metric, base_lr=base_lr)
    axis = str(runs["size_axis"].iloc[0])
    means = point_means(runs, metric)
    optima = j.optima_frame()
    figs: list = []
    rel = f"{FIG_DIR}/joint_frontier.png"
    plot_frontier(plt, j.choices_frame(), f"{axis} {j.target_size}", out / rel)
    files[rel] = out / rel
    figs.append(Figure(rel, "tuning-cost frontier", "Gap to the target's best loss against tuning compute (measured)."))
    for rule in sorted(means["rule"].unique()):
        rel = f"{FIG_DIR}/joint_plane_{_slug(rule)}.png"
        plot_joint_plane(plt, rule, means[means["rule"] == rule], optima[optima["rule"] == rule], axis, out / rel)
        files[rel] = out / rel
        figs.append(Figure(rel, f"loss over (lr, setting) — {rule}", f"{rule}: one panel per {axis}."))
    return _joint_blocks(j, axis, sorted(runs["lr"].unique()), len(runs), figs)


# ----------------------------------------------------------------------------- public


def write_report(
    runs: pd.DataFrame,
    out_dir: Union[str, Path],
    title: str = "wdscale study",
    analysis: Optional[StudyAnalysis] = None,
    metric: str = "val_loss",
    base_lr: Optional[float] = None,
) -> dict:
    """Write report.md, report.html and figures/*.png into out_dir.

    Returns the paths written: "md" -> report.md, "html" -> report.html, and for each figure
    its path relative to out_dir ("figures/curves_<task>_<optimizer>_<rule>_<axis>.png",
    "figures/drift_<task>_<optimizer>_<axis>.png") -> its full path. analysis defaults to
    analyze(runs, metric); when given, its own metric is the one plotted. A joint study (lr swept
    too) gets a "λ and lr together" section (figures/joint_*.png) and the rest of the report on
    its λ-only view at the fixed lr: the coarse lr nearest `base_lr` (default: the middle one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    files: dict = {}
    joint: list = []
    joint_study = is_joint(runs)
    if joint_study:
        advice, first = _advice_blocks(runs, True, metric if analysis is None else analysis.metric)
        joint = _joint_section(runs, out, plt, metric if analysis is None else analysis.metric, base_lr, files)
        runs = fixed_lr_slice(runs, base_lr)
    if analysis is None:
        analysis = analyze(runs, metric=metric)
    if not joint_study:  # the advice quotes the regrets of this analysis: one value per number
        advice, first = _advice_blocks(runs, False, analysis.metric, analysis)
    curves = mean_curves(runs, metric=analysis.metric)
    optima = analysis.optima_frame()
    table = analysis.table()

    drift_figs = []
    for group, g in optima.groupby(["task", "optimizer", "size_axis"], sort=True):
        rel = f"{FIG_DIR}/drift_{_slug(*group)}.png"
        t = table[(table["task"] == group[0]) & (table["optimizer"] == group[1]) & (table["size_axis"] == group[2])]
        plot_drift(plt, group, g, t, out / rel)
        files[rel] = out / rel
        drift_figs.append(
            Figure(
                rel,
                f"optimum against {group[2]} — {group[1]} — {group[0]}",
                "Best trained grid setting relative to the smallest size's, per rule "
                "(bars: 90% whole-pipeline bootstrap interval; dashed: transfers).",
            )
        )

    curve_figs = []
    for key in analysis.series:
        sel = np.logical_and.reduce([curves[k] == v for k, v in zip(SERIES_KEYS, key)])
        osel = np.logical_and.reduce([optima[k] == v for k, v in zip(SERIES_KEYS, key)])
        rel = f"{FIG_DIR}/curves_{_slug(key[0], key[1], key[2], key[3])}.png"
        plot_curves(plt, key, curves[sel], optima[osel], analysis.metric, out / rel)
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
        costs = search_cost(cheap_proxy, metric=analysis.metric)
    body = _blocks(runs, analysis, title, drift_figs, curve_figs, costs)
    # the answer in two sentences, what was run, then the glossary before the first table of numbers
    opening = [_opening(first, None if joint_study else table)]
    glossary = [Heading("How to read this", 2), Paragraph(HOW_TO_READ)]
    blocks = body[:1] + opening + body[1:3] + glossary + joint
    blocks += [Heading("The λ-only view at the fixed lr", 2)] if joint else []
    blocks += body[3:] + advice
    (out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(to_html(blocks, title), encoding="utf-8")
    files["md"] = out / "report.md"
    files["html"] = out / "report.html"
    return files
