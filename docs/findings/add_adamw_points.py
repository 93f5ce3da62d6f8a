"""Train Muon + AdamW at AdamW's tuned (lr, λ): each (recipe, width)'s measured joint optimum of the
AdamW twin study added to the Muon study's refined points at SEEDS seeds, then trained (resumable).

    python add_adamw_points.py MUON_DIR ADAMW_EXPORT_DIR [SEEDS]
"""

import sys
from pathlib import Path

import pandas as pd

from wdscale.study.analysis.study_analysis import run_losses
from wdscale.study.plan.study_plan import refined_key, with_refined
from wdscale.study.run.execution import Execution
from wdscale.study.run.runner import run_study
from wdscale.study.search.refine import stored_plan

muon_dir, adamw_dir = Path(sys.argv[1]), Path(sys.argv[2])
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
adamw = pd.read_parquet(adamw_dir / "runs.parquet")
adamw = adamw[adamw["status"] != "failed"].assign(loss=lambda d: run_losses(d))
plan = stored_plan(muon_dir)
add = {}
for (rule, size), g in adamw.groupby(["rule", "size"]):
    if rule not in plan.rules or size not in plan.sizes:
        continue
    m = g.groupby(["lr", "setting"])["loss"].mean()
    lr, setting = m.idxmin()
    print(f"{rule}@{size}: AdamW's optimum lr {lr:.4g}, setting {setting:.4g} (loss {m.min():.4f})")
    add[refined_key(rule, int(size))] = {(float(lr), float(setting)): seeds}
plan = with_refined(plan, add)
run_study(plan, muon_dir, execution=Execution(workers=1))
