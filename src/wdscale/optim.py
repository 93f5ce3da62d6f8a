"""Build torch optimizers from rules: parameter groups, the optimizer itself, and `explain()`."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
from torch import nn

from .groups import ParamInfo, classify
from .rules import Context, DataFacts, Rule, get_rule
from .sgdw import SGDW

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class Assignment:
    """One parameter with the lr and weight_decay its rule gives it."""

    info: ParamInfo
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class Plan:
    """A rule applied to a model: what `param_groups`, `optimizer` and `explain` all start from."""

    rule: Rule
    optimizer: str
    mode: str  # "coupled" | "decoupled"
    assignments: list[Assignment]
    data: Optional[DataFacts]


def _positive(name: str, value: Any, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        allowed = "a finite number >= 0" if zero_ok else "a finite number > 0"
        raise ValueError(f"{name}={value!r} is not allowed: {name} must be {allowed}")
    return float(value)


def _optimizer_name(name: Any) -> str:
    if not isinstance(name, str) or name.lower() not in OPTIMIZER_NAMES:
        raise ValueError(f"unsupported optimizer {name!r}; supported: {', '.join(OPTIMIZER_NAMES)}")
    return name.lower()


def decay_mode(rule: str, optimizer: str) -> str:
    """"coupled" (L2 added to the gradient) or "decoupled" (w ← w(1 − ηλ)) for this rule and optimizer."""
    return get_rule(rule).decay_mode(_optimizer_name(optimizer))


def plan(
    model: nn.Module,
    *,
    rule: str,
    lr: float,
    weight_decay: Optional[float] = None,
    tau: Optional[float] = None,
    base: Optional[nn.Module] = None,
    data: Optional[DataFacts] = None,
    optimizer: str = "adamw",
    decay_vectors: bool = False,
    depth_mult: float = 1.0,
    alpha: float = 1.0,
    no_decay: Iterable[str] = (),
) -> Plan:
    """Check every argument, classify the model and apply the rule to each parameter."""
    r = get_rule(rule)
    opt = _optimizer_name(optimizer)
    if opt not in r.optimizers:
        raise ValueError(f"rule {rule!r} is defined for optimizers {', '.join(r.optimizers)}, not {opt!r}")
    lr = _positive("lr", lr)
    given = {k: v for k, v in (("weight_decay", weight_decay), ("tau", tau)) if v is not None}
    if len(given) != 1 or r.takes not in given:
        what = "tau (τ, in epochs)" if r.takes == "tau" else "weight_decay (λ)"
        got = " and ".join(f"{k}={v!r}" for k, v in given.items()) or "neither"
        raise ValueError(f"rule {rule!r} takes {what} and nothing else; got {got}")
    setting = _positive(r.takes, given[r.takes], zero_ok=r.takes == "weight_decay")
    if data is not None and not isinstance(data, DataFacts):
        raise TypeError(f"data must be a wdscale.DataFacts, got {type(data).__name__}")
    depth_mult = _positive("depth_mult", depth_mult)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha={alpha!r} is not allowed: alpha must be a finite number")

    infos = classify(model, base, decay_vectors=decay_vectors, no_decay=no_decay)
    ctx = Context(
        lr=lr, setting=setting, optimizer=opt, data=data,
        n_decayed=sum(p.numel for p in infos if p.decayed), n_params=sum(p.numel for p in infos),
        depth_mult=depth_mult, alpha=float(alpha),
    )
    assignments = []
    for p in infos:
        lr_g, wd_g = r(p, ctx)
        wd_g = wd_g if p.decayed else 0.0
        if not (math.isfinite(lr_g) and lr_g > 0 and math.isfinite(wd_g) and wd_g >= 0):
            raise ValueError(f"rule {rule!r} gives {p.name!r} lr={lr_g!r}, weight_decay={wd_g!r}; "
                             "check the setting and the data facts")
        assignments.append(Assignment(p, lr_g, wd_g))
    return Plan(rule=r, optimizer=opt, mode=r.decay_mode(opt), assignments=assignments, data=data)


def _groups(p: Plan) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float, float], dict[str, Any]] = {}
    for a in p.assignments:
        key = (a.info.kind, a.lr, a.weight_decay)
        g = groups.setdefault(key, {"params": [], "names": [], "kind": a.info.kind, "lr": a.lr,
                                    "weight_decay": a.weight_decay})
        g["params"].append(a.info.param)
        g["names"].append(a.info.name)
    return list(groups.values())


def param_groups(model: nn.Module, **kwargs: Any) -> list[dict[str, Any]]:
    """Parameter groups for a torch optimizer: dicts with `params`, `lr`, `weight_decay`, `names`, `kind`.

    Takes the arguments of `plan` (rule, lr, weight_decay or tau, base, data, optimizer, ...).
    Every parameter lands in exactly one group. Whether `weight_decay` is coupled or decoupled
    depends on the rule: see `decay_mode`, or let `wdscale.optimizer` build the right class.
    """
    return _groups(plan(model, **kwargs))


def _optimizer_class(name: str, mode: str) -> type[torch.optim.Optimizer]:
    if name == "sgd":
        return SGDW if mode == "decoupled" else torch.optim.SGD
    # coupled L2 under Adam is Adam(weight_decay=...), not AdamW
    return torch.optim.AdamW if mode == "decoupled" else torch.optim.Adam


def optimizer(model: nn.Module, name: str, *, rule: str, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    """A stock torch optimizer (SGD, Adam, AdamW; or wdscale.SGDW) with the rule's per-group lr and λ.

    `name` picks the update (sgd, adam, adamw); the rule picks coupled or decoupled decay, so
    `rule="sum"` with "adamw" gives Adam with coupled L2, and `rule="decoupled"` with "sgd" gives
    SGDW. Other keyword arguments go to `plan` when it takes them, else to the torch optimizer
    (momentum, betas, eps, ...).
    """
    plan_keys = set(inspect.signature(plan).parameters) - {"model", "rule", "lr", "optimizer"}
    plan_kwargs = {k: v for k, v in kwargs.items() if k in plan_keys}
    opt_kwargs = {k: v for k, v in kwargs.items() if k not in plan_keys}
    p = plan(model, rule=rule, lr=lr, optimizer=name, **plan_kwargs)
    cls = _optimizer_class(p.optimizer, p.mode)
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "params", "lr", "weight_decay"}
    if isinstance(cls, type) and issubclass(cls, SGDW):
        allowed |= set(inspect.signature(torch.optim.SGD.__init__).parameters) - {"self", "params", "lr", "weight_decay"}
    bad = sorted(set(opt_kwargs) - allowed)
    if bad:
        raise TypeError(f"optimizer {p.optimizer!r} ({cls.__name__}) does not take {', '.join(map(repr, bad))}; "
                        f"it takes {', '.join(sorted(allowed - {'kwargs'}))} (lr and weight_decay come from the rule)")
    return cls(_groups(p), lr=lr, **opt_kwargs)


# -- explain --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainRow:
    group: int
    name: str
    shape: tuple[int, ...]
    kind: str
    fan_in: int
    width_mult: float
    decayed: bool
    lr: float
    weight_decay: float
    decay_per_step: Optional[float]  # multiplicative shrink per step at peak lr; None under Adam + L2
    tau_steps: Optional[float]  # 1 / (η_g λ_g)
    tau_epochs: Optional[float]  # τ_steps · B / N


@dataclass(frozen=True)
class Explanation:
    rule: Rule
    optimizer: str
    mode: str
    rows: list[ExplainRow]

    def __str__(self) -> str:
        head = (f"rule {self.rule.name!r} ({self.rule.formula}; {self.mode} decay, {self.optimizer}) — "
                f"{self.rule.summary}\nsource: {self.rule.source}\n")
        cols = ["grp", "parameter", "shape", "kind", "fan_in", "width×", "decay", "lr", "λ", "shrink/step",
                "τ steps", "τ epochs"]
        f = lambda x: "—" if x is None else f"{x:.4g}"  # noqa: E731
        body = [[str(r.group), r.name, "×".join(map(str, r.shape)) or "scalar", r.kind, str(r.fan_in),
                 f"{r.width_mult:.4g}", "yes" if r.decayed else "no", f(r.lr), f(r.weight_decay),
                 "—" if r.decay_per_step is None else f"{r.decay_per_step:.6g}", f(r.tau_steps), f(r.tau_epochs)]
                for r in self.rows]
        widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [head, line(cols), line(["-" * w for w in widths])] + [line(b) for b in body]
        if self.mode == "coupled" and self.optimizer != "sgd":
            out.append("\nAdam + coupled L2: the decay gradient is divided by Adam's second-moment estimate, "
                       "so there is no fixed per-step shrink factor (that is what AdamW changes).")
        return "\n".join(out)


def explain(model: nn.Module, **kwargs: Any) -> Explanation:
    """A table a person reads: per parameter its group, kind, fan_in, width multiplier, lr, λ,
    per-step shrink factor and timescale τ in steps and epochs. Same arguments as `plan`."""
    p = plan(model, **kwargs)
    index = {}
    rows = []
    for a in p.assignments:
        g = index.setdefault((a.info.kind, a.lr, a.weight_decay), len(index))
        has_factor = p.mode == "decoupled" or p.optimizer == "sgd"
        shrink = 1.0 - a.lr * a.weight_decay if has_factor else None
        tau = 1.0 / (a.lr * a.weight_decay) if has_factor and a.weight_decay > 0 else None
        tau_ep = tau / p.data.steps_per_epoch if tau is not None and p.data is not None else None
        rows.append(ExplainRow(g, a.info.name, a.info.shape, a.info.kind, a.info.fan_in, a.info.width_mult,
                               a.info.decayed, a.lr, a.weight_decay, shrink, tau, tau_ep))
    return Explanation(p.rule, p.optimizer, p.mode, rows)
