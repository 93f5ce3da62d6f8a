"""Studies: how the best weight decay moves with model size, data size or batch size, per rule.

plan -> runs -> store -> analysis -> report
"""

from .api import Study
from .config import RunConfig, RunResult, TaskData
from .plan import PRESETS, StudyPlan, make_runs, preset
from .runner import run_study

__all__ = ["PRESETS", "RunConfig", "RunResult", "Study", "StudyPlan", "TaskData", "make_runs", "preset", "run_study"]
