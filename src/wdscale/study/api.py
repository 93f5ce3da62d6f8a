"""`wdscale.Study`: the same study on your own model and data."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from ..errors import WdscaleError, WdscaleTypeError
from .analysis import analyze
from .backends import make_backend
from .config import TaskData
from .jobs import register_source
from .plan import StudyPlan, make_runs
from .report import write_report
from .runner import RunSummary, run_study
from .store import load_runs
from .tasks import Task, get_task


def as_task_data(data: Any) -> TaskData:
    """TaskData, a callable returning it, or a tuple (x_train, y_train, x_val, y_val) of tensors."""
    if callable(data) and not isinstance(data, TaskData):
        try:
            data = data()
        except Exception as e:  # the user's loader: say that it failed, in one line
            raise WdscaleError(
                f"the data loader {getattr(data, '__name__', data)!r} failed: "
                f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ) from e
    if isinstance(data, TaskData):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 4 and all(isinstance(t, torch.Tensor) for t in data):
        x_tr, y_tr, x_va, y_va = data
        if y_tr.dtype not in (torch.int64, torch.int32) or y_tr.ndim != 1:
            raise WdscaleTypeError(
                "y_train must be a 1-D tensor of class ids (int64); for a language model pass TaskData(objective='lm')"
            )
        if len(x_tr) != len(y_tr) or len(x_va) != len(y_va):
            raise WdscaleError(
                f"x and y lengths differ: train {len(x_tr)} vs {len(y_tr)}, val {len(x_va)} vs {len(y_va)}"
            )
        n_classes = int(max(y_tr.max(), y_va.max())) + 1
        return TaskData(x_tr, y_tr.long(), x_va, y_va.long(), n_classes=n_classes)
    raise WdscaleTypeError(
        "data must be a wdscale.study.TaskData, a function returning one, or a tuple "
        f"(x_train, y_train, x_val, y_val) of tensors; got {type(data).__name__}"
    )


def _two_arg(model_fn: Callable[..., nn.Module], size_axis: str) -> Callable[[int, int], nn.Module]:
    """The runner calls model_fn(width, depth); users write model_fn(size) or model_fn(width, depth)."""
    try:
        n = len(
            [
                p
                for p in inspect.signature(model_fn).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        )
    except (TypeError, ValueError):
        n = 1
    if n >= 2:
        return model_fn
    if size_axis == "depth":
        return lambda width, depth: model_fn(depth)
    return lambda width, depth: model_fn(width)


class Study:
    """A grid of sizes × decay settings × rules × seeds on a built-in task or your own model.

    >>> study = wdscale.Study(model_fn=lambda width: make_net(width), data=(x_tr, y_tr, x_va, y_va),
    ...                       sizes=[64, 256, 1024], rules=["sum", "mean", "timescale"], lr=1e-3, epochs=20)
    >>> study.run(); study.report()
    """

    def __init__(
        self,
        model_fn: Optional[Callable[..., nn.Module]] = None,
        data: Any = None,
        *,
        task: Optional[str] = None,
        out: Union[str, Path] = "wdscale-study",
        name: str = "custom",
        backend: str = "local",
        workers: Optional[int] = None,
        address: Optional[str] = None,
        device: Optional[str] = None,
        batch: bool = True,
        threads: int = 1,
        **plan: Any,
    ) -> None:
        if (model_fn is None) != (data is None):
            raise WdscaleError("give both model_fn and data (your own model), or neither (a built-in task)")
        if model_fn is not None and task is not None:
            raise WdscaleError("give either task= or model_fn/data, not both")
        self.out = Path(out)
        self.device = device
        self.batch = batch
        self.threads = threads
        self.backend = make_backend(backend, workers=workers, address=address)
        if model_fn is None:
            self.plan = StudyPlan(task=task or "mnist1d_mlp", **plan)
            self.task = get_task(self.plan.task)
            self.source = None
            self.model_fn = None
            return
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise WdscaleError(f"name {name!r} may hold letters, digits, '_', '-' and '.' only")
        task_data = as_task_data(data)
        size_axis = plan.get("size_axis", "width")
        sizes = plan.get("sizes")
        if not sizes:
            raise WdscaleError("give sizes=[...] for your own model (e.g. widths 64 to 1024)")
        width = plan.get("width") or (min(sizes) if size_axis == "width" else None)
        if size_axis != "width" and width is None:
            raise WdscaleError(f"give width= (the fixed width) for a study along {size_axis!r}")
        for key in ("lr", "epochs", "batch_size"):
            if plan.get(key) is None:
                raise WdscaleError(f"give {key}= for your own model (the built-in tasks have defaults, yours does not)")
        self.model_fn = _two_arg(model_fn, size_axis)
        self.plan = StudyPlan(task=name, **{"width": width, **plan})
        self.task = Task(
            name=name,
            description="your own model and data",
            objective=task_data.objective,
            default_widths=tuple(sizes),
            base_width=width,
            default_depth=plan.get("depth") or 1,
            default_n_train=task_data.n_train,
            default_batch_size=plan["batch_size"],
            default_epochs=plan["epochs"],
            default_lr={k: plan["lr"] for k in ("sgd", "adam", "adamw")},
            loader=lambda seed=0: task_data,
            model_factory=self.model_fn,
        )
        self.source = register_source(name, task_data, self.model_fn)

    def runs(self) -> list:
        """The planned runs (checked: a bad plan or a model_fn that fails at some size raises here)."""
        return make_runs(self.plan, self.task, self.model_fn)

    def run(self, *, progress: bool = True, retry_failed: bool = False) -> RunSummary:
        return run_study(
            self.plan,
            self.out,
            source=self.source,
            task=self.task,
            model_fn=self.model_fn,
            backend=self.backend,
            device=self.device,
            batch=self.batch,
            threads=self.threads,
            progress=progress,
            retry_failed=retry_failed,
        )

    def results(self):
        """All stored runs as a pandas DataFrame (from the store, or its runs.parquet export)."""
        return load_runs(self.out)

    def analyze(self, metric: str = "val_loss"):
        return analyze(self.results(), metric=metric)

    def report(self, title: Optional[str] = None) -> dict[str, Path]:
        return write_report(self.results(), self.out, title=title or f"wdscale study: {self.plan.task}")
