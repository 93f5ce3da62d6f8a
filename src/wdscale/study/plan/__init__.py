"""Plan: what a run is (`RunConfig`), what it trains on (tasks, model families) and which runs a study makes."""

from .config import STATUSES, RunConfig, RunResult, TaskData
from .models import CNN1D, MLP, CharTransformer, ResMLP
from .study_plan import PRESETS, StudyPlan, load_plan_file, make_runs, preset
from .tasks import TASKS, Task, get_task

__all__ = [
    "CNN1D",
    "MLP",
    "PRESETS",
    "STATUSES",
    "TASKS",
    "CharTransformer",
    "ResMLP",
    "RunConfig",
    "RunResult",
    "StudyPlan",
    "Task",
    "TaskData",
    "get_task",
    "load_plan_file",
    "make_runs",
    "preset",
]
