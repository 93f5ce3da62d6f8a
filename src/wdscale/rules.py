"""Weight-decay scaling rules: one size-free setting -> per-parameter (lr, weight_decay).

Each rule is a small pure function `(param: ParamInfo, ctx: Context) -> (lr_g, λ_g)` with its
formula and source in its docstring. λ_g is what torch takes as `weight_decay`:

* coupled rules add λ_g·w to the gradient (torch SGD / Adam `weight_decay`), i.e. the loss gains
  (λ_g/2)·Σ w². Factor-2 convention: the question's `λ_q Σ w²` has gradient 2λ_q·w, so λ_g = 2λ_q.
* decoupled rules shrink `w ← w·(1 − lr_g·λ_g)` each step (torch AdamW; wdscale.SGDW for SGD).
* rules with mode "optimizer" follow the optimizer's name: "adamw" decoupled, "sgd"/"adam" coupled.

Notation as in ../shared/references.md: η lr, B batch size, N training samples, T epochs,
P decayed parameters, m width multiplier against the base model, m_L depth multiplier.
Parameters that are not decayed (vectors unless asked, `no_weight_decay()` names) get λ_g = 0
whatever the rule says; their lr still follows the rule.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

from .groups import ParamInfo


@dataclass(frozen=True)
class DataFacts:
    """Facts about the training data and run that some rules need.

    n_samples: training samples N (or sequences / tokens, in the unit the batch size counts)
    batch_size: B, samples per optimizer step
    epochs: T, passes over the data; or give `steps` (total optimizer steps) instead
    """

    n_samples: int
    batch_size: int
    epochs: Optional[float] = None
    steps: Optional[int] = None

    def __post_init__(self) -> None:
        # numpy integers and floats are fine; store plain Python numbers
        for name in ("n_samples", "batch_size"):
            value = getattr(self, name)
            if not _is_integer(value) or value <= 0:
                raise ValueError(f"DataFacts.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.batch_size > self.n_samples:
            raise ValueError(
                f"DataFacts.batch_size={self.batch_size} is larger than n_samples={self.n_samples}: "
                "a batch cannot hold more samples than the data set; allowed: 1 <= batch_size <= n_samples"
            )
        if self.epochs is not None and self.steps is not None:
            raise ValueError(
                f"give DataFacts either epochs or steps, not both (got epochs={self.epochs!r}, "
                f"steps={self.steps!r}): steps = epochs · n_samples / batch_size"
            )
        if self.epochs is not None:
            if not (_finite(self.epochs) and self.epochs > 0):
                raise ValueError(f"DataFacts.epochs must be a positive finite number, got {self.epochs!r}")
            object.__setattr__(self, "epochs", float(self.epochs) if not _is_integer(self.epochs) else int(self.epochs))
        if self.steps is not None:
            if not _is_integer(self.steps) or self.steps <= 0:
                raise ValueError(f"DataFacts.steps must be a positive integer, got {self.steps!r}")
            object.__setattr__(self, "steps", int(self.steps))

    @property
    def steps_per_epoch(self) -> float:
        """N / B: optimizer steps per pass over the data."""
        return self.n_samples / self.batch_size

    @property
    def total_epochs(self) -> Optional[float]:
        if self.epochs is not None:
            return float(self.epochs)
        return None if self.steps is None else self.steps / self.steps_per_epoch

    @property
    def samples_seen(self) -> Optional[float]:
        """D: samples (tokens) processed in the whole run."""
        t = self.total_epochs
        return None if t is None else t * self.n_samples


@dataclass(frozen=True)
class Context:
    """What a rule knows besides the parameter itself."""

    lr: float  # the base learning rate η
    setting: float  # the size-free setting: λ, or τ for rules that take tau
    optimizer: str  # "sgd" | "adam" | "adamw"
    data: Optional[DataFacts]
    n_decayed: int  # P: decayed scalar parameters in the model
    n_params: int  # all scalar parameters
    depth_mult: float = 1.0  # m_L = depth / base depth
    alpha: float = 1.0  # CompleteP's depth exponent

    @property
    def sgd(self) -> bool:
        return self.optimizer == "sgd"


def _finite(x: object) -> bool:
    """A finite real number: int, float or a numpy scalar (numbers.Real), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _is_integer(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


# -- shared piece: μP per-layer multipliers ------------------------------------------------------


def mup_multipliers(p: ParamInfo, sgd: bool) -> tuple[float, float]:
    """μP's (lr multiplier, λ multiplier) for one parameter; their product is 1, so η_g·λ_g is fixed.

    Parameters carrying mup's `infshape`, or owned by a `MuReadout`, follow microsoft/mup
    `mup/optim.py` exactly: Adam — matrix-like (two growing dims) lr/m, λ·m, the rest unchanged;
    SGD — vector-like (one growing dim) lr·m, λ/m, matrix-like lr/r, λ·r with r = fan_in_mult /
    fan_out_mult. A plain readout (nn.Linear, no MuReadout output multiplier) follows Table 3 of
    Tensor Programs V instead: lr ∝ 1/fan_in for Adam and SGD alike.
    """
    if len(p.shape) < 2 or p.from_infshape or p.mup_readout or p.kind != "output":
        if sgd:
            if p.ninf == 1:
                return p.width_mult, 1.0 / p.width_mult
            if p.ninf == 2:
                r = p.fan_in_mult / p.fan_out_mult
                return 1.0 / r, r
            return 1.0, 1.0
        if p.ninf == 2:
            return 1.0 / p.width_mult, p.width_mult
        return 1.0, 1.0
    return 1.0 / p.fan_in_mult, p.fan_in_mult  # plain readout, Tensor Programs V Table 3


def _need(ctx: Context, rule: str, *facts: str) -> DataFacts:
    if ctx.data is None:
        raise ValueError(f"rule {rule!r} needs data=DataFacts({', '.join(f + '=...' for f in facts)}); none was given")
    if "epochs" in facts and ctx.data.total_epochs is None:
        raise ValueError(f"rule {rule!r} needs the run length: DataFacts(epochs=...) or DataFacts(steps=...)")
    return ctx.data


# -- the rules ------------------------------------------------------------------------------------


def sum_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """sum — coupled L2 on the sum of squares: loss + (λ/2) Σ w², gradient gains λ·w.

    λ_g = λ. The per-coordinate pull does not depend on P. Source: standard L2 regularisation
    (the "sum square" of the question).
    """
    return ctx.lr, ctx.setting


def mean_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """mean — coupled L2 on the mean of squares: loss + (λ/2P) Σ w², P = decayed parameters.

    λ_g = λ / P: the per-weight decay falls as 1/P, so the optimal λ must grow ∝ P just to stand
    still. Source: algebra ("mean square" of the question).
    """
    return ctx.lr, ctx.setting / ctx.n_decayed if ctx.n_decayed else 0.0


def per_sample_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """per_sample — the MAP form: (Σ_i CE_i + (λ/2) Σ w²) / N, λ = 1/σ² the prior precision.

    λ_g = λ / N: a Gaussian prior N(0, σ²) is worth less as data grows. Source: MAP estimation
    with a Gaussian prior (the seed answer's form; laplace-torch's prior precision δ ↔ λ = δ).
    """
    return ctx.lr, ctx.setting / _need(ctx, "per_sample", "n_samples").n_samples


def per_minibatch_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """per_minibatch — λ given per epoch, spread over the N/B minibatches of an epoch.

    λ_g = λ · B / N (coupled). Source: Bengio 2012, "Practical recommendations for gradient-based
    training of deep architectures", via the seed question's comment.
    """
    d = _need(ctx, "per_minibatch", "n_samples", "batch_size")
    return ctx.lr, ctx.setting * d.batch_size / d.n_samples


def decoupled_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """decoupled — AdamW-style decay w ← w·(1 − η λ), outside the adaptive update.

    λ_g = λ. Source: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
    """
    return ctx.lr, ctx.setting


def normalized_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """normalized — λ = λ_norm · sqrt(B / (N · T)), decoupled.

    Keeps the total decay over a run fixed across run lengths and data sizes; λ_norm ≈ 0.025–0.05
    transferred CIFAR-10 → ImageNet32. Source: Loshchilov & Hutter, ICLR 2019, App. B.1.
    """
    d = _need(ctx, "normalized", "n_samples", "batch_size", "epochs")
    return ctx.lr, ctx.setting * math.sqrt(d.batch_size / (d.n_samples * d.total_epochs))


def independent_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """independent — decay not multiplied by the lr: w ← w·(1 − s_t λ̃), s_t the schedule factor.

    In torch's AdamW terms λ_g = λ̃ / η_g, so the per-step decay is λ̃ whatever the peak lr or
    width. Source: Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training
    instabilities"; unit-scaling's `independent_weight_decay`.
    """
    return ctx.lr, ctx.setting / ctx.lr


def timescale_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """timescale — hold AdamW's EMA timescale τ (in epochs) fixed for every group at every size.

    τ_iter = τ · N / B;  λ_g = 1 / (η_g · τ_iter), decoupled. With a base model the groups take
    μP's lr (hidden η/m for Adam), as in the source's experiments, so λ_g ∝ fan_in; λ ∝ B; λ ∝ 1/N.
    Source: Wang & Aitchison, "How to set AdamW's weight decay as you scale model and dataset
    size" (ICML 2025).
    """
    d = _need(ctx, "timescale", "n_samples", "batch_size")
    lr_g = ctx.lr * mup_multipliers(p, ctx.sgd)[0]
    return lr_g, 1.0 / (lr_g * ctx.setting * d.steps_per_epoch)


POWER_LINES_EXPONENT = -0.527


def power_lines_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """power_lines — optimal τ from tokens per parameter: τ = c · TPP^−0.527, TPP = D / P.

    τ = B / (η λ D) is the EMA timescale as a fraction of the run (D samples seen in all), so
    λ_g = B / (η_g · τ · D), decoupled; the setting is c (τ at TPP = 1). Groups take μP's lr with a
    base, as `timescale`. Source: Bergsma et al. 2025, "Power Lines: Scaling Laws for Weight Decay
    and Batch Size in LLM Pre-training" (exponent −0.527, R² 0.975 over 111M–3.3B parameters).
    """
    d = _need(ctx, "power_lines", "n_samples", "batch_size", "epochs")
    tau = ctx.setting * (d.samples_seen / ctx.n_params) ** POWER_LINES_EXPONENT
    lr_g = ctx.lr * mup_multipliers(p, ctx.sgd)[0]
    return lr_g, d.batch_size / (lr_g * tau * d.samples_seen)


def mup_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """mup — μP per-layer lr, with the decay scaled so each group's η_g·λ_g (its timescale) is fixed.

    Adam: hidden η/m, λ·m; SGD: vector-like η·m, λ/m, matrix-like η/r, λ·r (see
    `mup_multipliers`). Source: microsoft/mup `mup/optim.py` (MuAdam, MuAdamW, MuSGD; their
    `decoupled_wd=False` default scales λ this way); Yang et al. 2022, Tensor Programs V.
    """
    lr_mult, wd_mult = mup_multipliers(p, ctx.sgd)
    return ctx.lr * lr_mult, ctx.setting * wd_mult


def sqrt_width_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """sqrt_width — hidden matrices η ∝ 1/d and λ ∝ √d (η λ ∝ d^−½); vectors η = Θ(1), λ = 0.

    The rival of λ ∝ d: it holds the top singular value ≈ sqrt(η/λ)·d^0.75 of hidden layers.
    Other matrices take μP's Adam lr with λ·√(their width multiplier). Source: Fan et al. 2025,
    arXiv 2510.15262.
    """
    if len(p.shape) < 2:
        return ctx.lr, 0.0
    lr_mult, wd_mult = mup_multipliers(p, sgd=False)
    return ctx.lr * lr_mult, ctx.setting * math.sqrt(wd_mult)


def completep_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """completep — width and depth: hidden η · m_N⁻¹ · m_L^(α−1), λ · m_N; others as μP Adam.

    With α = 1 (the default) η λ is fixed across width and depth. The forward pass must also scale
    each residual branch by m_L^−α (a model choice, not the optimizer's). Source: Dey et al. 2025,
    "Don't be lazy: CompleteP enables compute-efficient deep transformers".
    """
    lr_mult, wd_mult = mup_multipliers(p, sgd=False)
    if p.kind == "hidden":
        return ctx.lr * lr_mult * ctx.depth_mult ** (ctx.alpha - 1.0), ctx.setting * wd_mult
    return ctx.lr * lr_mult, ctx.setting * wd_mult


def prior_matched_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """prior_matched — a Gaussian prior whose variance follows the init: σ_l² = c / fan_in.

    Coupled λ_l = 1 / (σ_l² N) = λ · fan_in / N with λ = 1/c, so wider layers (smaller init) are
    pulled harder. Source: the MAP reading of L2; MacKay's evidence framework for per-layer priors.
    """
    d = _need(ctx, "prior_matched", "n_samples")
    return ctx.lr, ctx.setting * p.fan_in / d.n_samples


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    fn: Callable[[ParamInfo, Context], tuple[float, float]]
    summary: str
    formula: str
    source: str
    takes: str = "weight_decay"  # the setting it takes: "weight_decay" (λ) or "tau" (τ)
    mode: str = "coupled"  # "coupled" | "decoupled" | "optimizer"
    optimizers: tuple[str, ...] = ("sgd", "adam", "adamw")

    def decay_mode(self, optimizer: str) -> str:
        if self.mode != "optimizer":
            return self.mode
        return "decoupled" if optimizer == "adamw" else "coupled"

    def __call__(self, p: ParamInfo, ctx: Context) -> tuple[float, float]:
        return self.fn(p, ctx)


def _rule(name: str, fn, summary: str, formula: str, **kw) -> Rule:
    source = fn.__doc__.rsplit("Source:", 1)[1].strip().replace("\n", " ")
    return Rule(name=name, fn=fn, summary=summary, formula=formula, source=" ".join(source.split()), **kw)


RULES: dict[str, Rule] = {
    r.name: r
    for r in [
        _rule("sum", sum_rule, "coupled L2 on Σw²: per-coordinate pull independent of model size", "λ_g = λ"),
        _rule("mean", mean_rule, "coupled L2 on Σw²/P: per-weight decay falls as 1/P", "λ_g = λ / P"),
        _rule("per_sample", per_sample_rule, "MAP: both loss terms divided by N (λ = prior precision)", "λ_g = λ / N"),
        _rule(
            "per_minibatch",
            per_minibatch_rule,
            "λ per epoch, divided by the N/B minibatches (Bengio 2012)",
            "λ_g = λ · B / N",
        ),
        _rule("decoupled", decoupled_rule, "AdamW decoupled decay w ← w(1 − ηλ)", "λ_g = λ", mode="decoupled"),
        _rule(
            "normalized",
            normalized_rule,
            "AdamW normalised decay, fixed over run length and data size",
            "λ_g = λ · sqrt(B / (N T))",
            mode="decoupled",
        ),
        _rule(
            "independent",
            independent_rule,
            "decay not multiplied by lr: per-step decay λ",
            "λ_g = λ / η_g",
            mode="decoupled",
        ),
        _rule(
            "timescale",
            timescale_rule,
            "fixed AdamW EMA timescale τ in epochs, every group, every size",
            "λ_g = B / (η_g · N · τ)",
            takes="tau",
            mode="decoupled",
        ),
        _rule(
            "power_lines",
            power_lines_rule,
            "τ = c · TPP^−0.527 from tokens per parameter",
            "λ_g = B / (η_g · D · c · (D/P)^−0.527)",
            takes="tau",
            mode="decoupled",
        ),
        _rule(
            "mup",
            mup_rule,
            "μP per-layer lr; λ scaled to keep η_g λ_g fixed per group",
            "Adam: hidden η/m, λ·m; SGD: vector η·m, λ/m, matrix η/r, λ·r",
            mode="optimizer",
        ),
        _rule(
            "sqrt_width",
            sqrt_width_rule,
            "hidden η ∝ 1/d, λ ∝ √d; vectors λ = 0 (Fan et al. 2025)",
            "hidden: η/m, λ·√m",
            mode="optimizer",
            optimizers=("adam", "adamw"),
        ),
        _rule(
            "completep",
            completep_rule,
            "width and depth: hidden η m_N⁻¹ m_L^(α−1), λ m_N (CompleteP)",
            "hidden: η · m_N⁻¹ · m_L^(α−1), λ · m_N",
            mode="optimizer",
            optimizers=("adam", "adamw"),
        ),
        _rule(
            "prior_matched",
            prior_matched_rule,
            "prior variance ∝ init variance: λ_l ∝ fan_in / N",
            "λ_l = λ · fan_in / N",
        ),
    ]
}


def get_rule(name: str) -> Rule:
    if not isinstance(name, str) or name not in RULES:
        raise ValueError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}")
    return RULES[name]


def setting_kind(rule: str) -> str:
    """ "weight_decay" or "tau": which setting the rule takes (and a study sweeps)."""
    return get_rule(rule).takes


def setting_kwargs(rule: str, setting: float) -> dict[str, float]:
    """{"weight_decay": s} or {"tau": s}, as `param_groups` / `optimizer` take it for this rule."""
    return {setting_kind(rule): setting}
