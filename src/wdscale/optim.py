"""Build torch optimizers from rules: parameter groups, the optimizer itself, and `explain()`.

`apply_rule` checks the arguments and applies a rule to every trainable parameter; `param_groups`,
`optimizer` and `explain` all start from its `RuleOutcome`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import re
import sys
import types
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, TypeVar, Union

import torch
from torch import nn

from .checks import check_non_negative, check_number, check_positive
from .errors import WdscaleError, WdscaleTypeError
from .groups import ParamInfo, ParamKind, canonical_name, classify, unwrap
from .muon import (
    ADAMW_KEYWORDS,
    DEFAULT_ADJUST_LR,
    MUON_KEYWORDS,
    AdjustLR,
    MuonWithAdamW,
    check_adjust_lr,
    update_scale,
)
from .rules import (
    OPTIMIZER_NAMES,
    RULES,
    Context,
    DataFacts,
    DecayMode,
    OptimizerName,
    Rule,
    get_rule,
    goes_to_muon,
)
from .schedules import Schedule
from .sgdw import SGDW

__all__ = [
    "OPTIMIZER_NAMES",
    "RULE_KEYWORDS",
    "RuleArgs",
    "TORCH_KEYWORDS",
    "WIDTH_RULES",
    "Assignment",
    "ExplainRow",
    "Explanation",
    "RuleOutcome",
    "ShrinkWarning",
    "apply_rule",
    "decay_mode",
    "explain",
    "optimizer",
    "param_groups",
]

# the built-in rules whose multipliers come from comparing the model with a base model: without one
# (and without mup's infshape) they would silently be the plain optimizer. A rule's `needs_base`
# says it for every rule, registered ones included.
WIDTH_RULES = tuple(name for name, r in RULES.items() if r.needs_base)

# the torch constructor arguments `optimizer()` passes through, per update: SGDW takes SGD's, and
# Adam and AdamW take the same (lr and weight_decay come from the rule; decoupled_weight_decay is
# the rule's to decide)
_TORCH_COMMON = ("maximize", "foreach", "differentiable", "fused")
TORCH_KEYWORDS: dict[OptimizerName, tuple[str, ...]] = {
    "sgd": ("momentum", "dampening", "nesterov", *_TORCH_COMMON),
    "adam": ("betas", "eps", "amsgrad", "capturable", *_TORCH_COMMON),
    "adamw": ("betas", "eps", "amsgrad", "capturable", *_TORCH_COMMON),
    # Muon's own, then the AdamW side's (eps is AdamW's)
    "muon": (*MUON_KEYWORDS, *ADAMW_KEYWORDS),
}


class ShrinkWarning(UserWarning):
    """A decoupled group whose per-step shrink factor 1 − η_g·λ_g is not > 0."""


@dataclass(frozen=True)
class Assignment:
    """One parameter with the lr and weight_decay its rule gives it, and the torch optimizer that
    trains it: the optimizer's name, or under "muon" "muon" (its 2-D hidden matrices) or "adamw"."""

    info: ParamInfo
    lr: float
    weight_decay: float
    trained_by: str = "adamw"


@dataclass(frozen=True)
class RuleOutcome:
    """A rule applied to a model: what `param_groups`, `optimizer` and `explain` all start from.

    Attributes:
        rule: the rule applied.
        optimizer: the optimizer it was applied for.
        mode: how the decay is applied: "coupled" (L2 in the gradient) or "decoupled".
        assignments: every trainable parameter with its lr and weight_decay, in
            `named_parameters` order.
        data: the data facts given, or None.
        adjust_lr: under "muon", Muon's lr adjustment; else None.
    """

    rule: Rule
    optimizer: OptimizerName
    mode: DecayMode
    assignments: list[Assignment]
    data: Optional[DataFacts]
    adjust_lr: Optional[AdjustLR] = None


def _optimizer_name(name: Any) -> OptimizerName:
    lowered = name.lower() if isinstance(name, str) else None
    for known in OPTIMIZER_NAMES:
        if lowered == known:
            return known
    raise WdscaleError(f"unsupported optimizer {name!r}; supported: {', '.join(OPTIMIZER_NAMES)}")


def decay_mode(rule: str, optimizer: str) -> DecayMode:
    """How a rule's decay is applied under an optimizer.

    Args:
        rule: a rule name.
        optimizer: "sgd", "adam", "adamw" or "muon" (any case).

    Returns:
        "coupled" (L2 added to the gradient) or "decoupled" (w ← w(1 − ηλ)).

    Raises:
        WdscaleError: an unknown rule or optimizer.
    """
    return get_rule(rule).decay_mode(_optimizer_name(optimizer))


_ARGS_DOC = """
        model: the model (DDP, DataParallel and torch.compile wrappers are looked through).
        rule: a rule name (`wdscale rules` lists them, `register_rule` adds one).
        lr: the base learning rate η, a finite number > 0.
        weight_decay: the setting λ (>= 0), for rules that take it.
        tau: the setting τ in epochs (> 0), for rules that take it (timescale, power_lines).
        base: the same model at the width where the setting was tuned; the width rules (mup,
            sqrt_width, completep) need it unless the parameters carry mup's infshape.
        data: facts about the data and run, for rules that need them (N, B, T).
        optimizer: "sgd", "adam", "adamw" or "muon" (Muon for the 2-D hidden matrices, AdamW for
            the rest): the rule's lr multipliers and coupling depend on it.
        decay_vectors: decay biases and norm gains too.
        depth_mult: m_L = depth / base depth (completep), > 0.
        alpha: CompleteP's depth exponent.
        no_decay: a parameter or module name, or a list of them, never to decay.
        adjust_lr: with optimizer "muon", Muon's lr adjustment: "match_rms_adamw" (None, the
            default: 0.2·√max(A, B), Moonlight's) or "original" (√max(1, A/B), Keller Jordan's)."""


@dataclass(frozen=True)
class RuleArgs:
    """What applying a rule takes besides the model: written once here, taken as keywords by
    `apply_rule`, `param_groups`, `explain` and `optimizer` (whose signatures are made from these
    fields, so help() lists every one). The values are checked by `apply_rule`."""

    rule: str
    lr: float
    weight_decay: Optional[float] = None
    tau: Optional[float] = None
    base: Optional[nn.Module] = None
    data: Optional[DataFacts] = None
    optimizer: str = "adamw"
    decay_vectors: bool = False
    depth_mult: float = 1.0
    alpha: float = 1.0
    no_decay: Union[str, Iterable[str]] = ()
    adjust_lr: Optional[str] = None


# the keyword arguments of `optimizer()` that go to the rule (`apply_rule`), in signature order
RULE_KEYWORDS = tuple(f.name for f in dataclasses.fields(RuleArgs) if f.name not in ("rule", "lr", "optimizer"))

# one entry per argument, by name (continuation lines indented further)
_ARG_DOCS = dict(re.findall(r"^ {8}(\w+): (.*(?:\n {12}.*)*)", _ARGS_DOC, flags=re.M))

R = TypeVar("R")
_MODEL = inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="nn.Module")


def _rule_keywords(
    *leading: tuple[inspect.Parameter, str],
    without: tuple[str, ...] = (),
    var_keyword: Optional[tuple[str, str]] = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give `fn(model, *leading, args: RuleArgs, **rest)` the public signature
    `(model, *leading, *, <RuleArgs' fields but `without`>, **var_keyword)`, and put `_ARGS_DOC`
    where its docstring says {ARGS}, so help() shows and describes every argument."""
    keywords = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
            annotation=f.type,
        )
        for f in dataclasses.fields(RuleArgs)
        if f.name not in without
    ]
    tail = [inspect.Parameter(var_keyword[0], inspect.Parameter.VAR_KEYWORD, annotation="Any")] if var_keyword else []
    docs = [("model", _ARG_DOCS["model"]), *((p.name, doc) for p, doc in leading)]
    docs += [(k.name, _ARG_DOCS[k.name]) for k in keywords]
    docs += [(f"**{var_keyword[0]}", var_keyword[1])] if var_keyword else []
    args_doc = "\n        ".join(f"{name}: {doc}" for name, doc in docs)

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        sig = inspect.Signature(
            [_MODEL, *(p for p, _ in leading), *keywords, *tail],
            return_annotation=inspect.signature(fn).return_annotation,
        )
        own = [p.name for p, _ in leading]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            given = bound.arguments
            rest = given.pop(var_keyword[0], {}) if var_keyword else {}
            lead = [given.pop(name) for name in own]
            model = given.pop("model")
            return fn(model, *lead, RuleArgs(**given), **rest)

        del wrapper.__wrapped__  # help() and inspect show the public signature, not fn's
        wrapper.__signature__ = sig  # type: ignore[attr-defined]
        if wrapper.__doc__ is not None:  # None under `python -OO`
            wrapper.__doc__ = wrapper.__doc__.replace("{ARGS}", args_doc)
        return wrapper

    return decorate


@_rule_keywords()
def apply_rule(model: nn.Module, args: RuleArgs) -> RuleOutcome:
    """Check every argument, classify the model and apply the rule to each trainable parameter.

    The step behind `param_groups`, `optimizer` and `explain`. Unlike them it does not refuse a
    width rule (mup, sqrt_width, completep) without a base: here `base=None` means the model is its
    own base (every multiplier 1), what a study needs to centre its grid at the base size.

    Args:
        {ARGS}

    Returns:
        The rule, the optimizer, the decay mode and every parameter's lr and weight_decay.

    Raises:
        WdscaleError: an unknown rule or optimizer, a rule not defined for the optimizer, a
            setting other than the one the rule takes, a value out of range, data facts the rule
            needs but did not get, or a base that differs from the model in more than width.
        WdscaleTypeError: a number that is not a number, `data` that is not a DataFacts, a model
            or base that is not an nn.Module.

    Warns:
        ShrinkWarning: a decoupled group gets lr·weight_decay >= 1.
    """
    return _apply_rule(model, args)


def _apply_rule(model: nn.Module, args: RuleArgs) -> RuleOutcome:
    """`apply_rule` on arguments already gathered (its callers in this module hold a RuleArgs)."""
    rule, lr, weight_decay, tau, data = args.rule, args.lr, args.weight_decay, args.tau, args.data
    r = get_rule(rule)
    opt = _optimizer_name(args.optimizer)
    if opt not in r.optimizers:
        if opt == "muon":
            for_muon = [n for n, known in RULES.items() if "muon" in known.optimizers]
            why = (
                "it is coupled L2 (added to the gradient), and Muon orthogonalises the gradient, so an L2 term "
                "is no decay there"
                if r.mode == "coupled"
                else "its lr multipliers are not defined for Muon's orthogonalised update"
            )
            raise WdscaleError(
                f"rule {rule!r} has no meaning for optimizer 'muon': {why}; rules for 'muon': {', '.join(for_muon)}"
            )
        raise WdscaleError(f"rule {rule!r} is defined for optimizers {', '.join(r.optimizers)}, not {opt!r}")
    adjust_lr: Optional[AdjustLR] = None
    if opt == "muon":
        adjust_lr = check_adjust_lr(DEFAULT_ADJUST_LR if args.adjust_lr is None else args.adjust_lr)
    elif args.adjust_lr is not None:
        raise WdscaleError(
            f"adjust_lr={args.adjust_lr!r} is Muon's lr adjustment, but the optimizer is {opt!r}: give it with "
            "optimizer 'muon', or leave it out"
        )
    lr = check_positive("lr", lr)
    given = {k: v for k, v in (("weight_decay", weight_decay), ("tau", tau)) if v is not None}
    if len(given) != 1 or r.takes not in given:
        what = "tau (τ, in epochs)" if r.takes == "tau" else "weight_decay (λ)"
        got = " and ".join(f"{k}={v!r}" for k, v in given.items()) or "neither"
        raise WdscaleError(f"rule {rule!r} takes {what} and nothing else; got {got}")
    check_setting = check_positive if r.takes == "tau" else check_non_negative
    setting = check_setting(r.takes, given[r.takes])
    if data is not None and not isinstance(data, DataFacts):
        raise WdscaleTypeError(f"data must be a wdscale.DataFacts, got {type(data).__name__}")
    depth_mult = check_positive("depth_mult", args.depth_mult)
    alpha = check_number("alpha", args.alpha)

    infos = classify(model, args.base, decay_vectors=args.decay_vectors, no_decay=args.no_decay)
    if opt == "muon" and not any(goes_to_muon(p) for p in infos):
        kinds = ", ".join(f"{p.name} {'×'.join(map(str, p.shape)) or 'scalar'} {p.kind}" for p in infos[:6])
        raise WdscaleError(
            "optimizer 'muon' needs at least one 2-D hidden matrix (a weight both of whose dimensions grow with "
            f"width, or an inner layer when there is no base) and the model has none ({kinds}"
            f"{', ...' if len(infos) > 6 else ''}); use 'adamw'"
        )
    ctx = Context(
        lr=lr,
        setting=setting,
        optimizer=opt,
        data=data,
        n_decayed=sum(p.numel for p in infos if p.decayed),
        n_params=sum(p.numel for p in infos),
        depth_mult=depth_mult,
        alpha=alpha,
        decay_vectors=bool(args.decay_vectors),
        adjust_lr=adjust_lr,
    )
    mode = r.decay_mode(opt)
    assignments = []
    for p in infos:
        lr_g, wd_g = r(p, ctx)
        wd_g = wd_g if p.decayed else 0.0
        if not (math.isfinite(lr_g) and lr_g > 0 and math.isfinite(wd_g) and wd_g >= 0):
            raise WdscaleError(
                f"rule {rule!r} gives {p.name!r} lr={lr_g!r}, weight_decay={wd_g!r}; "
                "check the setting and the data facts"
            )
        trained_by = ("muon" if goes_to_muon(p) else "adamw") if opt == "muon" else opt
        assignments.append(Assignment(p, lr_g, wd_g, trained_by))
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
            stacklevel=_first_caller_outside(),
        )
    return RuleOutcome(rule=r, optimizer=opt, mode=mode, assignments=assignments, data=data, adjust_lr=adjust_lr)


def _first_caller_outside() -> int:
    """The warning's stack level that names the first caller outside this module (apply_rule is
    reached through wrappers and param_groups/explain/optimizer)."""
    frame: Optional[types.FrameType] = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _apply_rule_with_base(model: nn.Module, args: RuleArgs) -> RuleOutcome:
    """`apply_rule`, refusing a width rule without a base.

    Such a rule with neither a base nor mup's infshape would silently be the plain optimizer.
    """
    outcome = _apply_rule(model, args)
    if not outcome.rule.needs_base or args.base is not None:
        return outcome
    if any(hasattr(p, "infshape") for p in unwrap(model).parameters() if p.requires_grad):
        return outcome
    raise WdscaleError(
        f"rule {outcome.rule.name!r} scales lr and weight_decay with width against a base model, but base=None "
        "and the parameters carry no mup infshape: pass base=<the same model at the width where the "
        "setting was tuned> (base=model if this is that width)"
    )


GroupKey = tuple[str, ParamKind, float, float]


def _group_key(a: Assignment) -> GroupKey:
    """Parameters share a group when they share the optimizer that trains them, kind, lr and weight_decay."""
    return a.trained_by, a.info.kind, a.lr, a.weight_decay


def _groups(outcome: RuleOutcome, base_lr: float) -> list[dict[str, Any]]:
    groups: dict[GroupKey, dict[str, Any]] = {}
    # under "muon", Muon's groups first: the order MuonWithAdamW keeps them in
    assignments = sorted(outcome.assignments, key=lambda a: a.trained_by != "muon")
    for a in assignments:
        muon_keys: dict[str, Any] = {"optimizer": a.trained_by} if outcome.optimizer == "muon" else {}
        if a.trained_by == "muon":
            muon_keys["adjust_lr_fn"] = outcome.adjust_lr  # what torch.optim.Muon reads per group
        g = groups.setdefault(
            _group_key(a),
            {
                **muon_keys,
                "params": [],
                "names": [],
                "kind": a.info.kind,
                "lr": a.lr,
                "weight_decay": a.weight_decay,
                # timm's convention: a loop that sets every group's lr keeps the rule's ratios with
                # g["lr"] = lr * g["lr_scale"] (writing g["lr"] = lr erases them)
                "lr_scale": a.lr / base_lr if base_lr > 0 else 1.0,
            },
        )
        g["params"].append(a.info.param)
        g["names"].append(a.info.name)
    return list(groups.values())


@_rule_keywords()
def param_groups(model: nn.Module, args: RuleArgs) -> list[dict[str, Any]]:
    """Parameter groups for a torch optimizer, one per (kind, lr, weight_decay).

    Every trainable parameter lands in exactly one group. Whether `weight_decay` is coupled or
    decoupled depends on the rule: see `decay_mode`, or let `wdscale.optimizer` build the right
    class.

    Args:
        {ARGS}

    Returns:
        Dicts with `params`, `lr`, `weight_decay`, `names` (canonical parameter names), `kind` and
        `lr_scale` (the group's lr ÷ the base lr: a loop that sets lrs itself keeps the rule's
        ratios with `g["lr"] = lr * g["lr_scale"]`). Under "muon" each also says `optimizer`
        ("muon" for `torch.optim.Muon`, whose groups come first and carry `adjust_lr_fn`, or
        "adamw"); `wdscale.MuonWithAdamW` takes them as they are.

    Raises:
        WdscaleError: as `apply_rule`, and a width rule without a base (or mup's infshape).
        WdscaleTypeError: as `apply_rule`.

    Warns:
        ShrinkWarning: a decoupled group gets lr·weight_decay >= 1.
    """
    return _groups(_apply_rule_with_base(model, args), float(args.lr))


def _optimizer_class(name: OptimizerName, mode: DecayMode) -> type[torch.optim.Optimizer]:
    if name == "muon":
        return MuonWithAdamW
    if name == "sgd":
        return SGDW if mode == "decoupled" else torch.optim.SGD
    # coupled L2 under Adam is Adam(weight_decay=...), not AdamW
    return torch.optim.AdamW if mode == "decoupled" else torch.optim.Adam


def _check_torch_keywords(opt: OptimizerName, cls_name: str, rule: Rule, torch_kwargs: dict[str, Any]) -> None:
    if "decoupled_weight_decay" in torch_kwargs:
        decoupled = [n for n, r in RULES.items() if opt in r.optimizers and r.decay_mode(opt) == "decoupled"]
        raise WdscaleError(
            f"decoupled_weight_decay={torch_kwargs['decoupled_weight_decay']!r} is not allowed: the rule decides "
            f"coupled or decoupled decay (rule {rule.name!r} with {opt!r} is {rule.decay_mode(opt)}, so "
            f"{cls_name}); for decoupled decay with {opt!r} pick a decoupled rule: {', '.join(decoupled)}"
        )
    torch_keys = TORCH_KEYWORDS[opt]
    unknown = sorted(set(torch_kwargs) - set(torch_keys))
    if unknown:
        allowed = sorted(set(RULE_KEYWORDS) | set(torch_keys))
        hints = [
            f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, allowed, n=1)) else repr(k)
            for k in unknown
        ]
        raise WdscaleTypeError(
            f"optimizer {opt!r} ({cls_name}) does not take {', '.join(hints)}, nor does the rule; "
            f"allowed: {', '.join(RULE_KEYWORDS)} (for the rule) and {', '.join(sorted(torch_keys))} "
            f"(for {cls_name}); lr and weight_decay per group come from the rule"
        )


@_rule_keywords(
    (
        inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str"),
        'the update: "sgd", "adam", "adamw" or "muon" (any case).',
    ),
    without=("optimizer",),
    var_keyword=(
        "torch_kwargs",
        """passed to the torch constructor; those `TORCH_KEYWORDS[name]` lists:
            sgd: momentum, dampening, nesterov; adam/adamw: betas, eps, amsgrad, capturable;
            all: maximize, foreach, differentiable, fused; muon: Muon's momentum, nesterov,
            ns_coefficients, ns_steps and the AdamW side's betas, eps, amsgrad, capturable,
            maximize, foreach, differentiable, fused.""",
    ),
)
def optimizer(model: nn.Module, name: str, args: RuleArgs, **torch_kwargs: Any) -> torch.optim.Optimizer:
    """A stock torch optimizer (SGD, Adam, AdamW; or wdscale.SGDW) with the rule's per-group lr and λ.

    `name` picks the update (sgd, adam, adamw, muon); the rule picks coupled or decoupled decay, so
    `rule="sum"` with "adamw" gives Adam with coupled L2, and `rule="decoupled"` with "sgd" gives
    SGDW. "muon" gives `wdscale.MuonWithAdamW`: `torch.optim.Muon` for the 2-D hidden matrices,
    `torch.optim.AdamW` for the rest (Keller Jordan's Muon post, 2024; Moonlight, Liu et al. 2025),
    both with decoupled decay, so only decoupled rules take it. `explain` shows what it decided.

    Args:
        {ARGS}

    Returns:
        torch.optim.SGD, wdscale.SGDW, torch.optim.Adam, torch.optim.AdamW or
        wdscale.MuonWithAdamW, its param_groups those of `param_groups` (with `names`, `kind` and
        `lr_scale`; under "muon" `optimizer` too).

    Raises:
        WdscaleTypeError: a keyword neither the rule nor the torch optimizer takes (named, with
            the likely intent), and as `param_groups`.
        WdscaleError: `decoupled_weight_decay` (the rule decides it), and as `param_groups`.

    Warns:
        ShrinkWarning: a decoupled group gets lr·weight_decay >= 1.
    """
    r, opt = get_rule(args.rule), _optimizer_name(name)
    cls = _optimizer_class(opt, r.decay_mode(opt))
    _check_torch_keywords(opt, cls.__name__, r, torch_kwargs)
    outcome = _apply_rule_with_base(model, dataclasses.replace(args, optimizer=opt))
    build: Callable[..., torch.optim.Optimizer] = cls  # torch's subclasses take lr; the base class does not
    if outcome.adjust_lr is not None:
        torch_kwargs = {**torch_kwargs, "adjust_lr": outcome.adjust_lr}
    return build(_groups(outcome, float(args.lr)), lr=float(args.lr), **torch_kwargs)


# -- explain --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainRow:
    """One parameter in `explain`'s table."""

    group: int  # index of its group in `param_groups`' list
    name: str
    shape: tuple[int, ...]
    kind: ParamKind
    fan_in: int
    width_mult: float
    decayed: bool
    lr: float
    weight_decay: float
    decay_per_step: Optional[float]  # multiplicative shrink per step at peak lr; None under Adam + L2
    tau_steps: Optional[float]  # 1 / (η_g λ_g)
    tau_epochs: Optional[float]  # τ_steps · B / N
    trained_by: str = "adamw"  # the torch optimizer that trains it (under "muon": "muon" or "adamw")
    update_lr: Optional[float] = None  # Muon's adjusted lr η_g·s(A, B), which scales its update (not its decay)


@dataclass(frozen=True)
class Explanation:
    """What a rule gives each parameter of a model; `str()` is the table `wdscale explain` prints."""

    rule: Rule
    optimizer: OptimizerName
    mode: DecayMode
    rows: list[ExplainRow]
    frozen: list[str] = field(default_factory=list)  # requires_grad=False: in no group, not counted
    data: Optional[DataFacts] = None
    schedule: Optional[Schedule] = None  # set by `under`: what the schedule makes of τ over the run
    total_steps: Optional[int] = None
    adjust_lr: Optional[AdjustLR] = None  # under "muon": Muon's lr adjustment

    def under(self, schedule: Schedule, total_steps: Optional[int] = None) -> Explanation:
        """The same table with what an lr schedule makes of each group's timescale over a run.

        The τ columns stay at the peak lr — the rules' definition, as the papers write it (Power
        Lines, Wang & Aitchison). Torch's decoupled decay is η_t·λ_g per step with η_t the
        *scheduled* lr, so over T steps the decay applied is m̄·T·η_g·λ_g (m̄ the schedule's mean
        multiplier): the run-averaged timescale is τ/m̄.

        Args:
            schedule: the run's lr schedule.
            total_steps: the run's optimizer steps; default: from the data facts (epochs × N/B, or steps).

        Raises:
            WdscaleError: no run length (neither `total_steps` nor data facts with epochs or steps).
        """
        if total_steps is None:
            epochs = self.data.total_epochs if self.data is not None else None
            if epochs is None or self.data is None:
                raise WdscaleError("give total_steps, or data facts with epochs or steps: a schedule spans a run")
            total_steps = max(1, round(epochs * self.data.steps_per_epoch))
        return dataclasses.replace(self, schedule=schedule, total_steps=total_steps)

    def _schedule_lines(self) -> list[str]:
        if self.schedule is None or self.total_steps is None:
            return []
        mean = self.schedule.mean_multiplier(self.total_steps)
        out = [
            f"\nunder the lr schedule {self.schedule.describe()} over {self.total_steps} steps: every group's lr, "
            f"and with it its per-step decay η_t·λ, is scaled by the schedule (mean multiplier {mean:.3g}); the τ "
            "columns above are at the peak lr (the rules' definition); over the run the decay applied is "
            f"{mean:.3g}× that at the peak, so τ averaged over the run is τ/{mean:.3g}:"
        ]
        seen = set()
        for r in self.rows:
            if r.group in seen or r.tau_steps is None:
                continue
            seen.add(r.group)
            ep = f", {r.tau_epochs:.4g} → {r.tau_epochs / mean:.4g} epochs" if r.tau_epochs is not None else ""
            out.append(
                f"  grp {r.group}: τ {r.tau_steps:.4g} → {r.tau_steps / mean:.4g} steps{ep}; "
                f"Σ_t η_t·λ over the run {mean * self.total_steps / r.tau_steps:.4g}"
            )
        if self.mode == "coupled" and self.optimizer != "sgd":
            out.append("  (Adam + coupled L2 has no per-step shrink factor to average)")
        return out

    def __str__(self) -> str:
        head = (
            f"rule {self.rule.name!r} ({self.rule.formula}; {self.mode} decay, {self.optimizer}) — "
            f"{self.rule.summary}\nsource: {self.rule.source}\n"
        )
        muon = self.optimizer == "muon"
        if muon:
            scale = "0.2·√max(A, B)" if self.adjust_lr == "match_rms_adamw" else "√max(1, A/B)"
            head += (
                f"Muon (torch.optim.Muon) trains the 2-D hidden matrices, AdamW the rest; Muon's lr adjustment "
                f"{self.adjust_lr!r}: its update takes lr·{scale} (the 'update lr' column), its decay w ← w(1 − lr·λ) "
                "the group's lr, so τ is read at the group's lr\n"
            )
            if self.rule.name in ("mup", "timescale", "power_lines"):
                head += (
                    "Muon's matrices take the spectral lr η·k, k = (√(fan_out/fan_in)/s(A, B)) / (the same at the "
                    "base) (hidden m×: 1/√m under match_rms_adamw, 1 under original), and λ/k under mup: "
                    'Yang, Simon & Bernstein, "A Spectral Condition for Feature Learning", 2023\n'
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
        ] + (["opt", "update lr"] if muon else [])
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
            + ([r.trained_by, f(r.update_lr)] if muon else [])
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
        out += self._schedule_lines()
        return "\n".join(out)


@_rule_keywords()
def explain(model: nn.Module, args: RuleArgs) -> Explanation:
    """A table a person reads: per parameter its group, kind, fan_in, width multiplier, lr, λ,
    per-step shrink factor and timescale τ in steps and epochs.

    Args:
        {ARGS}

    Returns:
        The `Explanation`; `print()` it for the table.

    Raises:
        WdscaleError: as `param_groups`.
        WdscaleTypeError: as `param_groups`.

    Warns:
        ShrinkWarning: a decoupled group gets lr·weight_decay >= 1 (the table flags it too).
    """
    outcome = _apply_rule_with_base(model, args)
    index: dict[GroupKey, int] = {}
    has_factor = outcome.mode == "decoupled" or outcome.optimizer == "sgd"
    rows = []
    # groups numbered as `param_groups` orders them (under "muon", Muon's first)
    for a in sorted(outcome.assignments, key=lambda a: a.trained_by != "muon"):
        index.setdefault(_group_key(a), len(index))
    for a in outcome.assignments:
        g = index[_group_key(a)]
        shrink = 1.0 - a.lr * a.weight_decay if has_factor else None
        tau_steps = 1.0 / (a.lr * a.weight_decay) if has_factor and a.weight_decay > 0 else None
        data_facts = outcome.data
        tau_ep = tau_steps / data_facts.steps_per_epoch if tau_steps is not None and data_facts is not None else None
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
                tau_steps,
                tau_ep,
                a.trained_by,
                a.lr * update_scale(a.info.shape, outcome.adjust_lr)
                if a.trained_by == "muon" and outcome.adjust_lr is not None
                else None,
            )
        )
    frozen = [canonical_name(n) for n, q in unwrap(model).named_parameters() if not q.requires_grad]
    return Explanation(
        outcome.rule, outcome.optimizer, outcome.mode, rows, frozen, data=outcome.data, adjust_lr=outcome.adjust_lr
    )
