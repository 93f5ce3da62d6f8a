"""A study plan: sizes × decay settings × rules × seeds, checked before any run starts.

Every rule's decay grid is placed on the same effective decay at the base size, read on the hidden
weights as a timescale τ = 1/(η_g·λ_g) in optimizer steps against the run's T steps. By default
(`anchor_total_decay` and `decades` left out) the grid is placed for the run: from τ = 100·T (a
decay too weak to matter: the weights shrink 1 % over the run) to τ = T/30 (too strong: they
forget in a thirtieth of it), and never below τ = 2 steps, so a first study of any length
brackets its optimum or shows the loss flat at the weak end. Given `anchor_total_decay` (or
`decades`), the grid is centred where η_g·λ_g·T equals it, `decades` wide, as studies were planned
before (and as the committed ones were). Adam with coupled L2 has no per-step factor; its grid is
shifted by `COUPLED_ADAM_SHIFT`, measured on the built-in tasks. So rules in different units (λ,
λ/P, 1/σ², τ) sweep comparable ranges.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

from ...checks import check_fraction, check_number, check_positive, check_positive_int
from ...errors import WdscaleError, WdscaleTypeError
from ...groups import classify
from ...optim import OPTIMIZER_NAMES, ShrinkWarning, apply_rule
from ...rules import RULES, DataFacts, get_rule, setting_kwargs
from ...schedules import Schedule
from .config import SIZE_AXES, RunConfig, eval_steps

# Adam + coupled L2: the L2 gradient λw is divided by Adam's RMS gradient, so the same λ decays far
# harder than in AdamW. Measured on mnist1d_mlp / digits_mlp at the base width: the optimal coupled
# λ sat about 2.5 decades below the optimal decoupled λ.
COUPLED_ADAM_SHIFT = 10**-2.5
# a grid placed for the run (module doc): τ / T at its weak and strong ends, and the fewest steps
# τ may take (τ = 1 step zeroes a weight every step under decoupled decay)
WEAK_END_TAU = 100.0
STRONG_END_TAU = 1 / 30
MIN_TAU_STEPS = 2.0
# the centred grid's defaults, where a plan gives anchor_total_decay or decades
CENTRED_ANCHOR = 3.0
CENTRED_DECADES = 3.0


@dataclass
class StudyPlan:
    """Everything a study runs. Fields left None take the task's defaults."""

    task: str = "mnist1d_mlp"
    size_axis: str = "width"
    sizes: Optional[list[int]] = None
    rules: list[str] = field(default_factory=lambda: ["sum", "mean", "decoupled", "timescale", "mup"])
    optimizer: str = "adamw"
    seeds: int = 3
    settings: Optional[dict[str, list[float]]] = None  # explicit grid per rule; else the centred grid
    # decades added to one end of a rule's centred grid: +3 adds 3 decades of larger decay (λ up,
    # τ down), -1 one decade of smaller decay. For a rule whose optimum is expected to move far
    # with size (`mean` at λ ∝ P over a width study).
    extend: dict[str, float] = field(default_factory=dict)
    points_per_decade: int = 4
    # None (both): the grid is placed for the run (module doc); either given: a grid centred where
    # η_g λ_g × total steps (base size, hidden weights) is anchor_total_decay (default 3), decades wide
    # (default 3)
    decades: Optional[float] = None
    anchor_total_decay: Optional[float] = None
    lr: Optional[float] = None  # the base lr; with an lr grid, the fixed lr of the λ-only view
    # a joint study (lr × setting): `lrs` gives the lr grid, or `lr_decades` > 0 centres one on `lr`
    # (`lr_points_per_decade` per decade). Rules carry their own lr scaling (mup: hidden η/m), so
    # each rule is a recipe: a parameterisation with a decay rule, tuned on the same base lrs.
    lrs: Optional[list[float]] = None
    lr_decades: float = 0.0
    lr_points_per_decade: int = 2
    momentum: float = 0.9  # SGD only
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    n_train: Optional[int] = None
    width: Optional[int] = None  # fixed width when the size axis is not width
    depth: Optional[int] = None
    base_size: Optional[int] = None  # the size where the setting is tuned; default: the smallest
    decay_vectors: bool = False
    task_options: dict[str, Any] = field(default_factory=dict)
    # points added by `wdscale study refine` where the decision is made: "rule@size" → a list of
    # [setting, seeds] (a joint study: [setting, seeds, lr]); a point already in the grid gets
    # seeds 0..seeds-1 (if more than `seeds`), a new one is trained at those seeds. Part of the
    # plan, so the store holds one plan still.
    refined: dict[str, list[list[float]]] = field(default_factory=dict)
    # the first seed of every point (a point's n seeds are first_seed … first_seed + n − 1): a pick
    # re-scored on seeds its search never used (`wdscale tune --rescore-seeds`) starts far above 0
    first_seed: int = 0
    # the lr schedule every run trains under (`wdscale.schedules`): constant (the default), cosine,
    # linear (to zero) or wsd (warmup-stable-decay); warmup: fraction of a run's steps; final_lr:
    # fraction of the peak at the end (cosine, wsd); decay_fraction: wsd's final decay
    schedule: str = "constant"
    warmup: float = 0.0
    final_lr: float = 0.0
    decay_fraction: float = 0.2
    # validation evaluations per epoch (evenly spaced; the last at the epoch's end): a one-pass run's
    # intermediate losses, for a pruner (`tune --search tpe_hyperband`); training is unchanged
    evals_per_epoch: int = 1
    # the sizes where the coarse grid is trained (None: every size; []: none); elsewhere only the
    # refined points are (`wdscale tune` trains the grid at the bottom of its ladder and places the
    # rest; its Optuna baseline trains only the points its sampler asks for)
    grid_sizes: Optional[list[int]] = None
    # the most runs a plan may make before it is refused (a typo like --seeds 100000000 would
    # otherwise build billions of configs and exhaust the memory); raise it to mean it
    max_runs: int = 200_000
    # one pass over a token budget in proportion to the model (the regime of Chinchilla and Power
    # Lines): at every size n_train = tokens_per_param × parameters / the task's tokens per sample
    # (its context for a language model), trained for one epoch. None: n_train is the plan's.
    tokens_per_param: Optional[float] = None
    # the centred grid stops short of decay whose per-step shrink factor 1 − η_g·λ_g (AdamW-style
    # decay, at the base lr and size) reaches 0: such runs zero or flip their weights
    # every step and cannot learn. Plans stored before this existed read False (their grid as run).
    shrink_cap: bool = True

    def __post_init__(self) -> None:
        _check_types(self)

    @property
    def placed_for_run(self) -> bool:
        """Whether the default grids are placed for the run (else centred on anchor_total_decay)."""
        return self.anchor_total_decay is None and self.decades is None

    @property
    def lr_schedule(self) -> Schedule:
        """The plan's schedule, checked (a bad name or fraction raises, naming it)."""
        return Schedule(self.schedule, self.warmup, self.final_lr, self.decay_fraction)

    # -- (de)serialisation --

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not d["first_seed"]:  # a plan from seed 0 reads as every plan stored before the key (and a tune's arguments)
            del d["first_seed"]
        if d["evals_per_epoch"] == 1:  # likewise: one evaluation per epoch is what every older plan did
            del d["evals_per_epoch"]
        return d

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> StudyPlan:
        """A plan a study stored (plan.json, the store's meta): a key it predates takes the value
        its runs were planned with, not today's default."""
        if not isinstance(d, dict):
            raise WdscaleTypeError(f"a stored plan must be a table of plan keys, not a {type(d).__name__}")
        return cls.from_dict({**STORED_BEFORE, **d})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyPlan:
        if not isinstance(d, dict):
            raise WdscaleTypeError(f"a plan must be a table of plan keys, not a {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise WdscaleError(
                f"unknown plan key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}"
            )
        d = dict(d)
        # a config file may write a list as one comma-separated string, as the command line does
        if isinstance(d.get("sizes"), str):
            d["sizes"] = _int_list("sizes", d["sizes"])
        if isinstance(d.get("lrs"), str):
            d["lrs"] = _float_list("lrs", d["lrs"])
        if isinstance(d.get("rules"), str):
            d["rules"] = [r.strip() for r in d["rules"].split(",") if r.strip()]
        return cls(**d)

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_list(v: Any, item: Callable[[Any], bool]) -> bool:
    return isinstance(v, (list, tuple)) and all(item(x) for x in v)


# each plan key's type, as a test of its value and what the message says is allowed: a config file
# or plan.json can hold anything (`decay_vectors = "yes"` was once stored as a string), and the
# Python API builds the plan directly; the values themselves are checked by `resolve`
_KEY_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(("task", "size_axis", "optimizer", "schedule"), (lambda v: isinstance(v, str), "a string")),
    **dict.fromkeys(("decay_vectors", "shrink_cap"), (lambda v: isinstance(v, bool), "true or false")),
    **dict.fromkeys(
        ("seeds", "points_per_decade", "lr_points_per_decade", "max_runs", "first_seed", "evals_per_epoch"),
        (_is_int, "a whole number"),
    ),
    **dict.fromkeys(
        ("epochs", "batch_size", "n_train", "width", "depth", "base_size"),
        (lambda v: v is None or _is_int(v), "a whole number (or left out)"),
    ),
    **dict.fromkeys(("lr_decades", "momentum", "warmup", "final_lr", "decay_fraction"), (_is_real, "a number")),
    **dict.fromkeys(
        ("lr", "tokens_per_param", "decades", "anchor_total_decay"),
        (lambda v: v is None or _is_real(v), "a number (or left out)"),
    ),
    "rules": (
        lambda v: _is_list(v, lambda r: isinstance(r, str)),
        'a list of rule names, e.g. ["sum", "mup"] (or "sum,mup")',
    ),
    **dict.fromkeys(
        ("sizes", "grid_sizes"), (lambda v: v is None or _is_list(v, _is_int), "a list of whole numbers, e.g. [16, 64]")
    ),
    "lrs": (lambda v: v is None or _is_list(v, _is_real), "a list of numbers, e.g. [0.003, 0.01, 0.03]"),
    "settings": (
        lambda v: (
            v is None
            or (isinstance(v, dict) and all(isinstance(k, str) and _is_list(g, _is_real) for k, g in v.items()))
        ),
        "a table of rule → list of settings, e.g. {mup = [0.1, 0.3, 1.0]}",
    ),
    "extend": (
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_real(d) for k, d in v.items()),
        "a table of rule → decades (e.g. {mean = 3})",
    ),
    "task_options": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a table"),
    "refined": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and _is_list(p, lambda e: _is_list(e, _is_real)) for k, p in v.items())
        ),
        "a table of RULE@SIZE → [[setting, seeds], ...]",
    ),
}
assert set(_KEY_TYPES) == {f.name for f in dataclasses.fields(StudyPlan)}, "a plan key without its type"


def _check_types(plan: StudyPlan) -> None:
    """Every plan key holds a value of its type: one error naming the key, what it holds and what
    is allowed. Lists given as tuples become lists (the plan is stored as JSON)."""
    for name, (ok, allowed) in _KEY_TYPES.items():
        value = getattr(plan, name)
        if not ok(value):
            raise WdscaleTypeError(f"plan key {name!r} must be {allowed}, got {value!r}")
        if isinstance(value, tuple):
            setattr(plan, name, list(value))


# bounds on a plan's numbers, so that no typo reaches an overflow, an allocation or a run that
# never ends (`--lr-decades 1e308` once raised OverflowError, `--epochs 1e12` hung)
MAX_DECADES = 30  # of a decay grid, an lr grid, or `extend`
MAX_RUN_STEPS = 10_000_000  # optimizer steps of one run: a tiny model's run of 10 million takes hours
MAX_TOKENS_PER_PARAM = 1e6

# plan keys added after studies were stored, with the value those studies were planned under
STORED_BEFORE: dict[str, Any] = {"shrink_cap": False}
MAX_FIRST_SEED = 2**31 - 1_000_000  # a seed torch takes, with room for the seeds after it

# what the MNIST-1D presets share: 2000 training samples (overfit at every width, so the decay
# setting matters at every size), 40 epochs, lr 0.01, 3 seeds, 4 decades of grid
_MNIST1D: dict[str, Any] = dict(task="mnist1d_mlp", lr=0.01, epochs=40, n_train=2000, seeds=3, decades=4.0)
_WIDTH_RULES = ["sum", "mean", "per_sample", "decoupled", "timescale", "mup"]
_DEPTHS: dict[str, Any] = dict(size_axis="depth", sizes=[1, 2, 4, 8], width=128)
_JOINT: dict[str, Any] = dict(lr_decades=2.0, lr_points_per_decade=2, points_per_decade=2, decades=4.0, seeds=2)

PRESETS: dict[str, dict[str, Any]] = {
    # a few minutes on 2 CPU cores (`make demo`)
    "quick": {**_MNIST1D, "sizes": [16, 64, 256], "rules": ["sum", "mean", "decoupled", "timescale", "mup"],
              "decades": 2.5},
    # the published figures (docs/findings.md): 64x in width, a grid wide enough for `mean`
    "full": {**_MNIST1D, "sizes": [16, 32, 64, 128, 256, 512, 1024], "rules": [*_WIDTH_RULES, "sqrt_width",
             "power_lines"], "extend": {"mean": 3.0}},
    # the same width study under SGD + momentum (sqrt_width is an Adam rule); 32x to keep it under 20 min
    "sgd_width": {**_MNIST1D, "sizes": [16, 32, 64, 128, 256, 512], "optimizer": "sgd", "lr": 0.1,
                  "rules": _WIDTH_RULES, "extend": {"mean": 3.0}},
    # the other findings (docs/findings.md); 5-45 min each on 2 cores, resumable from the store
    "digits_width": dict(task="digits_mlp", sizes=[32, 64, 128, 256, 512], rules=[*_WIDTH_RULES, "sqrt_width"],
                         epochs=50, seeds=3, decades=4.0, points_per_decade=3, extend={"mean": 3.0}),
    # widths 8-128: a width-256 run takes ~30 core-s. On a width axis per_sample is sum with λ×N and
    # timescale is mup with λ = 1/(η τ_iter) (same AdamW groups), so those two are left out here.
    "shakespeare_width": dict(task="shakespeare_char", sizes=[8, 16, 32, 64, 128],
                              rules=["sum", "mean", "decoupled", "mup", "sqrt_width"], seeds=3, decades=4.0,
                              points_per_decade=3, extend={"mean": 3.0}),
    # the transformer study's `mup` with the vectors (biases, LayerNorm gains and shifts) decayed too
    "shakespeare_vectors": dict(task="shakespeare_char", sizes=[8, 16, 32, 64, 128], rules=["mup"],
                                decay_vectors=True, seeds=3, decades=4.0, points_per_decade=3),
    "mnist1d_data": {**_MNIST1D, "size_axis": "n_train", "sizes": [250, 500, 1000, 2000, 4000], "width": 128,
                     "n_train": None,
                     "rules": ["sum", "per_sample", "per_minibatch", "normalized", "timescale", "power_lines"]},
    "mnist1d_batch": {**_MNIST1D, "size_axis": "batch_size", "sizes": [16, 32, 64, 128, 256], "width": 128,
                      "rules": ["sum", "per_sample", "per_minibatch", "normalized", "timescale"]},
    "mnist1d_depth": {**_MNIST1D, **_DEPTHS, "rules": ["sum", "decoupled", "mup", "completep"]},
    # depth on residual nets: CompleteP's optimizer half at fixed width and α = 1 is plain AdamW, so
    # the rule is tested with its forward half (branches × 1/depth) against the usual residual net
    "resmlp_depth": {**_MNIST1D, **_DEPTHS, "task": "mnist1d_resmlp", "rules": ["sum", "decoupled"]},
    "resmlp_depth_completep": {**_MNIST1D, **_DEPTHS, "task": "mnist1d_resmlp_completep",
                               "rules": ["sum", "completep"]},
    # λ and lr together (docs/findings.md §6): each rule is a recipe, tuned jointly on an lr ×
    # setting grid (2 per decade in both) at every size, 2 seeds; `wdscale study refine` then
    # adds points and seeds where the joint optimum is
    "joint_width": {**_MNIST1D, **_JOINT, "sizes": [32, 128, 512], "rules": ["sum", "decoupled", "mup"]},
    "joint_digits": dict(task="digits_mlp", sizes=[32, 128, 512], rules=["sum", "decoupled", "mup"], epochs=50,
                         **_JOINT),
    "joint_shakespeare": dict(task="shakespeare_char", sizes=[8, 32, 64], rules=["decoupled", "mup"],
                              **{**_JOINT, "lr_decades": 1.0}),
    "joint_data": {**_MNIST1D, **_JOINT, "size_axis": "n_train", "sizes": [250, 1000, 4000], "width": 128,
                   "n_train": None, "rules": ["per_sample", "decoupled", "timescale"]},
}  # fmt: skip

# the answer under a schedule (docs/findings.md §8): warmup then cosine to 10 % of the peak (the
# decaying schedules the published weight-decay laws were fitted under), and for `full` also
# warmup then linear decay to zero; each with the design the findings' replay recommended: every
# other setting of its constant-lr twin's coarse grid (same centre, half the points per decade),
# refined with `--seeds-at ends`. The joint studies keep their twin's grids.
_COSINE: dict[str, Any] = dict(schedule="cosine", warmup=0.05, final_lr=0.1)
_LINEAR: dict[str, Any] = dict(schedule="linear", warmup=0.05)
for _name in ("full", "mnist1d_data", "mnist1d_batch"):
    PRESETS[f"{_name}_cosine"] = {**PRESETS[_name], **_COSINE, "points_per_decade": 2}
# its twin has 3 settings a decade, so "every other" would be 1.5: 2 a decade, the same centre
PRESETS["shakespeare_width_cosine"] = {**PRESETS["shakespeare_width"], **_COSINE, "points_per_decade": 2}
PRESETS["full_linear"] = {**PRESETS["full"], **_LINEAR, "points_per_decade": 2}
for _name in ("joint_width", "joint_shakespeare"):
    PRESETS[f"{_name}_cosine"] = {**PRESETS[_name], **_COSINE}

# one pass over a token budget (docs/findings.md §9), the regime of Power Lines (Bergsma et al.
# 2025): the character transformer, 10 % warmup then linear decay to zero, lr × decay jointly.
# Across width at 20 tokens per parameter (widths 8-32: width 48 would need 20,691 of the 16,287
# training windows), and across tokens per parameter (5-80) at width 16, where μP is plain AdamW
# (width 16 is its own base), so the τ rule `timescale` sits beside `decoupled`. The grid is
# centred on a total decay of 0.3, not 3: a probe at 20 TPP found the optimum below 3's centre.
_ONEPASS: dict[str, Any] = dict(
    task="shakespeare_char",
    schedule="linear",
    warmup=0.1,
    lr=0.03,
    lr_decades=2.0,
    lr_points_per_decade=2,
    decades=4.0,
    points_per_decade=2,
    anchor_total_decay=0.3,
    seeds=2,
)
PRESETS["onepass_width"] = {
    **_ONEPASS,
    "sizes": [8, 12, 16, 24, 32],
    "tokens_per_param": 20.0,
    "rules": ["decoupled", "mup"],
}
# n_train in 64-token windows: 768 windows × 64 / 9,827 parameters = 5.0 tokens per parameter
PRESETS["onepass_tpp"] = {
    **_ONEPASS,
    "size_axis": "n_train",
    "width": 16,
    "epochs": 1,
    "sizes": [768, 1536, 3072, 6144, 12288],
    "rules": ["decoupled", "timescale"],
}

# issue 34's low-noise targets for `tune` (docs/findings.md §10): one pass under 10 % warmup then
# linear decay to zero, with validation sets large enough that a run's seed noise, not the
# validation sample, sets the noise floor. Text from a 4-character Markov chain fitted to
# Shakespeare (as many windows as 20 tokens per parameter asks: 35,261 at width 64; 2,048
# validation windows) and MNIST-1D from the generator (40,000 training samples, 20,000
# validation). Each family's ladder develops on its first target and is then tuned once, frozen,
# on its held-out one (2x wider); the reference sweeps are joint studies at [base, target].
_ONEPASS_LOW_NOISE: dict[str, Any] = {**_ONEPASS, "rules": ["decoupled", "mup"], "shrink_cap": True}
PRESETS["onepass_markov"] = {
    **_ONEPASS_LOW_NOISE,
    "task": "markov_char",
    "sizes": [8, 16, 32],
    "tokens_per_param": 20.0,
}
PRESETS["onepass_markov_32"] = {**PRESETS["onepass_markov"], "sizes": [8, 32]}
PRESETS["onepass_markov_64"] = {**PRESETS["onepass_markov"], "sizes": [8, 64]}
PRESETS["onepass_mnist1d"] = {
    **_ONEPASS_LOW_NOISE,
    "task": "mnist1d_mlp",
    "lr": 0.01,
    "epochs": 1,
    "n_train": 40_000,
    "batch_size": 128,
    "sizes": [32, 64, 128, 256],
    "task_options": {"n_pool": 40_000, "n_val": 20_000},
}
PRESETS["onepass_mnist1d_256"] = {**PRESETS["onepass_mnist1d"], "sizes": [32, 256]}
PRESETS["onepass_mnist1d_512"] = {**PRESETS["onepass_mnist1d"], "sizes": [32, 512]}
# the Markov target at 200 tokens per parameter, where one run's seed noise meets issue 34's 0.5 %
# (at 20 TPP width 32 scattered by 1.3 %: a few hundred steps leave the loss still falling steeply;
# a probe at width 32 read 0.4-1.2 % at 80 TPP, at width 8 0.2-0.3 % at 200). Widths 16 (where the
# ladder is developed) and 32 (held out, 3.2x the parameters), each swept with its μP base at the
# ladder's bottom rung (target/4: rungs 4-8-16 and 8-16-32), so the sweep and the climb share one
# lattice of settings; one training stream for the whole family (100,000 windows: one pass at
# width 32), so every rung and target trains on the same text
_MARKOV200: dict[str, Any] = {
    **PRESETS["onepass_markov"],
    "tokens_per_param": 200.0,
    "sizes": [4, 8, 16],
    "task_options": {"n_pool": 100_000},
}
PRESETS["onepass_markov200"] = _MARKOV200
PRESETS["onepass_markov200_16"] = {**_MARKOV200, "sizes": [4, 16]}
PRESETS["onepass_markov200_32"] = {**_MARKOV200, "sizes": [8, 32]}
# issue 34's second low-noise family, beside the transformer: an MLP language model on the same
# chain's text (`markov_mlp`: the next character from the previous four, one-hot inside the
# model; the MNIST-1D MLP's one-pass runs scatter 1-3 % from initialisation, so that family does
# not qualify). A probe (decoupled, 10 % warmup then linear decay, 4 seeds at each of 3 lrs × 3 λ
# about the best) read one run's seed s.d. of log validation loss, pooled over the points within
# 2 % of the best, at 0.35 % (width 32), 0.21 % (64) and 0.09 % (128, one lr) at 20 tokens per
# parameter, and no lower at 80 (0.27 % at 32, 0.31 % at 64): under the 0.5 % asked already at 20
# TPP, the cheapest budget, so the family stays there (a run at width 128 took 7.7 s on one busy
# core, batched). Widths 64 (where the ladder is developed) and 128 (held out, 2.3x the
# parameters), each swept with its μP base at the ladder's bottom rung (target/4: rungs 16-32-64
# and 32-64-128); one pool of 1.2M samples for the whole family (one pass at width 128 takes
# 1,191,740), and a smaller pool would be its prefix, so every rung trains on the same text.
_MARKOVMLP: dict[str, Any] = {
    **_ONEPASS_LOW_NOISE,
    "task": "markov_mlp",
    "lr": 0.02,
    "tokens_per_param": 20.0,
    "sizes": [16, 32, 64],
    "task_options": {"n_pool": 1_200_000},
}
PRESETS["onepass_markovmlp"] = _MARKOVMLP
PRESETS["onepass_markovmlp_64"] = {**_MARKOVMLP, "sizes": [16, 64]}
PRESETS["onepass_markovmlp_128"] = {**_MARKOVMLP, "sizes": [32, 128]}

# the committed studies (docs/findings) were planned before the grid stopped at zero shrink: their
# presets keep the grid as run, so running one again resumes it
for _name in PRESETS:
    if _name != "quick":
        PRESETS[_name].setdefault("shrink_cap", False)
    # every preset keeps the centred grid it was run with (its decades are given)
    PRESETS[_name].setdefault("anchor_total_decay", CENTRED_ANCHOR)

# Muon for the 2-D hidden matrices, AdamW for the rest (docs/findings.md §11), under warmup + cosine
# as their AdamW twins, on the twins' centred grids (the grid stops at zero shrink: these are new).
# λ across width with the rules that have a meaning for Muon (decoupled; independent: η·λ fixed;
# mup: Muon's spectral lr, 1/√m under match_rms_adamw); λ × lr jointly at the AdamW joint studies'
# widths, to read what reusing AdamW's tuned (lr, λ) costs.
_MUON_RULES = ["decoupled", "independent", "mup"]
PRESETS["muon_shakespeare_cosine"] = {
    **PRESETS["shakespeare_width_cosine"],
    "optimizer": "muon",
    "rules": _MUON_RULES,
    "extend": {},
    "shrink_cap": True,
}
PRESETS["muon_width_cosine"] = {
    **PRESETS["full_cosine"],
    "optimizer": "muon",
    # 16x in width, to fit ~40 min on one core (Muon trains one run at a time)
    "sizes": [16, 32, 64, 128, 256],
    "rules": _MUON_RULES,
    "extend": {},
    "shrink_cap": True,
}
PRESETS["joint_muon_shakespeare_cosine"] = {
    **PRESETS["joint_shakespeare_cosine"],
    "optimizer": "muon",
    "shrink_cap": True,
}
PRESETS["joint_muon_width_cosine"] = {
    **PRESETS["joint_width_cosine"],
    "optimizer": "muon",
    "rules": ["decoupled", "mup"],
    "shrink_cap": True,
}


# one line per preset, for `wdscale study run --help`
PRESET_HELP: dict[str, str] = {
    "quick": "MNIST-1D MLP, widths 16-256, 5 rules (`make demo`, ~2 min on 2 cores)",
    "full": "MNIST-1D MLP, widths 16-1024, 8 rules (the findings' width study, ~40 min)",
    "sgd_width": "the width study under SGD + momentum, widths 16-512",
    "digits_width": "scikit-learn digits MLP, widths 32-512, 7 rules",
    "shakespeare_width": "character-level transformer on Shakespeare, widths 8-128",
    "shakespeare_vectors": "the transformer's mup study with biases and LayerNorm decayed too",
    "mnist1d_data": "MNIST-1D MLP, training set 250-4000 samples",
    "mnist1d_batch": "MNIST-1D MLP, batch size 16-256",
    "mnist1d_depth": "MNIST-1D MLP, depth 1-8",
    "resmlp_depth": "residual MLP, depth 1-8",
    "resmlp_depth_completep": "residual MLP with CompleteP's 1/depth branches, depth 1-8",
    "joint_width": "lr × decay jointly: MNIST-1D MLP, widths 32-512, sum / decoupled / mup",
    "joint_digits": "lr × decay jointly: digits MLP, widths 32-512, sum / decoupled / mup",
    "joint_shakespeare": "lr × decay jointly: character transformer, widths 8-64, decoupled / mup",
    "joint_data": "lr × decay jointly: MNIST-1D MLP (w 128), n_train 250-4000, per_sample / decoupled / timescale",
    **{
        f"{name}_cosine": f"`{name}` under warmup + cosine to a tenth of the peak lr"
        + (", every other setting of its grid" if name.startswith("mnist1d") or name == "full" else "")
        for name in ("full", "mnist1d_data", "mnist1d_batch", "joint_width", "joint_shakespeare")
    },
    "shakespeare_width_cosine": "`shakespeare_width` under warmup + cosine to a tenth of the peak lr, 2 per decade",
    "full_linear": "`full` under warmup + linear decay to zero, every other setting of its grid",
    "onepass_width": "one pass over 20 tokens per parameter: character transformer, widths 8-32, decoupled / mup",
    "onepass_tpp": "one pass over 5-80 tokens per parameter: character transformer width 16, decoupled / timescale",
    "onepass_markov": "one pass, 20 tokens per parameter of Markov-chain text, transformer widths 8-32 (tune's ladder)",
    "onepass_markov_32": "`onepass_markov`'s reference sweep at width 32 (with its μP base 8)",
    "onepass_markov_64": "`onepass_markov`'s held-out reference sweep at width 64 (with its μP base 8)",
    "onepass_mnist1d": "one pass over 40,000 generated MNIST-1D samples (20,000 validation), MLP widths 32-256",
    "onepass_mnist1d_256": "`onepass_mnist1d`'s reference sweep at width 256 (with its μP base 32)",
    "onepass_mnist1d_512": "`onepass_mnist1d`'s held-out reference sweep at width 512 (with its μP base 32)",
    "onepass_markov200": "`onepass_markov` at 200 tokens per parameter, widths 4-16 (tune's ladder)",
    "onepass_markov200_16": "`onepass_markov200`'s reference sweep at width 16 (with its μP base 4)",
    "onepass_markov200_32": "`onepass_markov200`'s held-out reference sweep at width 32 (with its μP base 8)",
    "onepass_markovmlp": "one pass, 20 tokens per parameter of Markov-chain text, one-hot MLP widths 16-64 "
    "(tune's ladder)",
    "onepass_markovmlp_64": "`onepass_markovmlp`'s reference sweep at width 64 (with its μP base 16)",
    "onepass_markovmlp_128": "`onepass_markovmlp`'s held-out reference sweep at width 128 (with its μP base 32)",
    "muon_shakespeare_cosine": "`shakespeare_width_cosine` under Muon + AdamW: decoupled / independent / mup",
    "muon_width_cosine": "MNIST-1D MLP widths 16-256 under Muon + AdamW, cosine: decoupled / independent / mup",
    "joint_muon_shakespeare_cosine": "`joint_shakespeare_cosine` under Muon + AdamW (lr × decay jointly)",
    "joint_muon_width_cosine": "`joint_width_cosine` under Muon + AdamW (lr × decay jointly), decoupled / mup",
}
assert set(PRESET_HELP) == set(PRESETS)


def preset(name: str, **overrides: Any) -> StudyPlan:
    if name not in PRESETS:
        raise WdscaleError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    d = dict(PRESETS[name])
    d.update({k: v for k, v in overrides.items() if v is not None})
    return StudyPlan.from_dict(d)


def _int_list(name: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WdscaleError(f'{name} must be whole numbers, e.g. [16, 64, 256] or "16,64,256"; got {text!r}') from None


def _float_list(name: str, text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WdscaleError(
            f'{name} must be numbers, e.g. [0.003, 0.01, 0.03] or "0.003,0.01,0.03"; got {text!r}'
        ) from None


def load_plan_file(path: Union[str, Path]) -> dict[str, Any]:
    """A TOML or YAML file of plan keys (the same names as StudyPlan's fields)."""
    p = Path(path)
    if not p.is_file():
        raise WdscaleError(
            f"config file {str(p)!r} does not exist" if not p.exists() else f"config file {str(p)!r} is not a file"
        )
    if p.suffix not in (".toml", ".yaml", ".yml"):
        raise WdscaleError(f"config file {str(p)!r}: use .toml, .yaml or .yml")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise WdscaleError(f"config file {str(p)!r} cannot be read: {e}") from None
    if p.suffix == ".toml":
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise WdscaleError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    else:
        try:
            d = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise WdscaleError(f"config file {str(p)!r} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(d, dict):
        raise WdscaleError(f"config file {str(p)!r} must hold a table of plan keys")
    return d


def read_plan_json(path: Union[str, Path]) -> StudyPlan:
    """A study's plan.json, checked as a config file is: a file that is not JSON, not a table of
    plan keys, or holds a key of the wrong type is one error naming the file."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise WdscaleError(f"{str(p)!r} is not a readable plan (JSON): {' '.join(str(e).split())}") from None
    try:
        return StudyPlan.from_stored(d)
    except WdscaleError as e:
        raise type(e)(f"{str(p)!r}: {e}") from None


@dataclass(frozen=True)
class Resolved:
    """A plan with the task's defaults filled in."""

    plan: StudyPlan
    sizes: list[int]
    lr: float  # the base lr (the λ-only view's fixed lr in a joint study)
    lrs: list[float]  # the lr grid: [lr] unless the study is joint
    epochs: int
    batch_size: int
    n_train: int
    width: int
    depth: int
    base_size: int
    # n_train at each size when the plan gives a token budget per parameter (`tokens_per_param`)
    n_train_at: Optional[dict[int, int]] = None


def resolve(plan: StudyPlan, task, model_fn=None, *, shapes_only: bool = False) -> Resolved:
    """Fill defaults from `task` (a wdscale.study.plan.tasks.Task or a custom stand-in) and check
    everything; `model_fn` (default: the task's) counts the parameters of a token budget.
    `shapes_only`: the plan's sizes and model shapes, before any model is built (a token budget's
    n_train, which builds a model at every size, and what depends on it are left out)."""
    if plan.size_axis not in SIZE_AXES:
        raise WdscaleError(f"unknown size axis {plan.size_axis!r}; allowed: {', '.join(SIZE_AXES)}")
    if plan.optimizer not in OPTIMIZER_NAMES:
        raise WdscaleError(f"unsupported optimizer {plan.optimizer!r}; supported: {', '.join(OPTIMIZER_NAMES)}")
    if not plan.rules:
        raise WdscaleError("the plan has no rules: the grid is empty")
    for r in plan.rules:
        rule = get_rule(r)
        if plan.optimizer not in rule.optimizers:
            for_it = [n for n, known in RULES.items() if plan.optimizer in known.optimizers]
            raise WdscaleError(
                f"rule {r!r} is defined for {', '.join(rule.optimizers)}, not optimizer {plan.optimizer!r}"
                f"{' (Muon takes decoupled rules only)' if plan.optimizer == 'muon' else ''}; rules for "
                f"{plan.optimizer!r}: {', '.join(for_it)}"
            )
    if len(set(plan.rules)) != len(plan.rules):
        raise WdscaleError(f"rules repeat: {plan.rules}")
    check_positive_int("seeds", plan.seeds)
    if plan.first_seed < 0 or plan.first_seed > MAX_FIRST_SEED:
        raise WdscaleError(f"first_seed={plan.first_seed!r} is not allowed: a whole number from 0 to {MAX_FIRST_SEED}")
    check_positive_int("points_per_decade", plan.points_per_decade)
    if plan.decades is not None:
        check_positive("decades", plan.decades)
    if plan.anchor_total_decay is not None:
        check_positive("anchor_total_decay", plan.anchor_total_decay)
    for name, decades in (
        ("decades", plan.decades),
        ("lr_decades", plan.lr_decades),
        *((f"extend[{rule!r}]", dec) for rule, dec in plan.extend.items()),
    ):
        if decades is not None and abs(check_number(name, decades)) > MAX_DECADES:
            raise WdscaleError(f"{name}={decades!r} is not allowed: a grid spans at most {MAX_DECADES} decades")
    default_sizes = {"width": list(task.default_widths)}.get(plan.size_axis)
    sizes = plan.sizes if plan.sizes is not None else default_sizes
    if not sizes:
        raise WdscaleError(f"give sizes for the {plan.size_axis!r} axis: the grid is empty")
    for s in sizes:
        check_positive_int("sizes", s)
    sizes = sorted(set(sizes))
    if len(sizes) < 2:
        raise WdscaleError(f"a study needs at least two sizes to see a drift, got {sizes}")
    if plan.lr is None and plan.optimizer not in task.default_lr:
        raise WdscaleError(
            f"task {getattr(task, 'name', task)!r} has no default lr for optimizer {plan.optimizer!r} (it has "
            f"{', '.join(task.default_lr)}): give lr"
        )
    lr = check_positive("lr", plan.lr if plan.lr is not None else task.default_lr[plan.optimizer])
    if plan.tokens_per_param is not None and plan.epochs not in (None, 1):
        raise WdscaleError(
            f"tokens_per_param={plan.tokens_per_param!r} trains one pass over the budget, so epochs must be 1 "
            f"(or left out), got epochs={plan.epochs!r}"
        )
    epochs = check_positive_int(
        "epochs",
        1 if plan.tokens_per_param is not None else plan.epochs if plan.epochs is not None else task.default_epochs,
    )
    batch_size = check_positive_int(
        "batch_size", plan.batch_size if plan.batch_size is not None else task.default_batch_size
    )
    n_train = check_positive_int("n_train", plan.n_train if plan.n_train is not None else task.default_n_train)
    width = check_positive_int("width", plan.width if plan.width is not None else task.base_width)
    depth = check_positive_int("depth", plan.depth if plan.depth is not None else task.default_depth)
    base_size = plan.base_size if plan.base_size is not None else sizes[0]
    check_positive_int("base_size", base_size)
    if plan.size_axis in ("width", "depth") and base_size > sizes[0]:
        raise WdscaleError(
            f"base_size={base_size} is larger than the model at {plan.size_axis} {sizes[0]}: the base is the size "
            f"where the setting is tuned, at most the smallest {plan.size_axis} (equal: that size is the base); "
            "a larger one turns the width multipliers below 1"
        )
    if plan.optimizer == "sgd":
        check_fraction("momentum", plan.momentum)
    elif plan.momentum != StudyPlan.momentum:
        raise WdscaleError(
            f"momentum={plan.momentum!r} applies to optimizer 'sgd' only; {plan.optimizer!r} takes its betas "
            "from torch's defaults: leave momentum out"
        )
    if plan.lrs is None and not plan.lr_decades and plan.lr_points_per_decade != StudyPlan.lr_points_per_decade:
        raise WdscaleError(
            f"lr_points_per_decade={plan.lr_points_per_decade!r} spaces an lr grid, and this plan has none: "
            "give lr_decades (or lrs) too, or leave it out"
        )
    for rule_name, dec in plan.extend.items():
        if rule_name not in plan.rules:
            raise WdscaleError(f"extend names rule {rule_name!r}, which is not in the plan's rules {plan.rules}")
        if check_number(f"extend[{rule_name!r}]", dec) == 0:
            raise WdscaleError(f"extend[{rule_name!r}] must be a non-zero number of decades, got {dec!r}")
    if plan.settings is not None:
        unknown = sorted(set(plan.settings) - set(plan.rules))
        if unknown:
            raise WdscaleError(f"settings given for rule(s) not in the plan: {', '.join(unknown)}")
        for r, grid in plan.settings.items():
            if len(grid) < 3:
                raise WdscaleError(f"settings for rule {r!r} need at least 3 values to locate an optimum, got {grid}")
            for v in grid:
                check_positive(f"settings[{r!r}]", v)
    for key, points in plan.refined.items():
        rule_name, _, size_text = key.partition("@")
        if rule_name not in plan.rules or not size_text.isdigit() or int(size_text) not in sizes:
            raise WdscaleError(
                f"refined names {key!r}; keys are RULE@SIZE with a rule of {plan.rules} and a size of {sizes}"
            )
        for point in points:
            if len(point) not in (2, 3):
                raise WdscaleError(
                    f"refined[{key!r}] holds {point!r}; each point is [setting, seeds] or [setting, seeds, lr]"
                )
            check_positive(f"refined[{key!r}] setting", point[0])
            check_positive_int(f"refined[{key!r}] seeds", point[1])
            if len(point) == 3:
                check_positive(f"refined[{key!r}] lr", point[2])
    plan.lr_schedule  # noqa: B018 (checks the schedule's name and fractions)
    _check_task_options(plan, task)
    _check_size(plan, sizes)
    if plan.grid_sizes is not None:
        outside = sorted(set(plan.grid_sizes) - set(sizes))
        if outside:
            raise WdscaleError(f"grid_sizes {plan.grid_sizes} must be some of the sizes {sizes} (or none)")
    lrs = lr_grid(plan, float(lr))
    n_train_at = None
    if plan.tokens_per_param is not None and not shapes_only:
        n_train_at = budget_n_train(plan, task, model_fn, sizes, width=width, depth=depth)
    resolved = Resolved(
        plan, sizes, float(lr), lrs, epochs, batch_size, n_train, width, depth, int(base_size), n_train_at
    )
    for size in [] if shapes_only else sizes:
        knobs = size_knobs(resolved, size)
        if knobs["batch_size"] > knobs["n_train"]:
            raise WdscaleError(
                f"batch_size={knobs['batch_size']} is larger than n_train={knobs['n_train']} at "
                f"{plan.size_axis}={size}: a batch cannot hold more samples than the data has"
            )
        steps = epochs * math.ceil(knobs["n_train"] / knobs["batch_size"])
        if steps > MAX_RUN_STEPS:
            raise WdscaleError(
                f"a run at {plan.size_axis}={size} takes {steps:,} optimizer steps ({epochs:,} epochs of "
                f"{knobs['n_train']:,} samples in batches of {knobs['batch_size']:,}), more than the {MAX_RUN_STEPS:,} "
                "a run may take: check epochs, n_train and batch_size"
            )
    return resolved


def _check_task_options(plan: StudyPlan, task) -> None:
    """task_options the task's loader does not take are refused, naming the ones it does."""
    loader = getattr(task, "loader", None)
    if not plan.task_options or loader is None:
        return
    try:
        params = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n in params if n != "seed"]
    unknown = sorted(set(plan.task_options) - set(known))
    if unknown:
        raise WdscaleError(
            f"task_options {', '.join(map(repr, unknown))} are not options of task {plan.task!r}; "
            f"it takes: {', '.join(known) or 'none'}"
        )


def budget_n_train(plan: StudyPlan, task, model_fn, sizes: list[int], *, width: int, depth: int) -> dict[int, int]:
    """n_train at every size of a one-pass plan: the token budget tokens_per_param × P over the
    task's tokens per sample, P counting every parameter of the model at that size (as the
    `power_lines` rule does), rounded to whole samples."""
    tpp = check_positive("tokens_per_param", plan.tokens_per_param)
    if tpp > MAX_TOKENS_PER_PARAM:
        raise WdscaleError(
            f"tokens_per_param={tpp:g} is not allowed: at most {MAX_TOKENS_PER_PARAM:g} tokens per parameter "
            "(Chinchilla trains on about 20)"
        )
    if plan.size_axis == "n_train":
        raise WdscaleError(
            "tokens_per_param sets n_train from each size's parameters, so the size axis cannot be n_train; "
            "for a study across tokens per parameter at one width, give the n_train sizes with epochs 1"
        )
    model_fn = model_fn or task.make_model
    per_sample = int(getattr(task, "tokens_per_sample", 1))
    out = {}
    for size in sizes:
        w, d = (
            (size, depth)
            if plan.size_axis == "width"
            else (width, size)
            if plan.size_axis == "depth"
            else (width, depth)
        )
        with torch.random.fork_rng():
            n_params = sum(p.numel() for p in model_fn(w, d).parameters())
        out[size] = max(1, round(tpp * n_params / per_sample))
    return out


def tokens_per_param(n_train: int, n_params: int, tokens_per_sample: int = 1, epochs: float = 1) -> float:
    """Tokens seen per parameter: epochs × n_train × tokens per sample / P."""
    return epochs * n_train * tokens_per_sample / n_params


def _check_size(plan: StudyPlan, sizes: list[int]) -> None:
    """Refuse, before anything is built, a plan of more than `max_runs` runs (counted from its
    dimensions: sizes × rules × lrs × settings × seeds, the extended grid included)."""
    check_positive_int("max_runs", plan.max_runs)
    n_lrs = (
        len(plan.lrs)
        if plan.lrs is not None
        else 2 * round(check_number("lr_decades", plan.lr_decades) * plan.lr_points_per_decade / 2) + 1
    )
    if plan.settings:
        n_settings = max(len(v) for v in plan.settings.values())
    else:
        extra = max((abs(check_number("extend", e)) for e in plan.extend.values()), default=0.0)
        lo, hi = _decay_span(plan, None)
        n_settings = hi - lo + 1 + round(extra * plan.points_per_decade)
    grid = len(plan.grid_sizes) if plan.grid_sizes is not None else len(sizes)
    runs = grid * len(plan.rules) * n_lrs * n_settings * plan.seeds
    refined = sum(int(point[1]) for points in plan.refined.values() for point in points)
    if runs + refined > plan.max_runs:
        raise WdscaleError(
            f"the plan makes about {runs + refined:,} runs ({grid} sizes × {len(plan.rules)} rules × {n_lrs} lrs × "
            f"{n_settings} settings × {plan.seeds} seeds"
            + (f", and {refined:,} refined" if refined else "")
            + f"), more than max_runs={plan.max_runs:,}; check seeds, points_per_decade, decades, lr_decades, "
            "extend and refined, or raise max_runs (--max-runs) to mean it"
        )


def lr_grid(plan: StudyPlan, lr: float) -> list[float]:
    """The base lrs a study sweeps: `plan.lrs`, else `lr_decades` of log-spaced lrs centred on
    `lr`, else just `lr` (a 1-D study)."""
    check_positive_int("lr_points_per_decade", plan.lr_points_per_decade)
    if plan.lrs is not None:
        if plan.lr_decades:
            raise WdscaleError("give the lr grid one way: lrs or lr_decades, not both")
        if len(plan.lrs) < 3:
            raise WdscaleError(f"lrs needs at least 3 values to locate an optimum, got {plan.lrs}")
        for v in plan.lrs:
            check_positive("lrs", v)
        return sorted({float(v) for v in plan.lrs})
    if check_number("lr_decades", plan.lr_decades) < 0:
        raise WdscaleError(f"lr_decades must be ≥ 0 (0: a fixed lr), got {plan.lr_decades!r}")
    half = round(plan.lr_decades * plan.lr_points_per_decade / 2)
    if plan.lr_decades and half < 1:
        raise WdscaleError(
            f"lr_decades={plan.lr_decades:g} at {plan.lr_points_per_decade} per decade gives one lr: widen it"
        )
    grid = [float(f"{lr * 10 ** (k / plan.lr_points_per_decade):.4g}") for k in range(-half, half + 1)]
    if not all(0 < v < math.inf for v in grid):
        raise WdscaleError(
            f"lr={lr:g} with lr_decades={plan.lr_decades:g} gives lrs from {grid[0]:g} to {grid[-1]:g}, beyond "
            "what a float holds: check lr and lr_decades"
        )
    return grid


def fixed_lr(lrs: Sequence[float], base_lr: Optional[float] = None) -> float:
    """The lr of the λ-only view (the one definition, for plans and for stored runs): of the lrs
    swept, the one nearest the base lr in log; without a known base lr, the middle one (a centred
    grid's centre is the base lr)."""
    grid = sorted(lrs)
    if not grid:
        raise WdscaleError("no lr to take the λ-only view at")
    if base_lr is None:
        return grid[(len(grid) - 1) // 2]
    return min(grid, key=lambda v: abs(math.log(v / base_lr)))


def size_knobs(r: Resolved, size: int) -> dict[str, int]:
    """width, depth, n_train, batch_size and the base width/depth of a run at `size`."""
    axis = r.plan.size_axis
    knobs = dict(
        width=r.width, depth=r.depth, n_train=r.n_train, batch_size=r.batch_size, base_width=r.width, base_depth=r.depth
    )
    knobs[axis] = size
    if r.n_train_at is not None:
        knobs["n_train"] = r.n_train_at[size]
    if axis == "width":
        knobs["base_width"] = r.base_size
    if axis == "depth":
        knobs["base_depth"] = r.base_size
    return knobs


def centred_grid(r: Resolved, rule: str, model_fn) -> list[float]:
    """Log-spaced settings centred where the base model's hidden weights get the anchor decay."""
    knobs = size_knobs(r, r.base_size)
    with torch.random.fork_rng():  # only shapes are needed; leave the global RNG alone
        model = model_fn(knobs["width"], knobs["depth"])
    data = DataFacts(n_samples=knobs["n_train"], batch_size=knobs["batch_size"], epochs=r.epochs)
    rule_obj = get_rule(rule)
    with warnings.catch_warnings():  # a probe at setting 1 (for `independent` a per-step decay of 1)
        warnings.simplefilter("ignore", ShrinkWarning)
        outcome = _rule_at(r, rule, 1.0, model, data)
    decayed = [a for a in outcome.assignments if a.weight_decay > 0]
    if not decayed:
        raise WdscaleError(f"rule {rule!r} decays no parameter of this model")
    a = max(decayed, key=lambda a: (a.info.kind == "hidden", a.info.numel))
    total_steps = base_steps(r)
    anchor = 1.0 if r.plan.placed_for_run else _anchor(r.plan)
    target_wd = anchor / (a.lr * total_steps)  # torch weight_decay at index 0 of the grid
    if outcome.mode == "coupled" and r.plan.optimizer != "sgd":
        target_wd *= COUPLED_ADAM_SHIFT
    # λ-rules: weight_decay ∝ setting; τ-rules: weight_decay ∝ 1/τ
    centre = target_wd / a.weight_decay if rule_obj.takes == "weight_decay" else a.weight_decay / target_wd
    lo, hi = _decay_span(r.plan, total_steps)  # in steps of stronger decay
    if rule_obj.takes != "weight_decay":  # a τ-rule's stronger decay is a smaller τ
        lo, hi = -hi, -lo
    # `extend` is in decades of decay strength; for τ-rules stronger decay is a smaller τ
    more = round(r.plan.extend.get(rule, 0.0) * r.plan.points_per_decade)
    if rule_obj.takes != "weight_decay":
        more = -more
    lo, hi = min(lo, lo + more), max(hi, hi + more)
    steps = list(range(lo, hi + 1))
    if r.plan.shrink_cap and outcome.mode == "decoupled":
        steps = [k for k in steps if _largest_step_decay(r, rule, _grid_value(r, centre, k), model, data) < 1.0]
        # at least 3 settings to locate an optimum: a grid cut below that grows toward weaker decay
        weaker = -1 if rule_obj.takes == "weight_decay" else 1
        while len(steps) < 3:
            steps = sorted([*steps, (min(steps) - 1 if weaker < 0 else max(steps) + 1) if steps else 0])
    grid = [_grid_value(r, centre, k) for k in steps]
    if not all(0 < v < math.inf for v in grid):
        raise WdscaleError(
            f"rule {rule!r}'s grid around anchor_total_decay={r.plan.anchor_total_decay:g} runs from {grid[0]:g} to "
            f"{grid[-1]:g}, beyond what a float holds: check anchor_total_decay, lr and decades"
        )
    return grid


def _anchor(plan: StudyPlan) -> float:
    return plan.anchor_total_decay if plan.anchor_total_decay is not None else CENTRED_ANCHOR


def base_steps(r: Resolved) -> int:
    """The optimizer steps of a run at the base size (what a grid is placed against)."""
    knobs = size_knobs(r, r.base_size)
    return r.epochs * math.ceil(knobs["n_train"] / knobs["batch_size"])


def _decay_span(plan: StudyPlan, total_steps: Optional[int]) -> tuple[int, int]:
    """(lo, hi): the grid's indices in steps of 1/points_per_decade decade of stronger decay from
    its anchor (η_g·λ_g·T = 1 placed for the run, else anchor_total_decay). total_steps None: the
    widest the span can be (to count a plan's runs before anything is built)."""
    ppd = plan.points_per_decade
    if not plan.placed_for_run:
        half = round((plan.decades if plan.decades is not None else CENTRED_DECADES) * ppd / 2)
        return -half, half
    # out to η λ T = 1/STRONG_END_TAU at least, but τ never under MIN_TAU_STEPS steps
    hi = math.ceil(ppd * math.log10(1 / STRONG_END_TAU) - 1e-9)
    if total_steps is not None:
        hi = min(hi, math.floor(ppd * math.log10(max(total_steps / MIN_TAU_STEPS, 1.0)) + 1e-9))
    return -math.ceil(ppd * math.log10(WEAK_END_TAU) - 1e-9), hi


def _grid_value(r: Resolved, centre: float, k: int) -> float:
    """The k-th setting of a centred grid, to 4 significant digits."""
    return float(f"{centre * 10 ** (k / r.plan.points_per_decade):.4g}")


def _rule_at(r: Resolved, rule: str, setting: float, model, data: DataFacts):
    """The rule's groups for the base model at this setting and the base lr."""
    return apply_rule(
        model,
        rule=rule,
        lr=r.lr,
        **setting_kwargs(rule, setting),
        data=data,
        optimizer=r.plan.optimizer,
        decay_vectors=r.plan.decay_vectors,
    )


def _largest_step_decay(r: Resolved, rule: str, setting: float, model, data: DataFacts) -> float:
    """The largest per-step decay η_g·λ_g of any group at this setting and the base lr (the grid's
    centre: in a joint study larger lrs reach zero shrink sooner, and those runs bracket the optimum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShrinkWarning)
        outcome = _rule_at(r, rule, setting, model, data)
    return max(a.lr * a.weight_decay for a in outcome.assignments)


def check_models(r: Resolved, model_fn) -> None:
    """Build the model (shapes only) at every size, and its base: a model_fn that fails at some
    size, a base that does not match or is larger than a model, or a factory whose model does not
    change along the size axis, is reported before any run starts."""
    counts: dict[int, int] = {}
    for size in r.sizes:
        knobs = size_knobs(r, size)
        where = f"{r.plan.size_axis}={size}"
        try:
            # real (CPU) modules, not the meta device: a model_fn may load or cache data as it
            # builds, and tensors it made under a meta-device context would be unusable later
            with torch.random.fork_rng():
                model = model_fn(knobs["width"], knobs["depth"])
                base = model_fn(knobs["base_width"], knobs["depth"])
        except Exception as e:
            raise WdscaleError(f"the model factory failed at {where}: {type(e).__name__}: {e}") from e
        if not isinstance(model, torch.nn.Module):
            raise WdscaleError(f"the model factory returned {type(model).__name__} at {where}, not a torch.nn.Module")
        try:
            classify(model, base)
        except (ValueError, TypeError) as e:
            raise WdscaleError(f"at {where}: {e}") from e
        counts[size] = sum(p.numel() for p in model.parameters())
    if r.plan.size_axis in ("width", "depth") and len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        raise WdscaleError(
            f"the model factory ignores its {r.plan.size_axis}: the model has {n:,} parameters at every "
            f"{r.plan.size_axis} {sorted(counts)}; model_fn(width, depth) must build the model at the size it is given"
        )


# the largest model a plan may ask for: a typo like --depth 100000 or --sizes 100000000 would
# otherwise hang building it, then exhaust the memory
MAX_BUILTIN_PARAMS = 2_000_000_000


def meta_params(model_fn, width: int, depth: int) -> int:
    """Parameters of model_fn(width, depth), built on the meta device (no memory, no data)."""
    with torch.device("meta"), torch.random.fork_rng():
        return sum(p.numel() for p in model_fn(width, depth).parameters())


def check_model_sizes(r: Resolved, task, model_fn=None) -> None:
    """Count the model's parameters at every size and at the base on the meta device (no memory,
    no data) and refuse a model beyond MAX_BUILTIN_PARAMS, naming the size. A factory that loads
    and caches data must not cache meta tensors, so one small model is built for real first: a
    built-in task's at its base width; yours at the plan's smallest width and depth (a factory that
    fails there, or cannot build on the meta device, is left to `check_models`, which builds
    every size for real)."""
    knobs = [size_knobs(r, s) for s in r.sizes]
    shapes = {(k["width"], k["depth"]): f"{r.plan.size_axis}={s}" for s, k in zip(r.sizes, knobs)}
    shapes.setdefault((knobs[0]["base_width"], knobs[0]["depth"]), f"the base {r.plan.size_axis}={r.base_size}")
    name = getattr(task, "name", r.plan.task)
    try:
        with torch.random.fork_rng():
            if model_fn is None:
                task.make_model(task.base_width, 1)
            else:
                model_fn(min(w for w, _ in shapes), min(d for _, d in shapes))
    except Exception:
        if model_fn is None:
            raise
        return
    for (width, depth), where in shapes.items():
        try:
            n = meta_params(model_fn or task.make_model, width, depth)
        except Exception:
            if model_fn is None:
                raise
            continue  # your factory cannot build on the meta device: `check_models` builds it for real
        if n > MAX_BUILTIN_PARAMS:
            raise WdscaleError(
                f"{where} makes a {name} model of {n:,} parameters, more than the {MAX_BUILTIN_PARAMS:,} a study "
                "trains on these machines; check --sizes, --width, --depth and --base-size"
            )


def make_runs(plan: StudyPlan, task, model_fn=None) -> list[RunConfig]:
    """Every run of the plan, in a stable order (size, rule, setting, seed)."""
    # before anything builds a real model at the plan's sizes (a token budget counts parameters)
    check_model_sizes(resolve(plan, task, model_fn, shapes_only=True), task, model_fn)
    r = resolve(plan, task, model_fn)
    model_fn = model_fn or task.make_model
    check_models(r, model_fn)
    grids = {rule: (plan.settings or {}).get(rule) or centred_grid(r, rule, model_fn) for rule in plan.rules}
    options = tuple(sorted(plan.task_options.items()))
    s = plan.lr_schedule
    runs = []
    for size in r.sizes:
        knobs = size_knobs(r, size)
        for rule in plan.rules:
            for (lr, setting), n_seeds in points(plan, grids[rule], rule, size, r.lrs).items():
                for seed in range(plan.first_seed, plan.first_seed + n_seeds):
                    runs.append(
                        RunConfig(
                            task=plan.task,
                            size_axis=plan.size_axis,
                            size=size,
                            rule=rule,
                            setting=float(setting),
                            optimizer=plan.optimizer,
                            lr=lr,
                            epochs=r.epochs,
                            seed=seed,
                            momentum=plan.momentum if plan.optimizer == "sgd" else 0.0,
                            decay_vectors=plan.decay_vectors,
                            task_options=options,
                            schedule=s.name,
                            warmup=s.warmup,
                            final_lr=s.final_lr,
                            decay_fraction=s.decay_fraction,
                            evals_per_epoch=plan.evals_per_epoch,
                            **knobs,
                        )
                    )
                    if plan.evals_per_epoch != 1:  # raises, naming the value, if an epoch has fewer steps
                        eval_steps(runs[-1].steps_per_epoch, plan.evals_per_epoch)
    return runs


Point = tuple[Optional[float], float]  # (lr, setting); lr None: the study's one lr (a 1-D study)


def refined_point(entry: Sequence[float]) -> Point:
    return (float(entry[2]) if len(entry) == 3 else None, float(entry[0]))


def with_refined(plan: StudyPlan, additions: dict[str, dict[Point, int]]) -> StudyPlan:
    """The plan with ((lr, setting) → seeds) points added to its refined entries, keyed RULE@SIZE
    (a point's seeds only grow: the most any entry asks). lr None: the 1-D study's one lr."""
    refined = {k: [list(p) for p in v] for k, v in plan.refined.items()}
    for key, pts in additions.items():
        have = {refined_point(e): int(e[1]) for e in refined.get(key, [])}
        for p, n in pts.items():
            have[p] = max(have.get(p, 0), int(n))
        refined[key] = [
            [s, n] if lr is None else [s, n, lr]
            for (lr, s), n in sorted(have.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))
        ]
    return dataclasses.replace(plan, refined=refined)


def refined_key(rule: str, size: int) -> str:
    """The key of a rule and size in `StudyPlan.refined`."""
    return f"{rule}@{size}"


def points(
    plan: StudyPlan, grid: Sequence[float], rule: str, size: int, lrs: Sequence[float]
) -> dict[tuple[float, float], int]:
    """(lr, setting) → seeds of one rule at one size, in order: the grid (lrs × settings) at
    `plan.seeds` seeds, with the refined points merged in (a point's seeds are the most any entry
    asks; a refined point without an lr is at the study's one lr)."""
    on_grid = plan.grid_sizes is None or size in plan.grid_sizes
    seeds = {(float(lr), float(s)): plan.seeds for lr in lrs for s in grid} if on_grid else {}
    for entry in plan.refined.get(refined_key(rule, size), []):
        lr, s = refined_point(entry)
        if lr is None:
            if len(lrs) != 1:
                raise WdscaleError(
                    f"refined[{refined_key(rule, size)!r}] point {entry!r} has no lr, "
                    f"but the study sweeps lrs {list(lrs)}"
                )
            lr = lrs[0]
        seeds[(lr, s)] = max(seeds.get((lr, s), 0), int(entry[1]))
    return dict(sorted(seeds.items()))


def coarse_grids(plan: StudyPlan, task, model_fn=None) -> dict[str, list[float]]:
    """The coarse grid of every rule (without the refined points)."""
    check_model_sizes(resolve(plan, task, model_fn, shapes_only=True), task, model_fn)
    r = resolve(plan, task, model_fn)
    model_fn = model_fn or task.make_model
    return {rule: (plan.settings or {}).get(rule) or centred_grid(r, rule, model_fn) for rule in plan.rules}


def describe(runs: Sequence[RunConfig]) -> str:
    sizes = sorted({c.size for c in runs})
    rules = sorted({c.rule for c in runs})
    per_point: dict[tuple, int] = {}
    for c in runs:
        key = (c.size, c.rule, c.lr, c.setting)
        per_point[key] = per_point.get(key, 0) + 1
    lo, hi = min(per_point.values()), max(per_point.values())
    seeds = f"{lo}" if lo == hi else f"{lo}-{hi}"
    c = runs[0]
    lrs = sorted({c.lr for c in runs})
    lr = f"lr {lrs[0]:g}" if len(lrs) == 1 else f"{len(lrs)} lrs {lrs[0]:g}-{lrs[-1]:g}"
    return (
        f"{len(runs)} runs: task {c.task}, {c.size_axis} {sizes}, rules {', '.join(rules)}, "
        f"{c.optimizer} {lr} ({c.lr_schedule.describe()}), {c.epochs} epochs, batch {c.batch_size}, {seeds} seeds"
    )


def preview(plan: StudyPlan, task, model_fn=None) -> str:
    """The plan before anything trains: each rule's grid as its setting and as the hidden weights'
    τ = 1/(η_g·λ_g) in fractions of the base size's run, the run count and the compute
    (parameters × samples, summed over runs; 6× that is a dense model's training FLOPs)."""
    runs = make_runs(plan, task, model_fn)
    r = resolve(plan, task, model_fn)
    model_fn = model_fn or task.make_model
    knobs = size_knobs(r, r.base_size)
    with torch.random.fork_rng():
        base = model_fn(knobs["width"], knobs["depth"])
    data = DataFacts(n_samples=knobs["n_train"], batch_size=knobs["batch_size"], epochs=r.epochs)
    steps = base_steps(r)
    placed = (
        "placed for the run: τ from 100× its steps to a thirtieth (never under 2 steps)"
        if plan.placed_for_run
        else f"centred at η·λ·T = {_anchor(plan):g}"
    )
    lines = [describe(runs), f"grids ({placed}; τ of the hidden weights at the base size, T = {steps} steps):"]
    grids = {rule: sorted({c.setting for c in runs if c.rule == rule}) for rule in plan.rules}
    for rule, grid in grids.items():
        symbol = "τ" if get_rule(rule).takes != "weight_decay" else "λ"
        taus = []
        for v in grid:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ShrinkWarning)
                outcome = _rule_at(r, rule, v, base, data)
            decayed = [a for a in outcome.assignments if a.weight_decay > 0]
            a = max(decayed, key=lambda a: (a.info.kind == "hidden", a.info.numel)) if decayed else None
            if a is None or outcome.mode == "coupled":
                taus.append("–")  # coupled L2: no per-step decay factor to read a τ from
            else:
                taus.append(f"{1 / (a.lr * a.weight_decay * steps):.3g}")
        lines.append(f"  {rule:<12} {symbol}: {', '.join(f'{v:g}' for v in grid)}")
        lines.append(f"  {'':<12} τ/T: {', '.join(taus)}")
    counts: dict[tuple[int, int], int] = {}
    total = 0.0
    for c in runs:
        if (c.width, c.depth) not in counts:
            counts[(c.width, c.depth)] = meta_params(model_fn, c.width, c.depth)
        total += counts[(c.width, c.depth)] * c.total_steps * c.batch_size
    lines.append(f"compute: {total:.3g} parameters × samples over {len(runs)} runs (≈ {6 * total:.2g} FLOPs, dense)")
    return "\n".join(lines)
