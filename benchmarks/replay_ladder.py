"""The ladder's variants measured in replay on the committed joint sweeps (issue 34, item 3).

Each target of §10 is tuned by `replay_tune` (the sweep answers every run: nothing is trained) at
budgets 0.1 and 0.25 of one recipe's sweep, once per seed shuffle (shuffle 0: the ladder's k-th
seed is the sweep's k-th; others: one order of a size's seeds, shared by its points so they stay
paired, `SweepOracle`), and its pick scored on the sweep: the sweep's seed-mean at the pick against
the sweep's best seed-mean at the target over every recipe. A variant is a rung-optimum rule
(`tune_study`'s optimum=, --optima) crossed with a split of the target's runs between candidates
and seeds (its seeding=, --seedings); "mean" is the default climb, "mean+race" the paired race.
Prints markdown tables: per target × budget, the median gap of each variant over the shuffles (and
its range), the floor of any climb on the bottom grid's lattice (`lattice_gap`: the sweep's best
among the points a ladder can place, against its best over all, refined points between the
lattice's included), the share of the runs asked for that the sweep did not hold; then per target
× budget each variant's share of replays within 1 % of the sweep's best and its mean spend (the
climb's parameters × samples over one recipe's sweep at the target); then the medians over every
target, the share within 1 % and the mean spend over every replay.

The rungs are sizes each sweep trained (§10's tunes climbed target/16, target/4, target, which two
sweeps hold only in part): joint_width, joint_digits, joint_data at their three sizes; the
transformer at width 64 over 8, 32, 64; the held-out targets beside their preset's sweep —
joint_width_1024 over 32, 128 (joint_width's), 1024, joint_shakespeare_128 over 8, 32
(joint_shakespeare's), 128, as its tune climbed.

    PYTHONPATH=src .venv/bin/python benchmarks/replay_ladder.py [--shuffles 16] [--optima mean,risk,local]
        [--seedings close,second,race]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import time
from pathlib import Path

import numpy as np

from wdscale.errors import WdscaleError
from wdscale.study.plan.tasks import get_task
from wdscale.study.search.replay import lattice_gap, load_sweep, replay_tune, sweep_plan
from wdscale.study.search.tune import OPTIMA, SEEDINGS

FINDINGS = Path(__file__).resolve().parent.parent / "docs" / "findings"
# target name -> (the studies pooled into its sweep, the plan's study, the target, the rungs)
TARGETS = {
    "joint_width": (["joint_width"], 512, [32, 128, 512]),
    "joint_digits": (["joint_digits"], 512, [32, 128, 512]),
    "joint_data": (["joint_data"], 4000, [250, 1000, 4000]),
    "joint_shakespeare": (["joint_shakespeare"], 64, [8, 32, 64]),
    "joint_width_1024": (["joint_width_1024", "joint_width"], 1024, [32, 128, 1024]),
    "joint_shakespeare_128": (["joint_shakespeare_128", "joint_shakespeare"], 128, [8, 32, 128]),
}
BUDGETS = (0.1, 0.25)
NEEDS = re.compile(r"needs a budget ≥ ([0-9.]+)")


def affordable(sweep, plan, target: int, rungs: list[int], budget: float, task) -> float:
    """`budget`, or where `tune_study` refuses it (the bottom grid beside one target run is over it:
    joint_data's at a tenth, §10, and the transformer's from width 8) the budget its refusal names."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            replay_tune(sweep, plan, target, rungs=rungs, budget=budget, task=task)
    except WdscaleError as e:
        found = NEEDS.search(str(e))
        if found is None:
            raise
        return float(found.group(1))
    return budget


def _within(g: list[float], percent: float = 1.0) -> float:
    """The share of the replays whose gap (%) is at most `percent` (nan, no answer: not within)."""
    a = np.array(g, dtype=float)
    return float(np.mean(np.nan_to_num(a, nan=np.inf) <= percent)) if len(a) else float("nan")


def _cell(g: np.ndarray) -> str:
    """One target's gaps over the shuffles: median [min, max], and the replays without an answer."""
    none = int(np.isnan(g).sum())
    if none == len(g):
        return f"no answer ({none})"
    text = f"{np.nanmedian(g):.2f} [{np.nanmin(g):.2f}, {np.nanmax(g):.2f}]"
    return text + (f", {none} without an answer" if none else "")


def pairing(sweep, name: str) -> None:
    """How paired the sweep's seeds are: per size and recipe, over the pairs of lattice neighbours
    (one step or less in log lr and log setting, both within 20 % of the size's best) trained on
    seeds 0 and 1, the correlation of their seed effects (seed 0's log loss less seed 1's) and the
    noise of a paired difference against two independent points' (√(1 − ρ) where both are alike)."""
    ok = sweep[(sweep["status"] != "failed") & sweep["seed"].isin([0, 1])]
    ok = ok.assign(log=np.log(ok["val_loss"].astype(float)))
    ok = ok[np.isfinite(ok["log"])]
    for (size, rule), g in ok.groupby(["size", "rule"]):
        t = g.pivot_table(index=["lr", "setting"], columns="seed", values="log").dropna()
        best = ok[ok["size"] == size].groupby(["rule", "lr", "setting"])["log"].mean().min()
        t = t[t.mean(axis=1) <= best + np.log(1.2)]
        d = (t[0] - t[1]).to_numpy()
        x = np.log10(t.index.get_level_values(0).to_numpy(float))
        y = np.log10(t.index.get_level_values(1).to_numpy(float))
        i, j = np.triu_indices(len(d), 1)
        near = (np.abs(x[i] - x[j]) <= 0.51) & (np.abs(y[i] - y[j]) <= 0.51)
        if near.sum() < 3:
            continue
        a, b = d[i[near]], d[j[near]]
        ratio = np.sqrt(np.mean((a - b) ** 2) / (np.mean(a**2) + np.mean(b**2)))
        print(f"| `{name}` | {size} | {rule} | {near.sum()} | {np.corrcoef(a, b)[0, 1]:.2f} | {ratio:.2f} |")


def variants(optima: list[str], seedings: list[str]) -> dict[str, dict[str, str]]:
    """Each rung-optimum rule crossed with each seeding, named by the optimum ("mean") where the
    seeding is the default ("close"), else "optimum+seeding"; tune_study's keywords for each."""
    for o in optima:
        if o not in OPTIMA:
            raise SystemExit(f"unknown optimum {o!r}; allowed: {', '.join(OPTIMA)}")
    for s in seedings:
        if s not in SEEDINGS:
            raise SystemExit(f"unknown seeding {s!r}; allowed: {', '.join(SEEDINGS)}")
    return {(o if s == "close" else f"{o}+{s}"): dict(optimum=o, seeding=s) for o in optima for s in seedings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shuffles", type=int, default=16, help="seed shuffles per target and budget (0 … n−1)")
    ap.add_argument("--optima", default="mean", help=f"rung-optimum rules (tune_study's optimum=: {', '.join(OPTIMA)})")
    ap.add_argument("--seedings", default=",".join(SEEDINGS), help="target seed splits (tune_study's seeding=)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument(
        "--unpaired", action="store_true", help="the oracle's earlier seed order (SweepOracle paired=False)"
    )
    ap.add_argument("--pairing", action="store_true", help="only how paired the sweeps' seeds are (no replay)")
    args = ap.parse_args()
    options = variants(args.optima.split(","), args.seedings.split(","))
    if args.pairing:
        print("| sweep | size | recipe | neighbour pairs | ρ of seed effects | paired noise / independent |")
        print("|---|---|---|---|---|---|")
        for name in args.targets.split(","):
            pairing(load_sweep([FINDINGS / d for d in TARGETS[name][0][:1]]), name)
        return
    optima = list(options)  # the variants' names, the columns
    start = time.perf_counter()
    gaps: dict[tuple[str, float, str], list[float]] = {}
    spent: dict[tuple[str, float, str], list[float]] = {}
    unavailable: dict[tuple[str, float, str], list[float]] = {}
    given: dict[tuple[str, float], float] = {}
    floor: dict[str, float] = {}
    off_target: dict[tuple[str, float, str], list[int]] = {}
    for name in args.targets.split(","):
        dirs, target, rungs = TARGETS[name]
        sweep = load_sweep([FINDINGS / d for d in dirs])
        plan = sweep_plan(FINDINGS / dirs[0])
        task = get_task(plan.task)
        floor[name] = 100 * lattice_gap(sweep, plan, target, rungs, task=task)
        for budget in BUDGETS:
            given[(name, budget)] = affordable(sweep, plan, target, rungs, budget, task)
            for optimum in optima:
                key = (name, budget, optimum)
                for shuffle in range(args.shuffles):
                    with contextlib.redirect_stderr(io.StringIO()):  # the climb's narration
                        r = replay_tune(sweep, plan, target, rungs=rungs, budget=given[(name, budget)],
                                        shuffle=shuffle, task=task, paired=not args.unpaired,
                                        **options[optimum])  # fmt: skip
                    gaps.setdefault(key, []).append(100 * r.gap)  # nan: no candidate at the target on the sweep
                    spent.setdefault(key, []).append(r.result.fraction if r.result is not None else np.nan)
                    unavailable.setdefault(key, []).append(r.unavailable / r.asked)
                    off_target.setdefault(key, []).append(r.at_target)
    names = args.targets.split(",")
    order = "the earlier seed order, not paired" if args.unpaired else "a size's points paired"
    print(f"Replay of `tune_study` on the committed joint sweeps, {args.shuffles} seed shuffles each ({order}):")
    print("the gap (%) of the pick's sweep seed-mean at the target to the sweep's best there, median [min, max]")
    print("over the shuffles.\n")
    header = " | ".join(f"`{o}`" for o in optima)
    print(f"| target | budget | {header} | the lattice's best | runs off the sweep (at the target) |")
    print("|---|---|" + "---|" * len(optima) + "---|---|")
    for name in names:
        for budget in BUDGETS:
            cells = [_cell(np.array(gaps[(name, budget, o)])) for o in optima]
            off = np.mean([np.mean(unavailable[(name, budget, o)]) for o in optima])
            at = np.mean([np.mean(off_target[(name, budget, o)]) for o in optima])
            b = given[(name, budget)]
            shown = f"{budget:g}" if b == budget else f"{b:g} ({budget:g} refused)"
            off_text = f"{100 * off:.0f} % ({at:.1f} a replay)"
            row = " | ".join([f"`{name}` ({TARGETS[name][1]})", shown, *cells, f"{floor[name]:.2f}", off_text])
            print(f"| {row} |")
    for budget in BUDGETS:
        cells = [f"{np.nanmedian([np.nanmedian(gaps[(n, budget, o)]) for n in names]):.2f}" for o in optima]
        print(f"| median over targets | {budget:g} | " + " | ".join(cells) + " | | |")
    cells = [f"{np.nanmedian([np.nanmedian(gaps[(n, b, o)]) for n in names for b in BUDGETS]):.2f}" for o in optima]
    print("| median over targets | both | " + " | ".join(cells) + " | | |")
    cells = [f"{np.nanmean([np.nanmedian(gaps[(n, b, o)]) for n in names for b in BUDGETS]):.2f}" for o in optima]
    print("| mean of the medians | both | " + " | ".join(cells) + " | | |")
    print("\nPer target × budget, each variant's share of replays whose pick is within 1 % of the sweep's best")
    print("(a replay without an answer counts as not within), and its mean spend (parameters × samples over one")
    print("recipe's sweep at the target): `within 1 % / spend`.\n")
    print(f"| target | budget | {header} |")
    print("|---|---|" + "---|" * len(optima))
    for name in names:
        for budget in BUDGETS:
            cells = [
                f"{_within(gaps[(name, budget, o)]):.2f} / {np.nanmean(spent[(name, budget, o)]):.3f}" for o in optima
            ]
            print(f"| `{name}` | {given[(name, budget)]:g} | " + " | ".join(cells) + " |")
    for budget in BUDGETS:
        cells = [
            f"{_within([g for n in names for g in gaps[(n, budget, o)]]):.2f} / "
            f"{np.nanmean([f for n in names for f in spent[(n, budget, o)]]):.3f}"
            for o in optima
        ]
        print(f"| every replay | {budget:g} | " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
