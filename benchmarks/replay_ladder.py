"""The ladder's variants measured in replay on the committed joint sweeps (issue 34, item 3).

Each target of §10 is tuned by `replay_tune` (the sweep answers every run: nothing is trained) at
budgets 0.1 and 0.25 of one recipe's sweep, once per seed shuffle (shuffle 0: the ladder's k-th
seed is the sweep's k-th; others: a permutation per point, `SweepOracle`), and its pick scored on
the sweep: the sweep's seed-mean at the pick against the sweep's best seed-mean at the target over
every recipe. Prints a markdown table: per target × budget, the median gap of each variant over
the shuffles (and its range), the floor of any climb on the bottom grid's lattice (`lattice_gap`:
the sweep's best among the points a ladder can place, against its best over all, refined points
between the lattice's included), the share of the runs asked for that the sweep did not hold,
then the medians over every target.

The rungs are sizes each sweep trained (§10's tunes climbed target/16, target/4, target, which two
sweeps hold only in part): joint_width, joint_digits, joint_data at their three sizes; the
transformer at width 64 over 8, 32, 64; the held-out targets beside their preset's sweep —
joint_width_1024 over 32, 128 (joint_width's), 1024, joint_shakespeare_128 over 8, 32
(joint_shakespeare's), 128, as its tune climbed.

    PYTHONPATH=src .venv/bin/python benchmarks/replay_ladder.py [--shuffles 8] [--optima mean,risk,local]
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
from wdscale.study.search.tune import OPTIMA

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


def _cell(g: np.ndarray) -> str:
    """One target's gaps over the shuffles: median [min, max], and the replays without an answer."""
    none = int(np.isnan(g).sum())
    if none == len(g):
        return f"no answer ({none})"
    text = f"{np.nanmedian(g):.2f} [{np.nanmin(g):.2f}, {np.nanmax(g):.2f}]"
    return text + (f", {none} without an answer" if none else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shuffles", type=int, default=8, help="seed shuffles per target and budget (0 … n−1)")
    ap.add_argument("--optima", default=",".join(OPTIMA), help="the variants (tune_study's optimum=)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    args = ap.parse_args()
    optima = args.optima.split(",")
    start = time.perf_counter()
    gaps: dict[tuple[str, float, str], list[float]] = {}
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
                                        shuffle=shuffle, task=task, optimum=optimum)  # fmt: skip
                    gaps.setdefault(key, []).append(100 * r.gap)  # nan: no candidate at the target on the sweep
                    unavailable.setdefault(key, []).append(r.unavailable / r.asked)
                    off_target.setdefault(key, []).append(r.at_target)
    names = args.targets.split(",")
    print(f"Replay of `tune_study` on the committed joint sweeps, {args.shuffles} seed shuffles each: the gap (%) of")
    print("the pick's sweep seed-mean at the target to the sweep's best there, median [min, max] over the shuffles.\n")
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
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
