"""Weight-decay scaling rules: one size-free setting -> per-parameter (lr, weight_decay).

Each rule is a small pure function `(param: ParamInfo, ctx: Context) -> (lr_g, λ_g)` held in a
`Rule` with its formula and source. λ_g is what torch takes as `weight_decay`:

* coupled rules add λ_g·w to the gradient (torch SGD / Adam `weight_decay`), i.e. the loss gains
  (λ_g/2)·Σ w². Factor-2 convention: a penalty written `λ_q Σ w²` has gradient 2λ_q·w, so λ_g = 2λ_q.
* decoupled rules shrink `w ← w·(1 − lr_g·λ_g)` each step (torch AdamW; wdscale.SGDW for SGD).
* rules with mode "optimizer" follow the optimizer's name: "adamw" and "muon" decoupled, "sgd"/"adam"
  coupled.

Under "muon" (`torch.optim.Muon` for the 2-D hidden matrices, AdamW for the rest; see `wdscale.muon`)
only decoupled rules have a meaning: Muon orthogonalises the gradient, so an L2 term added to it
is no decay. Torch's Muon shrinks w ← w·(1 − η_g λ_g) with the group's lr η_g and scales only the
update by s(A, B), so every τ = 1/(η_g λ_g) here is read at the group's lr, on both sides.

Notation: η the base lr, λ the setting (τ for rules that take tau), B batch size, N training
samples, T epochs, D = N·T samples seen in the run, P decayed parameters, m (m_N) the width
multiplier against the base model, m_L the depth multiplier, r = fan_in multiplier / fan_out
multiplier. Parameters that are not decayed (vectors unless asked, `no_weight_decay()` names) get
λ_g = 0 whatever the rule says; their lr still follows the rule.

Add a rule of your own with `register_rule(Rule(...))`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Literal, Optional, TypedDict, get_args

from .checks import check_choice, check_positive, check_positive_int
from .errors import WdscaleError, WdscaleTypeError
from .groups import ParamInfo
from .muon import AdjustLR, update_scale

OptimizerName = Literal["sgd", "adam", "adamw", "muon"]
OPTIMIZER_NAMES: tuple[OptimizerName, ...] = get_args(OptimizerName)
# what a rule is defined for unless it says otherwise: Muon's hidden groups need their own lr, so a
# rule takes "muon" only by naming it
PER_ENTRY_OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "adam", "adamw")
DecayMode = Literal["coupled", "decoupled"]
RuleMode = Literal["coupled", "decoupled", "optimizer"]  # "optimizer": decoupled under adamw and muon, else coupled
SettingKind = Literal["weight_decay", "tau"]  # what a rule takes: λ, or the timescale τ in epochs


@dataclass(frozen=True)
class DataFacts:
    """Facts about the training data and run that some rules need.

    Args:
        n_samples: training samples N (or sequences / tokens, in the unit the batch size counts).
        batch_size: B, samples per optimizer step; at most `n_samples`.
        epochs: T, passes over the data (a positive number); or give `steps` instead.
        steps: total optimizer steps (a positive integer); or give `epochs` instead.

    Raises:
        WdscaleError: a value out of range, a batch larger than the data, or both epochs and steps.
        WdscaleTypeError: a value that is not a number.
    """

    n_samples: int
    batch_size: int
    epochs: Optional[float] = None
    steps: Optional[int] = None

    def __post_init__(self) -> None:
        # numpy integers and floats are fine; store plain Python numbers
        for name in ("n_samples", "batch_size"):
            object.__setattr__(self, name, check_positive_int(f"DataFacts.{name}", getattr(self, name)))
        if self.batch_size > self.n_samples:
            raise WdscaleError(
                f"DataFacts.batch_size={self.batch_size} is larger than n_samples={self.n_samples}: "
                "a batch cannot hold more samples than the data set; allowed: 1 <= batch_size <= n_samples"
            )
        if self.epochs is not None and self.steps is not None:
            raise WdscaleError(
                f"give DataFacts either epochs or steps, not both (got epochs={self.epochs!r}, "
                f"steps={self.steps!r}): steps = epochs · n_samples / batch_size"
            )
        if self.epochs is not None:
            epochs = check_positive("DataFacts.epochs", self.epochs)
            object.__setattr__(self, "epochs", int(epochs) if isinstance(self.epochs, numbers.Integral) else epochs)
        if self.steps is not None:
            object.__setattr__(self, "steps", check_positive_int("DataFacts.steps", self.steps))

    @property
    def steps_per_epoch(self) -> float:
        """N / B: optimizer steps per pass over the data."""
        return self.n_samples / self.batch_size

    @property
    def total_epochs(self) -> Optional[float]:
        """T: passes over the data in the whole run (from `steps` if given so); None if unknown."""
        if self.epochs is not None:
            return float(self.epochs)
        return None if self.steps is None else self.steps / self.steps_per_epoch

    @property
    def samples_seen(self) -> Optional[float]:
        """D: samples (tokens) processed in the whole run; None if the run length is unknown."""
        t = self.total_epochs
        return None if t is None else t * self.n_samples


@dataclass(frozen=True)
class Context:
    """What a rule knows besides the parameter itself: its second argument.

    Attributes:
        lr: the base learning rate η.
        setting: the size-free setting: λ, or τ for rules that take tau.
        optimizer: the optimizer's name.
        data: the data facts given to `param_groups` / `optimizer`, or None.
        n_decayed: P, decayed scalar parameters in the model.
        n_params: all trainable scalar parameters.
        depth_mult: m_L = depth / base depth.
        alpha: CompleteP's depth exponent.
        decay_vectors: whether the caller asked for vectors (biases, norm gains, embeddings that
            are not layers) to be decayed too.
        adjust_lr: under "muon", Muon's lr adjustment ("match_rms_adamw" or "original"); else None.
    """

    lr: float
    setting: float
    optimizer: OptimizerName
    data: Optional[DataFacts]
    n_decayed: int
    n_params: int
    depth_mult: float = 1.0
    alpha: float = 1.0
    decay_vectors: bool = False
    adjust_lr: Optional[AdjustLR] = None

    @property
    def sgd(self) -> bool:
        """The optimizer is SGD (μP's multipliers differ for SGD and Adam)."""
        return self.optimizer == "sgd"


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


def goes_to_muon(p: ParamInfo) -> bool:
    """Whether "muon" trains this parameter with Muon: a hidden matrix (two dimensions that grow
    with width, or the inner layers by position without a base) stored 2-D, as Keller Jordan's
    reference and Moonlight split them; everything else goes to AdamW."""
    return p.kind == "hidden" and len(p.shape) == 2


def muon_lr_multiplier(p: ParamInfo, adjust_lr: AdjustLR) -> float:
    """The spectral lr multiplier of a Muon matrix against its base: (lr multiplier, its inverse for λ).

    The spectral condition for feature learning (Yang, Simon & Bernstein, "A Spectral Condition for
    Feature Learning", 2023, arXiv:2310.17813) asks each update's spectral norm to be
    Θ(√(fan_out / fan_in)). Muon's update is η_g·s(A, B)·O with O the Newton–Schulz orthogonalised
    momentum, whose singular values are all ≈ 1 (assumed: ‖O‖ = Θ(1) at every width), so
    η_g ∝ √(fan_out / fan_in) / s(A, B). Against the base (A₀, B₀ = the shape over the fan
    multipliers) that is `(√(fo/fi)/s(A, B)) / (√(fo₀/fi₀)/s(A₀, B₀))`: for a hidden matrix whose
    both dimensions grow by m, 1 under "original" and 1/√m under "match_rms_adamw" — not AdamW's μP
    1/m, which assumes an update of low stable rank (spectral norm ∝ d·RMS) where the orthogonalised
    update is full rank (∝ √d·RMS): matching the RMS carries AdamW's lr over at one width, not
    across widths.
    """
    fo, fi = p.fan_out, p.fan_in
    fo0, fi0 = fo / p.fan_out_mult, fi / p.fan_in_mult
    stored_out_first = p.shape[0] == fo and p.shape[1] == fi
    shape0 = (fo0, fi0) if stored_out_first else (fi0, fo0)
    now = math.sqrt(fo / fi) / update_scale(p.shape, adjust_lr)
    base = math.sqrt(fo0 / fi0) / update_scale(shape0, adjust_lr)  # type: ignore[arg-type]
    return now / base


def width_multipliers(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """The per-layer (lr multiplier, λ multiplier) the width rules use, their product 1: μP's
    (`mup_multipliers`) for SGD, Adam and AdamW and for the AdamW side of "muon"; the spectral one
    (`muon_lr_multiplier`) for the matrices Muon trains."""
    if ctx.optimizer == "muon" and goes_to_muon(p):
        m = muon_lr_multiplier(p, ctx.adjust_lr or "match_rms_adamw")
        return m, 1.0 / m
    return mup_multipliers(p, ctx.sgd)


def _need(ctx: Context, rule: str, *facts: str) -> DataFacts:
    """The data facts a rule needs, or a WdscaleError naming them."""
    if ctx.data is None:
        raise WdscaleError(
            f"rule {rule!r} needs data=DataFacts({', '.join(f + '=...' for f in facts)}); none was given"
        )
    if "epochs" in facts and ctx.data.total_epochs is None:
        raise WdscaleError(f"rule {rule!r} needs the run length: DataFacts(epochs=...) or DataFacts(steps=...)")
    return ctx.data


def _run_length(d: DataFacts) -> tuple[float, float]:
    """(T epochs, D samples seen) of a run whose length `_need(..., "epochs")` has checked."""
    epochs = d.total_epochs
    assert epochs is not None, "_need checks the run length first"
    return epochs, epochs * d.n_samples


# -- the rules ------------------------------------------------------------------------------------
# Each takes (parameter, context) and returns (lr_g, λ_g); the registry below holds its formula and
# source.


def sum_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """sum — coupled L2 on the sum of squares: loss + (λ/2) Σ w², gradient gains λ·w.

    λ_g = λ. The per-coordinate pull does not depend on P.
    """
    return ctx.lr, ctx.setting


def mean_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """mean — coupled L2 on the mean of squares: loss + (λ/2P) Σ w², P = decayed parameters.

    λ_g = λ / P: the per-weight decay falls as 1/P, so the optimal λ must grow ∝ P just to stand
    still.
    """
    return ctx.lr, ctx.setting / ctx.n_decayed if ctx.n_decayed else 0.0


def per_sample_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """per_sample — the MAP form: (Σ_i CE_i + (λ/2) Σ w²) / N, λ = 1/σ² the prior precision.

    λ_g = λ / N: a Gaussian prior N(0, σ²) is worth less as data grows.
    """
    return ctx.lr, ctx.setting / _need(ctx, "per_sample", "n_samples").n_samples


def per_minibatch_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """per_minibatch — λ given per epoch, spread over the N/B minibatches of an epoch.

    λ_g = λ · B / N (coupled).
    """
    d = _need(ctx, "per_minibatch", "n_samples", "batch_size")
    return ctx.lr, ctx.setting * d.batch_size / d.n_samples


def decoupled_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """decoupled — AdamW-style decay w ← w·(1 − η λ), outside the adaptive update.

    λ_g = λ.
    """
    return ctx.lr, ctx.setting


def normalized_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """normalized — λ = λ_norm · sqrt(B / (N · T)), decoupled.

    Keeps the total decay over a run fixed across run lengths and data sizes; λ_norm ≈ 0.025–0.05
    transferred CIFAR-10 → ImageNet32 in the source.
    """
    d = _need(ctx, "normalized", "n_samples", "batch_size", "epochs")
    epochs, _ = _run_length(d)
    return ctx.lr, ctx.setting * math.sqrt(d.batch_size / (d.n_samples * epochs))


def independent_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """independent — decay not multiplied by the lr: w ← w·(1 − s_t λ̃), s_t the schedule factor.

    In torch's AdamW terms λ_g = λ̃ / η_g, so the per-step decay is λ̃ whatever the peak lr or
    width.
    """
    return ctx.lr, ctx.setting / ctx.lr


def timescale_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """timescale — hold AdamW's EMA timescale τ (in epochs) fixed for every group at every size.

    τ_iter = τ · N / B;  λ_g = 1 / (η_g · τ_iter), decoupled. With a base model the groups take
    μP's lr (hidden η/m for Adam), as in the source's experiments, so λ_g ∝ fan_in; λ ∝ B; λ ∝ 1/N.
    Under "muon" Muon's matrices take the spectral lr (`muon_lr_multiplier`) and τ is read at the
    group's lr η_g, the lr torch's Muon multiplies λ by (the adjustment s(A, B) scales the update
    only), so every group still forgets with the same τ.
    """
    d = _need(ctx, "timescale", "n_samples", "batch_size")
    lr_g = ctx.lr * width_multipliers(p, ctx)[0]
    return lr_g, 1.0 / (lr_g * ctx.setting * d.steps_per_epoch)


POWER_LINES_EXPONENT = -0.527


def power_lines_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """power_lines — optimal τ from tokens per parameter: τ = c · TPP^−0.527, TPP = D / P.

    τ = B / (η λ D) is the EMA timescale as a fraction of the run (D samples seen in all), so
    λ_g = B / (η_g · τ · D), decoupled; the setting is c (τ at TPP = 1). Groups take μP's lr with a
    base (under "muon" the spectral lr for Muon's matrices), as `timescale`. The exponent −0.527
    was fitted (R² 0.975) over 111M–3.3B parameters.
    """
    d = _need(ctx, "power_lines", "n_samples", "batch_size", "epochs")
    _, samples_seen = _run_length(d)
    tau = ctx.setting * (samples_seen / ctx.n_params) ** POWER_LINES_EXPONENT
    lr_g = ctx.lr * width_multipliers(p, ctx)[0]
    return lr_g, d.batch_size / (lr_g * tau * samples_seen)


def mup_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """mup — μP per-layer lr, with the decay scaled so each group's η_g·λ_g (its timescale) is fixed.

    Adam: hidden η/m, λ·m; SGD: vector-like η·m, λ/m, matrix-like η/r, λ·r (see
    `mup_multipliers`); mup's MuAdam/MuAdamW/MuSGD with their `decoupled_wd=False` default scale λ
    this way. Muon (its matrices): the spectral lr of `muon_lr_multiplier` (hidden m×: 1 under
    "original", 1/√m under "match_rms_adamw") and λ by its inverse, so η_g·λ_g is fixed there too;
    the AdamW side as Adam.
    """
    lr_mult, wd_mult = width_multipliers(p, ctx)
    return ctx.lr * lr_mult, ctx.setting * wd_mult


def sqrt_width_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """sqrt_width — hidden matrices η ∝ 1/d and λ ∝ √d (η λ ∝ d^−½); vectors η = Θ(1), λ = 0
    (unless `decay_vectors=True`: then λ as given).

    The rival of λ ∝ d: it holds the top singular value ≈ sqrt(η/λ)·d^0.75 of hidden layers.
    Other matrices take μP's Adam lr with λ·√(their width multiplier).
    """
    lr_mult, wd_mult = mup_multipliers(p, sgd=False)
    if (len(p.shape) < 2 or p.kind == "vector") and not ctx.decay_vectors:
        # a vector may have several dimensions (a ViT's class token 1×1×d, position embedding
        # 1×T×d): what makes it one is a single growing dimension, not its rank
        return ctx.lr * lr_mult, 0.0
    return ctx.lr * lr_mult, ctx.setting * math.sqrt(wd_mult)


def completep_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """completep — width and depth: hidden η · m_N⁻¹ · m_L^(α−1), λ · m_N; others as μP Adam.

    With α = 1 (the default) η λ is fixed across width and depth. The forward pass must also scale
    each residual branch by m_L^−α (a model choice, not the optimizer's).
    """
    lr_mult, wd_mult = mup_multipliers(p, sgd=False)
    if p.kind == "hidden":
        return ctx.lr * lr_mult * ctx.depth_mult ** (ctx.alpha - 1.0), ctx.setting * wd_mult
    return ctx.lr * lr_mult, ctx.setting * wd_mult


def prior_matched_rule(p: ParamInfo, ctx: Context) -> tuple[float, float]:
    """prior_matched — a Gaussian prior whose variance follows the init: σ_l² = c / fan_in.

    Coupled λ_l = 1 / (σ_l² N) = λ · fan_in / N with λ = 1/c, so wider layers (smaller init) are
    pulled harder.
    """
    d = _need(ctx, "prior_matched", "n_samples")
    return ctx.lr, ctx.setting * p.fan_in / d.n_samples


# -- the registry ---------------------------------------------------------------------------------

RuleFn = Callable[[ParamInfo, Context], tuple[float, float]]


@dataclass(frozen=True)
class Rule:
    """A weight-decay scaling rule: its function and what a person needs to know about it.

    Args:
        name: the name `param_groups(rule=...)` and the CLI take.
        fn: `(param: ParamInfo, ctx: Context) -> (lr_g, λ_g)`, a pure function.
        summary: one line on what the rule does.
        formula: λ_g (and lr_g where it changes) in the notation of this module.
        source: where the rule comes from: the paper or project, as a citation.
        takes: the setting it takes: "weight_decay" (λ) or "tau" (τ, in epochs).
        mode: "coupled", "decoupled", or "optimizer" (decoupled under adamw, coupled otherwise).
        optimizers: the optimizers it is defined for (default sgd, adam, adamw: a rule takes "muon"
            only by naming it, and only a decoupled rule can).
        needs_base: it scales lr and λ with width against a base model, so `param_groups`,
            `optimizer` and `explain` refuse it without `base` (or mup's infshape).

    Raises:
        WdscaleError: a field out of its value set (an unknown mode, setting or optimizer; an
            empty name, summary, formula or source).
        WdscaleTypeError: `fn` is not callable.
    """

    name: str
    fn: RuleFn
    summary: str
    formula: str
    source: str
    takes: SettingKind = "weight_decay"
    mode: RuleMode = "coupled"
    optimizers: tuple[OptimizerName, ...] = PER_ENTRY_OPTIMIZERS
    needs_base: bool = False

    def __post_init__(self) -> None:
        for text in ("name", "summary", "formula", "source"):
            value = getattr(self, text)
            if not isinstance(value, str) or not value.strip():
                raise WdscaleError(f"Rule.{text}={value!r} is not allowed: Rule.{text} must be a non-empty string")
        if not callable(self.fn):
            raise WdscaleTypeError(f"Rule.fn must be a function (param, ctx) -> (lr, weight_decay), got {self.fn!r}")
        check_choice("Rule.takes", self.takes, get_args(SettingKind))
        check_choice("Rule.mode", self.mode, get_args(RuleMode))
        if "muon" in self.optimizers and self.mode == "coupled":
            raise WdscaleError(
                f"rule {self.name!r} is coupled (L2 in the gradient) and names 'muon': Muon orthogonalises "
                "the gradient, so an L2 term is no decay there; only decoupled rules can take 'muon'"
            )
        if not self.optimizers:
            raise WdscaleError(f"Rule.optimizers is empty for rule {self.name!r}: name one of {OPTIMIZER_NAMES}")
        for opt in self.optimizers:
            check_choice("Rule.optimizers", opt, OPTIMIZER_NAMES)

    def decay_mode(self, optimizer: OptimizerName) -> DecayMode:
        """How this rule's decay is applied under `optimizer`: "coupled" (L2) or "decoupled"."""
        if self.mode != "optimizer":
            return self.mode
        return "decoupled" if optimizer in ("adamw", "muon") else "coupled"

    def __call__(self, p: ParamInfo, ctx: Context) -> tuple[float, float]:
        return self.fn(p, ctx)


_LOSHCHILOV_HUTTER = 'Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019'
_TENSOR_PROGRAMS_V = (
    'Yang et al., "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", 2022'
)

_BUILTIN_RULES = [
    Rule(
        "sum",
        sum_rule,
        "coupled L2 on Σw²: per-coordinate pull independent of model size",
        "λ_g = λ",
        'standard L2 regularisation; Krogh & Hertz, "A Simple Weight Decay Can Improve Generalization", NIPS 1991',
    ),
    Rule(
        "mean",
        mean_rule,
        "coupled L2 on Σw²/P: per-weight decay falls as 1/P",
        "λ_g = λ / P",
        "the sum rule's penalty averaged over the P decayed parameters (a normalisation, no paper)",
    ),
    Rule(
        "per_sample",
        per_sample_rule,
        "MAP: both loss terms divided by N (λ = prior precision)",
        "λ_g = λ / N",
        'MAP estimation with a Gaussian prior; MacKay, "A Practical Bayesian Framework for Backpropagation '
        "Networks\", Neural Computation 1992; laplace-torch's prior precision",
    ),
    Rule(
        "per_minibatch",
        per_minibatch_rule,
        "λ per epoch, divided by the N/B minibatches (Bengio 2012)",
        "λ_g = λ · B / N",
        'Bengio, "Practical Recommendations for Gradient-Based Training of Deep Architectures", 2012',
    ),
    Rule(
        "decoupled",
        decoupled_rule,
        "AdamW decoupled decay w ← w(1 − ηλ)",
        "λ_g = λ",
        _LOSHCHILOV_HUTTER,
        mode="decoupled",
        optimizers=OPTIMIZER_NAMES,
    ),
    Rule(
        "normalized",
        normalized_rule,
        "AdamW normalised decay, fixed over run length and data size",
        "λ_g = λ · sqrt(B / (N T))",
        f"{_LOSHCHILOV_HUTTER}, Appendix B.1",
        mode="decoupled",
        optimizers=OPTIMIZER_NAMES,
    ),
    Rule(
        "independent",
        independent_rule,
        "decay not multiplied by lr: per-step decay λ",
        "λ_g = λ / η_g",
        'Wortsman et al., "Small-scale proxies for large-scale Transformer training instabilities", 2023; '
        "unit-scaling's independent_weight_decay",
        mode="decoupled",
        optimizers=OPTIMIZER_NAMES,
    ),
    Rule(
        "timescale",
        timescale_rule,
        "fixed AdamW EMA timescale τ in epochs, every group, every size",
        "λ_g = B / (η_g · N · τ)",
        'Wang & Aitchison, "How to set AdamW\'s weight decay as you scale model and dataset size", ICML 2025',
        takes="tau",
        mode="decoupled",
        optimizers=OPTIMIZER_NAMES,
    ),
    Rule(
        "power_lines",
        power_lines_rule,
        "τ = c · TPP^−0.527 from tokens per parameter",
        "λ_g = B / (η_g · D · c · (D/P)^−0.527)",
        'Bergsma et al., "Power Lines: Scaling Laws for Weight Decay and Batch Size in LLM Pre-training", 2025',
        takes="tau",
        mode="decoupled",
        optimizers=OPTIMIZER_NAMES,
    ),
    Rule(
        "mup",
        mup_rule,
        "μP per-layer lr; λ scaled to keep η_g λ_g fixed per group",
        "Adam: hidden η/m, λ·m; SGD: vector η·m, λ/m, matrix η/r, λ·r",
        f"{_TENSOR_PROGRAMS_V}; microsoft/mup, mup/optim.py (MuAdam, MuAdamW, MuSGD)",
        mode="optimizer",
        optimizers=OPTIMIZER_NAMES,
        needs_base=True,
    ),
    Rule(
        "sqrt_width",
        sqrt_width_rule,
        "hidden η ∝ 1/d, λ ∝ √d; vectors λ = 0 (Fan et al. 2025)",
        "hidden: η/m, λ·√m",
        "Fan et al., 2025, arXiv:2510.15262",
        mode="optimizer",
        optimizers=("adam", "adamw"),
        needs_base=True,
    ),
    Rule(
        "completep",
        completep_rule,
        "width and depth: hidden η m_N⁻¹ m_L^(α−1), λ m_N (CompleteP)",
        "hidden: η · m_N⁻¹ · m_L^(α−1), λ · m_N",
        'Dey et al., "Don\'t be lazy: CompleteP enables compute-efficient deep transformers", 2025',
        mode="optimizer",
        optimizers=("adam", "adamw"),
        needs_base=True,
    ),
    Rule(
        "prior_matched",
        prior_matched_rule,
        "prior variance ∝ init variance: λ_l ∝ fan_in / N",
        "λ_l = λ · fan_in / N",
        "the MAP reading of L2 with a per-layer Gaussian prior as wide as the init; MacKay, "
        '"A Practical Bayesian Framework for Backpropagation Networks", Neural Computation 1992',
    ),
]

RULES: dict[str, Rule] = {r.name: r for r in _BUILTIN_RULES}


def register_rule(rule: Rule) -> Rule:
    """Add a rule of your own: `param_groups`, `optimizer`, `explain` and `wdscale rules` take it.

    Args:
        rule: the rule; its `name` must be new.

    Returns:
        `rule`, so `register_rule(Rule(...))` can stand in an assignment.

    Raises:
        WdscaleTypeError: `rule` is not a `wdscale.Rule`.
        WdscaleError: a rule of that name is registered already.
    """
    if not isinstance(rule, Rule):
        raise WdscaleTypeError(f"register_rule takes a wdscale.Rule, got {type(rule).__name__}")
    if rule.name in RULES:
        raise WdscaleError(
            f"a rule named {rule.name!r} is registered already ({RULES[rule.name].summary}); give yours another name"
        )
    RULES[rule.name] = rule
    return rule


def get_rule(name: str) -> Rule:
    """The registered rule of this name.

    Args:
        name: a key of `RULES`.

    Returns:
        The `Rule`.

    Raises:
        WdscaleError: no rule has this name.
    """
    if not isinstance(name, str) or name not in RULES:
        raise WdscaleError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}")
    return RULES[name]


def setting_kind(rule: str) -> SettingKind:
    """Which setting the rule takes (and a study sweeps).

    Args:
        rule: a rule name.

    Returns:
        "weight_decay" (λ) or "tau" (τ, in epochs).

    Raises:
        WdscaleError: no rule has this name.
    """
    return get_rule(rule).takes


class SettingKwargs(TypedDict, total=False):
    """The setting as a keyword: exactly one of the two, the one the rule takes."""

    weight_decay: float
    tau: float


def setting_kwargs(rule: str, setting: float) -> SettingKwargs:
    """The setting as the keyword `param_groups` / `optimizer` take for this rule.

    Args:
        rule: a rule name.
        setting: the value of λ or τ.

    Returns:
        `{"weight_decay": setting}` or `{"tau": setting}`.

    Raises:
        WdscaleError: no rule has this name.
    """
    if setting_kind(rule) == "tau":
        return {"tau": setting}
    return {"weight_decay": setting}
