"""Train: one run in the reference loop (`train_run`), or K runs at once in the batched engine."""

from .engine import BatchedTrainer, choose_path, train_batched
from .loop import train_run
from .user_loop import Run, train_user_run

__all__ = ["BatchedTrainer", "Run", "choose_path", "train_batched", "train_run", "train_user_run"]
