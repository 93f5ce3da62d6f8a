"""The sequential reference training loop: one run, one model, one stock torch optimizer.

Everything the batched engine (`engine.py`) does must give what this loop gives, so the pieces
both use live here: `build` (seeding, model, optimizer), `per_model_loss`, `metrics`, `epoch_mean`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ...optim import optimizer
from ...rules import DataFacts, setting_kwargs
from ..plan.config import ModelFn, RunConfig, RunResult, TaskData

Device = Union[str, torch.device]
EVAL_CHUNK = 1024  # validation samples per forward: bounds activation memory, not the result


def build(
    config: RunConfig, n_train: int, model_fn: ModelFn, *, device: Device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model and optimizer of one run. Seeding happens here and only here, so a run's
    initial weights depend on its seed alone, whichever path (sequential or batched) trains it."""
    torch.manual_seed(config.seed)
    model = model_fn(config.width, config.depth).to(device=device, dtype=dtype)
    # the base gives width multipliers only (its shapes): same depth, base width; depth enters
    # the rules through depth_mult
    with torch.random.fork_rng(devices=[]):
        base = model_fn(config.base_width, config.depth)
    return model, optimizer(model, config.optimizer, **rule_keywords(config, n_train, base))


def rule_keywords(config: RunConfig, n_train: int, base: nn.Module) -> dict[str, Any]:
    """What `wdscale.optimizer` and `wdscale.param_groups` take for a run, but the model and the
    optimizer's name: the rule at the run's lr and setting, its base, data facts and depth."""
    facts = DataFacts(n_samples=n_train, batch_size=config.batch_size, epochs=config.epochs)
    torch_kwargs: dict[str, Any] = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    return dict(
        rule=config.rule,
        lr=config.lr,
        **setting_kwargs(config.rule, config.setting),
        base=base,
        data=facts,
        decay_vectors=config.decay_vectors,
        depth_mult=config.depth / config.base_depth,
        **torch_kwargs,
    )


def prepare(data: TaskData, n_train: int, device: Device, dtype: torch.dtype) -> TaskData:
    """The run's training subset, on the device, float inputs in the run's dtype."""
    if n_train != data.n_train:
        data = data.subset(n_train)  # raises if the task has fewer samples
    cast = lambda x: x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)  # noqa: E731
    return TaskData(
        cast(data.x_train),
        data.y_train.to(device),
        cast(data.x_val),
        data.y_val.to(device),
        data.n_classes,
        data.objective,
    )


def logits_of(out: Any) -> torch.Tensor:
    """A model's logits: its output, or the output's `.logits` (Hugging Face models return a
    ModelOutput), so a stock model needs no wrapper."""
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else out


def gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx] for an index tensor of any shape; index_select is ~5x faster than advanced indexing."""
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


def token_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample (per token for "lm") of K models: logits (K, N, [T,] V), y (K, N, [T]).

    The class dimension is moved next to K, so log-softmax runs across contiguous samples: ~5x
    faster on CPU than over a short last dimension, and the same numbers."""
    return F.cross_entropy(logits.movedim(-1, 1), y, reduction="none")


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each of K models: logits (K, N, [T,] V), targets (K, N, [T]) -> (K,).

    Written once for both paths: the gradient of a per-model mean is 1/N per sample however the
    means are later summed, so K stacked models get the gradients K separate runs would."""
    return token_losses(logits, y).reshape(logits.shape[0], -1).mean(dim=1)


@torch.no_grad()
def metrics(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation loss and accuracy (per token for "lm") of K models, each (K,) float64.

    `forward` maps a chunk of inputs (C, ...) to logits (K, C, [T,] V)."""
    loss_sum = correct = torch.zeros(0, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        logits, yc = forward(x[i : i + chunk]), y[i : i + chunk]
        k = logits.shape[0]
        yk = yc.expand(k, *yc.shape)
        losses = token_losses(logits, yk).reshape(k, -1)
        hits = (logits.argmax(dim=-1) == yk).reshape(k, -1)
        ls, cs = losses.sum(dim=1, dtype=torch.float64), hits.sum(dim=1, dtype=torch.float64)
        loss_sum, correct = (ls, cs) if i == 0 else (loss_sum + ls, correct + cs)
    count = y.numel()
    return loss_sum / count, correct / count


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Validation (loss, accuracy) of one model, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        loss, acc = metrics(lambda xc: logits_of(model(xc)).unsqueeze(0), x, y, chunk)
    finally:
        model.train(was_training)
    return float(loss[0]), float(acc[0])


def part_of_val(d: TaskData, evals_per_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation samples an evaluation within an epoch reads: the first 1/evals_per_epoch of
    them, so a run's evaluations within epochs cost one full evaluation together (the epoch's last
    evaluation reads them all)."""
    m = -(-len(d.x_val) // evals_per_epoch)
    return d.x_val[:m], d.y_val[:m]


def epoch_mean(losses: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Training loss of an epoch, per model: batch losses (K, S) weighted by batch sizes (S,)."""
    return (losses.double() * sizes.double()).sum(dim=1) / sizes.sum()


def one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:500]


def finish(
    config: RunConfig,
    status: str,
    history: list[float],
    accs: list[float],
    train_loss: float,
    steps: int,
    wall_time: float,
    *,
    initial_loss: float,
    chance_loss: float,
    path: str,
    n_params: int,
) -> RunResult:
    """A RunResult from an epoch history (shared with the engine: both report the same way).

    A run that finished but did not learn (`not_learned_reason`: training loss not below its
    first batch's or chance, or training and validation loss both within 1 % of chance, where
    `chance_loss` predicts the label frequencies) is "not_learned": its numbers are kept, the
    reason goes to `error`, and analysis leaves it out of the fits (an lr of 1e6 ends there; so
    does a decay so strong that the weights stay at zero). A validation loss alone above chance
    is not judged: an overfitted run learned, however badly it generalises."""
    ok = status == "ok" and bool(history)
    nan = float("nan")
    error = None
    if ok:
        error = not_learned_reason(train_loss, history[-1], initial_loss, chance_loss)
        status = "ok" if error is None else "not_learned"
    return RunResult(
        run_id=config.run_id,
        status=status,
        train_loss=train_loss if ok else nan,
        val_loss=history[-1] if ok else nan,
        val_acc=accs[-1] if ok else nan,
        best_val_loss=min(history) if history else nan,
        best_val_acc=max(accs) if accs else nan,
        steps=steps,
        wall_time=wall_time,
        history=list(history),
        error=error,
        path=path,
        n_params=n_params,
    )


def trainable_params(model: nn.Module) -> int:
    """The parameters a run trains (frozen ones excluded): what its compute is counted in."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# a run whose final training and validation losses both sit within this fraction of chance has not
# learned. On the built-in classification tasks the losses of finished runs leave a gap there: every
# one is either ≥ 0.995 × chance or < 0.95 × chance (docs/findings.md, 32,216 runs).
CHANCE_MARGIN = 0.01


def chance_loss(data: TaskData) -> float:
    """The loss of predicting the training labels' frequencies whatever the input: their entropy
    (ln C for balanced classes; for a language model, the unigram entropy of its tokens)."""
    counts = torch.bincount(data.y_train.flatten().long().cpu(), minlength=data.n_classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def not_learned_reason(train_loss: float, val_loss: float, initial_loss: float, chance: float) -> Optional[str]:
    """Why a finished run did not learn, or None if it did: neither its final training nor its
    validation loss is below chance by more than CHANCE_MARGIN, and its final training loss is not
    below the loss of its first batch, or not below `chance`, or within CHANCE_MARGIN of it (the
    run never left predicting the label frequencies). A run that ended below chance by the margin
    learned, whatever its training loss: in one pass that is the pass's mean, first steps included."""
    if min(train_loss, val_loss) < (1 - CHANCE_MARGIN) * chance:
        return None
    if not train_loss < initial_loss:
        return f"final training loss {train_loss:.4g} is not below the initial {initial_loss:.4g}"
    if not train_loss < chance:
        return f"final training loss {train_loss:.4g} is no better than chance ({chance:.4g})"
    return (
        f"final training loss {train_loss:.4g} and validation loss {val_loss:.4g} are within "
        f"{CHANCE_MARGIN:.0%} of chance ({chance:.4g}, predicting the label frequencies)"
    )


def train_run(
    config: RunConfig, data: TaskData, model_fn: ModelFn, *, device: Device = "cpu", dtype: torch.dtype = torch.float32
) -> RunResult:
    """Train one run; never raises for the run's own failure (status "failed" with the message).

    A non-finite training loss (checked before its step) or validation loss stops the run as
    "diverged"; `steps` counts the optimizer steps taken."""
    start = time.perf_counter()
    steps = 0
    try:
        d = prepare(data, config.n_train, device, dtype)
        model, opt = build(config, d.n_train, model_fn, device=device, dtype=dtype)
        n, bs = d.n_train, config.batch_size
        # torch's own scheduler: one multiplier of every group's initial lr per step (the
        # engine re-does exactly this); a constant schedule leaves the optimizer untouched
        schedule = config.lr_schedule
        scheduler = None if schedule.is_constant else LambdaLR(opt, schedule.lr_lambda(config.total_steps))
        gen = torch.Generator().manual_seed(config.seed)
        history: list[float] = []
        accs: list[float] = []
        status, train_loss, initial_loss = "ok", float("nan"), float("nan")
        within = set(config.eval_steps[:-1])  # evaluations before the epoch's end, if any
        x_part, y_part = part_of_val(d, config.evals_per_epoch)
        for _ in range(config.epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            losses, sizes = [], []
            model.train()
            for s, i in enumerate(range(0, n, bs)):
                if s in within:  # after s steps of this epoch
                    val_loss, val_acc = evaluate(model, x_part, y_part)
                    if not math.isfinite(val_loss):
                        status = "diverged"
                        break
                    history.append(val_loss)
                    accs.append(val_acc)
                idx = perm[i : i + bs]
                logits = logits_of(model(gather(d.x_train, idx)))
                loss = per_model_loss(logits.unsqueeze(0), gather(d.y_train, idx).unsqueeze(0))[0]
                value = loss.item()
                if steps == 0:
                    initial_loss = value
                if not math.isfinite(value):
                    status = "diverged"
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                steps += 1
                losses.append(value)
                sizes.append(len(idx))
            if status != "ok":
                break
            train_loss = float(epoch_mean(torch.tensor([losses], dtype=torch.float64), torch.tensor(sizes))[0])
            val_loss, val_acc = evaluate(model, d.x_val, d.y_val)
            if not math.isfinite(val_loss):
                status = "diverged"
                break
            history.append(val_loss)
            accs.append(val_acc)
        return finish(
            config,
            status,
            history,
            accs,
            train_loss,
            steps,
            time.perf_counter() - start,
            initial_loss=initial_loss,
            chance_loss=chance_loss(d),
            path="sequential",
            n_params=trainable_params(model),
        )
    except Exception as e:  # the study goes on; the store records why this run failed
        return RunResult(
            run_id=config.run_id,
            status="failed",
            steps=steps,
            wall_time=time.perf_counter() - start,
            error=one_line(e),
            path="sequential",
        )
