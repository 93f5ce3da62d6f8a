"""wdscale: how strong should weight decay be when the model, the data or the run gets bigger?

Rules turn one size-free decay setting into per-parameter-group lr and weight_decay for stock torch
optimizers; `wdscale.study` measures which setting transfers across sizes on a real task.
"""

from .errors import WdscaleError, WdscaleTypeError
from .groups import KINDS, ParamInfo, ParamKind, classify
from .muon import MuonWithAdamW
from .optim import (
    OPTIMIZER_NAMES,
    TORCH_KEYWORDS,
    WIDTH_RULES,
    Assignment,
    Explanation,
    RuleOutcome,
    ShrinkWarning,
    apply_rule,
    decay_mode,
    explain,
    optimizer,
    param_groups,
)
from .rules import (
    RULES,
    Context,
    DataFacts,
    DecayMode,
    OptimizerName,
    Rule,
    RuleMode,
    SettingKind,
    get_rule,
    register_rule,
    setting_kind,
    setting_kwargs,
)
from .schedules import SCHEDULE_NAMES, Schedule, check_keeps_ratios, lr_scheduler
from .sgdw import SGDW

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # the study needs the `study` extra (scipy, matplotlib, ...): import it only when asked for
    if name in ("Execution", "Study", "StudyPlan", "TaskData", "current_run"):
        from . import study

        return getattr(study, name)
    raise AttributeError(f"module 'wdscale' has no attribute {name!r}")


__all__ = [
    "Assignment",
    "Context",
    "DataFacts",
    "DecayMode",
    "Explanation",
    "KINDS",
    "OPTIMIZER_NAMES",
    "OptimizerName",
    "ParamInfo",
    "ParamKind",
    "RULES",
    "Rule",
    "RuleMode",
    "RuleOutcome",
    "SCHEDULE_NAMES",
    "MuonWithAdamW",
    "SGDW",
    "Schedule",
    "SettingKind",
    "ShrinkWarning",
    "TORCH_KEYWORDS",
    "WIDTH_RULES",
    "WdscaleError",
    "WdscaleTypeError",
    "apply_rule",
    "check_keeps_ratios",
    "classify",
    "decay_mode",
    "explain",
    "get_rule",
    "lr_scheduler",
    "optimizer",
    "param_groups",
    "register_rule",
    "setting_kind",
    "setting_kwargs",
    "Execution",
    "Study",
    "StudyPlan",
    "TaskData",
    "current_run",
]
