"""Run: a plan cut into jobs, the jobs run on a backend, every result kept in the store."""

from .backends import LocalBackend, make_backend
from .runner import RunSummary, run_study
from .store import Store, load_runs, store_from_export

__all__ = ["LocalBackend", "RunSummary", "Store", "load_runs", "make_backend", "run_study", "store_from_export"]
