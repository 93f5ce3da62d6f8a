"""Search: more runs where the decision is made, chosen from what the stored runs say."""

from .refine import RefineSummary, pruning_check, refine_study

__all__ = ["RefineSummary", "pruning_check", "refine_study"]
