"""wdscale: how strong should weight decay be when the model, the data or the run gets bigger?

Rules turn one size-free decay setting into per-parameter-group lr and weight_decay for stock torch
optimizers; `wdscale.study` measures which setting transfers across sizes on a real task.
"""

from .groups import KINDS, ParamInfo, classify
from .optim import (
    OPTIMIZER_NAMES,
    WIDTH_RULES,
    Explanation,
    ShrinkWarning,
    decay_mode,
    explain,
    optimizer,
    param_groups,
    plan,
)
from .rules import RULES, DataFacts, Rule, get_rule, setting_kind, setting_kwargs
from .sgdw import SGDW

__version__ = "0.1.0"


def __getattr__(name: str):
    # the study needs the `study` extra (scipy, matplotlib, ...): import it only when asked for
    if name in ("Study", "StudyPlan", "TaskData"):
        from . import study

        return getattr(study, name)
    raise AttributeError(f"module 'wdscale' has no attribute {name!r}")


__all__ = [
    "DataFacts",
    "Explanation",
    "KINDS",
    "OPTIMIZER_NAMES",
    "ParamInfo",
    "RULES",
    "Rule",
    "SGDW",
    "ShrinkWarning",
    "WIDTH_RULES",
    "classify",
    "decay_mode",
    "explain",
    "get_rule",
    "optimizer",
    "param_groups",
    "plan",
    "setting_kind",
    "setting_kwargs",
    "Study",
    "StudyPlan",
    "TaskData",
]
