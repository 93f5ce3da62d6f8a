"""Studies: how the best weight decay moves with model size, data size or batch size, per rule.

plan -> runs -> store -> analysis -> report

Each name is imported on first use: a training script that a study started imports
`wdscale.current_run` alone, not the analysis and plotting stack (pandas, scipy, matplotlib:
seconds of every run's start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Study
    from .plan.config import RunConfig, RunResult, TaskData
    from .plan.study_plan import PRESETS, StudyPlan, make_runs, preset
    from .run.command import Command
    from .run.execution import Execution
    from .run.runner import run_study
    from .train.script_run import ScriptRun, current_run
    from .train.user_loop import Run

_WHERE = {
    "Study": ".api",
    "RunConfig": ".plan.config",
    "RunResult": ".plan.config",
    "TaskData": ".plan.config",
    "PRESETS": ".plan.study_plan",
    "StudyPlan": ".plan.study_plan",
    "make_runs": ".plan.study_plan",
    "preset": ".plan.study_plan",
    "Command": ".run.command",
    "Execution": ".run.execution",
    "run_study": ".run.runner",
    "ScriptRun": ".train.script_run",
    "current_run": ".train.script_run",
    "Run": ".train.user_loop",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module 'wdscale.study' has no attribute {name!r}")


__all__ = [
    "Command",
    "Execution",
    "PRESETS",
    "Run",
    "RunConfig",
    "RunResult",
    "ScriptRun",
    "Study",
    "StudyPlan",
    "TaskData",
    "current_run",
    "make_runs",
    "preset",
    "run_study",
]
