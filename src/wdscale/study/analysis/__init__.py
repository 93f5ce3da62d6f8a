"""Analysis: what the stored runs say (optima, drift, regret, the cost of finding a setting, the laws);
it reads runs and never trains them."""

from .advise import advise, advise_joint, holdout
from .cost import search_cost
from .joint import JointAnalysis, analyze_joint
from .study_analysis import StudyAnalysis, analyze

__all__ = [
    "JointAnalysis",
    "StudyAnalysis",
    "advise",
    "advise_joint",
    "analyze",
    "analyze_joint",
    "holdout",
    "search_cost",
]
