"""Re-train a reference sweep's best point at its target on fresh seeds, into SWEEP_DIR/rescore.

§10 scores every search's pick on seeds no search used (`wdscale tune --rescore-seeds`, from
RESCORE_FIRST_SEED); the sweep's own best, chosen as the lowest of many seed means, is flattered by
its seeds the same way. Re-trained on the same fresh seeds, it is the reference each pick is
compared with seed by seed (the same seed: the same initialisation and data order).

    python rescore_best.py SWEEP_DIR [SEEDS]
"""

import dataclasses
import sys
from pathlib import Path

from wdscale.study.analysis.study_analysis import run_losses
from wdscale.study.plan.study_plan import refined_key, with_refined
from wdscale.study.run.execution import Execution
from wdscale.study.run.runner import run_study
from wdscale.study.run.store import load_runs
from wdscale.study.search.refine import stored_plan
from wdscale.study.search.tune import RESCORE_DIR, RESCORE_FIRST_SEED, only_rule

sweep_dir = Path(sys.argv[1])
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
plan = stored_plan(sweep_dir)
target = max(plan.sizes)
runs = load_runs(sweep_dir)
at = runs[(runs["size"] == target) & (runs["status"] != "failed")]
means = at.assign(loss=run_losses(at)).groupby(["rule", "lr", "setting"])["loss"].mean()
rule, lr, setting = means.idxmin()
print(f"{sweep_dir.name}: best at {target}: {rule} lr {lr:.4g} setting {setting:.4g} ({means.min():.4f})")
out = sweep_dir / RESCORE_DIR
if (out / "plan.json").is_file():  # a best re-scored before (the coarse sweep's): the plan grows
    fresh = stored_plan(out)
    fresh = dataclasses.replace(fresh, rules=[*fresh.rules, rule]) if rule not in fresh.rules else fresh
else:
    fresh = only_rule(plan, rule)
    fresh = dataclasses.replace(fresh, refined={}, grid_sizes=[], seeds=1, first_seed=RESCORE_FIRST_SEED)
fresh = with_refined(fresh, {refined_key(rule, target): {(float(lr), float(setting)): seeds}})
run_study(fresh, out, execution=Execution(workers=1))
