"""Build torch optimizers from rules: parameter groups, the optimizer itself, and `explain()`."""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch
from torch import nn

from .groups import ParamInfo, canonical_name, classify, unwrap
from .rules import Context, DataFacts, Rule, get_rule
from .sgdw import SGDW

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
# rules whose multipliers come from comparing the model with a base model: without one (and without
# mup's infshape) they would silently be the plain optimizer
WIDTH_RULES = ("mup", "sqrt_width", "completep")


class ShrinkWarning(UserWarning):
    """A decoupled group whose per-step shrink factor 1 − η_g·λ_g is not > 0."""


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
    # numbers.Real takes numpy scalars (np.float32(1e-3)) as well as int and float
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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
    """ "coupled" (L2 added to the gradient) or "decoupled" (w ← w(1 − ηλ)) for this rule and optimizer."""
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
    """Check every argument, classify the model and apply the rule to each trainable parameter.

    The step behind `param_groups`, `optimizer` and `explain`. Unlike them it does not refuse a
    width rule (mup, sqrt_width, completep) without a base: here `base=None` means the model is its
    own base (every multiplier 1), what a study needs to centre its grid at the base size.
    """
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
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
        raise ValueError(f"alpha={alpha!r} is not allowed: alpha must be a finite number")

    infos = classify(model, base, decay_vectors=decay_vectors, no_decay=no_decay)
    ctx = Context(
        lr=lr,
        setting=setting,
        optimizer=opt,
        data=data,
        n_decayed=sum(p.numel for p in infos if p.decayed),
        n_params=sum(p.numel for p in infos),
        depth_mult=depth_mult,
        alpha=float(alpha),
    )
    mode = r.decay_mode(opt)
    assignments = []
    for p in infos:
        lr_g, wd_g = r(p, ctx)
        wd_g = wd_g if p.decayed else 0.0
        if not (math.isfinite(lr_g) and lr_g > 0 and math.isfinite(wd_g) and wd_g >= 0):
            raise ValueError(
                f"rule {rule!r} gives {p.name!r} lr={lr_g!r}, weight_decay={wd_g!r}; "
                "check the setting and the data facts"
            )
        assignments.append(Assignment(p, lr_g, wd_g))
    flipped = [a for a in assignments if mode == "decoupled" and a.lr * a.weight_decay >= 1.0]
    if flipped:
        # w ← w·(1 − η_g λ_g) with η_g λ_g >= 1 zeroes or flips the sign of the weights every step.
        # A warning, not an error: a study's grid reaches that far on purpose, to see decay too strong
        # to learn (such a run ends "not_learned").
        a = flipped[0]
        warnings.warn(
            f"rule {rule!r} gives {a.info.name!r} lr={a.lr:.4g} and weight_decay={a.weight_decay:.4g}: the "
            f"per-step shrink factor 1 - lr·weight_decay = {1 - a.lr * a.weight_decay:.4g} is not > 0"
            f"{f' (and in {len(flipped) - 1} more parameters)' if len(flipped) > 1 else ''}, so decay "
            "zeroes or flips the weights every step; lr·weight_decay < 1 is needed to shrink them "
            "(a weaker decay, a larger tau, or a smaller lr)",
            ShrinkWarning,
            stacklevel=3,
        )
    return Plan(rule=r, optimizer=opt, mode=mode, assignments=assignments, data=data)


def _require_base(kwargs: dict[str, Any], model: nn.Module) -> None:
    """A width rule with neither a base nor mup's infshape would silently be the plain optimizer."""
    rule = kwargs.get("rule")
    if rule not in WIDTH_RULES or kwargs.get("base") is not None:
        return
    if any(hasattr(p, "infshape") for p in unwrap(model).parameters() if p.requires_grad):
        return
    raise ValueError(
        f"rule {rule!r} scales lr and weight_decay with width against a base model, but base=None and "
        "the parameters carry no mup infshape: pass base=<the same model at the width where the "
        "setting was tuned> (base=model if this is that width)"
    )


def _groups(p: Plan) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float, float], dict[str, Any]] = {}
    for a in p.assignments:
        key = (a.info.kind, a.lr, a.weight_decay)
        g = groups.setdefault(
            key, {"params": [], "names": [], "kind": a.info.kind, "lr": a.lr, "weight_decay": a.weight_decay}
        )
        g["params"].append(a.info.param)
        g["names"].append(a.info.name)
    return list(groups.values())


def param_groups(model: nn.Module, **kwargs: Any) -> list[dict[str, Any]]:
    """Parameter groups for a torch optimizer: dicts with `params`, `lr`, `weight_decay`, `names`, `kind`.

    Takes the arguments of `plan` (rule, lr, weight_decay or tau, base, data, optimizer, ...).
    Every parameter lands in exactly one group. Whether `weight_decay` is coupled or decoupled
    depends on the rule: see `decay_mode`, or let `wdscale.optimizer` build the right class.
    """
    p = plan(model, **kwargs)
    _require_base(kwargs, model)
    return _groups(p)


def _optimizer_class(name: str, mode: str) -> type[torch.optim.Optimizer]:
    if name == "sgd":
        return SGDW if mode == "decoupled" else torch.optim.SGD
    # coupled L2 under Adam is Adam(weight_decay=...), not AdamW
    return torch.optim.AdamW if mode == "decoupled" else torch.optim.Adam


_PLAN_KEYS = tuple(k for k in inspect.signature(plan).parameters if k not in ("model", "rule", "lr", "optimizer"))


def _optimizer_keys(cls: type[torch.optim.Optimizer]) -> set[str]:
    keys = set(inspect.signature(cls.__init__).parameters)
    if issubclass(cls, SGDW):
        keys |= set(inspect.signature(torch.optim.SGD.__init__).parameters)
    return keys - {"self", "params", "lr", "weight_decay", "kwargs", "args"}


def optimizer(model: nn.Module, name: str, *, rule: str, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    """A stock torch optimizer (SGD, Adam, AdamW; or wdscale.SGDW) with the rule's per-group lr and λ.

    `name` picks the update (sgd, adam, adamw); the rule picks coupled or decoupled decay, so
    `rule="sum"` with "adamw" gives Adam with coupled L2, and `rule="decoupled"` with "sgd" gives
    SGDW. Other keyword arguments go to `plan` when it takes them, else to the torch optimizer
    (momentum, betas, eps, ...). `decoupled_weight_decay` is refused: the rule decides it, and
    `explain` shows what it decided.
    """
    r, opt = get_rule(rule), _optimizer_name(name)
    cls = _optimizer_class(opt, r.decay_mode(opt))
    torch_keys = _optimizer_keys(cls)
    if "decoupled_weight_decay" in kwargs:
        raise ValueError(
            f"decoupled_weight_decay={kwargs['decoupled_weight_decay']!r} is not allowed: the rule decides coupled or "
            f"decoupled decay (rule {rule!r} with {opt!r} is {r.decay_mode(opt)}, so {cls.__name__}); for decoupled "
            "decay pick a decoupled rule (decoupled, normalized, independent, timescale, power_lines, or mup "
            "with adamw)"
        )
    unknown = sorted(set(kwargs) - set(_PLAN_KEYS) - torch_keys)
    if unknown:
        allowed = sorted(set(_PLAN_KEYS) | torch_keys - {"decoupled_weight_decay"})
        hints = [
            f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, allowed, n=1)) else repr(k)
            for k in unknown
        ]
        raise TypeError(
            f"optimizer {opt!r} ({cls.__name__}) does not take {', '.join(hints)}, nor does the rule; "
            f"allowed: {', '.join(_PLAN_KEYS)} (for the rule) and "
            f"{', '.join(sorted(torch_keys - {'decoupled_weight_decay'}))} (for {cls.__name__}); "
            "lr and weight_decay per group come from the rule"
        )
    plan_kwargs = {k: v for k, v in kwargs.items() if k in _PLAN_KEYS}
    opt_kwargs = {k: v for k, v in kwargs.items() if k not in _PLAN_KEYS}
    p = plan(model, rule=rule, lr=lr, optimizer=name, **plan_kwargs)
    _require_base({"rule": rule, **plan_kwargs}, model)
    return cls(_groups(p), lr=float(lr), **opt_kwargs)


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
    frozen: list[str] = field(default_factory=list)  # requires_grad=False: in no group, not counted

    def __str__(self) -> str:
        head = (
            f"rule {self.rule.name!r} ({self.rule.formula}; {self.mode} decay, {self.optimizer}) — "
            f"{self.rule.summary}\nsource: {self.rule.source}\n"
        )
        cols = [
            "grp",
            "parameter",
            "shape",
            "kind",
            "fan_in",
            "width×",
            "decay",
            "lr",
            "λ",
            "shrink/step",
            "τ steps",
            "τ epochs",
        ]
        f = lambda x: "—" if x is None else f"{x:.4g}"  # noqa: E731
        body = [
            [
                str(r.group),
                r.name,
                "×".join(map(str, r.shape)) or "scalar",
                r.kind,
                str(r.fan_in),
                f"{r.width_mult:.4g}",
                "yes" if r.decayed else "no",
                f(r.lr),
                f(r.weight_decay),
                "—" if r.decay_per_step is None else f"{r.decay_per_step:.6g}",
                f(r.tau_steps),
                f(r.tau_epochs),
            ]
            for r in self.rows
        ]
        widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [head, line(cols), line(["-" * w for w in widths])] + [line(b) for b in body]
        if self.mode == "coupled" and self.optimizer != "sgd":
            out.append(
                "\nAdam + coupled L2: the decay gradient is divided by Adam's second-moment estimate, "
                "so there is no fixed per-step shrink factor (that is what AdamW changes)."
            )
        flipped = [r.name for r in self.rows if r.decay_per_step is not None and r.decay_per_step <= 0]
        if flipped and self.mode == "decoupled":
            out.append(
                f"\nwarning: shrink/step <= 0 (lr·λ >= 1: decay zeroes or flips the weights every step) for "
                f"{', '.join(flipped)}"
            )
        if self.frozen:
            out.append(f"\nfrozen (requires_grad=False; in no group, not counted in P): {', '.join(self.frozen)}")
        return "\n".join(out)


def explain(model: nn.Module, **kwargs: Any) -> Explanation:
    """A table a person reads: per parameter its group, kind, fan_in, width multiplier, lr, λ,
    per-step shrink factor and timescale τ in steps and epochs. Same arguments as `plan`."""
    p = plan(model, **kwargs)
    _require_base(kwargs, model)
    index = {}
    rows = []
    for a in p.assignments:
        g = index.setdefault((a.info.kind, a.lr, a.weight_decay), len(index))
        has_factor = p.mode == "decoupled" or p.optimizer == "sgd"
        shrink = 1.0 - a.lr * a.weight_decay if has_factor else None
        tau = 1.0 / (a.lr * a.weight_decay) if has_factor and a.weight_decay > 0 else None
        tau_ep = tau / p.data.steps_per_epoch if tau is not None and p.data is not None else None
        rows.append(
            ExplainRow(
                g,
                a.info.name,
                a.info.shape,
                a.info.kind,
                a.info.fan_in,
                a.info.width_mult,
                a.info.decayed,
                a.lr,
                a.weight_decay,
                shrink,
                tau,
                tau_ep,
            )
        )
    frozen = [canonical_name(n) for n, q in unwrap(model).named_parameters() if not q.requires_grad]
    return Explanation(p.rule, p.optimizer, p.mode, rows, frozen)
