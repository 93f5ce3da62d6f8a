"""Studies: how the best weight decay moves with model size, data size or batch size, per rule.

plan -> runs -> store -> analysis -> report
"""

from .api import Study
from .plan.config import RunConfig, RunResult, TaskData
from .plan.study_plan import PRESETS, StudyPlan, make_runs, preset
from .run.execution import Execution
from .run.runner import run_study
from .train.user_loop import Run

__all__ = [
    "Execution",
    "PRESETS",
    "Run",
    "RunConfig",
    "RunResult",
    "Study",
    "StudyPlan",
    "TaskData",
    "make_runs",
    "preset",
    "run_study",
]
