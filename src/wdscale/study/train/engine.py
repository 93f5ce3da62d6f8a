"""Train K models that differ only in hyperparameters (seed, decay setting, lr, rule) in one pass.

A study's grid trains the same small model hundreds of times. One small model barely occupies a
CPU or GPU — the time goes to per-op overhead — so the K models are stacked: every parameter gets
a leading K dimension, all K take one batched forward/backward, and one functional optimizer step
updates all K with their own per-parameter lr and λ.

The step reproduces torch's single-tensor (`foreach=False`) SGD, SGDW, Adam and AdamW op by op, so
a batched run matches the sequential `train_run` up to matmul summation order (≤1e-10 after 200
float64 steps; on this machine the step itself is bitwise equal, see tests/study/train/test_engine.py).

Public: `can_batch`, `choose_k`, `choose_path`, `train_batched`; `BatchedTrainer` for callers
that bring their own models and torch optimizers. The pieces live in their own modules: the flat
layout (`stack`), torch's optimizer step re-done (`batched_step`), the MLP forward (`mlp_forward`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from typing import Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ...errors import WdscaleError
from ...optim import decay_mode
from ..plan.config import RunConfig, RunResult, TaskData
from .batched_step import BatchedOptimizer, read_optimizer
from .loop import (
    EVAL_CHUNK,
    Device,
    ModelFn,
    build,
    chance_loss,
    epoch_mean,
    finish,
    gather,
    metrics,
    one_line,
    part_of_val,
    per_model_loss,
    prepare,
)
from .mlp_forward import default_probe, mlp_forward, mlp_layers
from .stack import Layout

MAY_DIFFER = ("seed", "setting", "lr", "rule")  # the RunConfig fields a batch may vary


class BatchedTrainer:
    """K models of one architecture trained in lock-step: one batched forward/backward, one step.

    Built from K models and the K torch optimizers that would train them (only read, never
    stepped); the models' current parameters are copied into the stack."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        *,
        probe: Optional[torch.Tensor] = None,
        native: Optional[bool] = None,
    ) -> None:
        if not models or len(models) != len(optimizers):
            raise WdscaleError("need one optimizer per model, and at least one model")
        named = [dict(m.named_parameters()) for m in models]
        self.layout = Layout(tuple(named[0]), tuple(p.shape for p in named[0].values()))
        for m in named[1:]:
            if tuple(m) != self.layout.names or tuple(p.shape for p in m.values()) != self.layout.shapes:
                raise WdscaleError("the models differ in parameter names or shapes")
        self.k = len(models)
        first = next(iter(named[0].values()))
        self.device, self.dtype = first.device, first.dtype
        with torch.no_grad():
            self.flat = self.layout.stack([{n: p.detach() for n, p in m.items()} for m in named])
        self.grad = torch.zeros_like(self.flat)
        updates, lrs, wds = zip(*(read_optimizer(o, m) for o, m in zip(optimizers, models)))
        if len(set(updates)) != 1:
            raise WdscaleError(f"the optimizers differ in their update: {sorted(set(map(str, updates)))}")
        as_table = lambda per: torch.tensor(
            [[d[n] for n in self.layout.names] for d in per],  # noqa: E731
            dtype=torch.float64,
            device=self.device,
        )
        self.optimizer = BatchedOptimizer(updates[0], self.layout, as_table(lrs), as_table(wds), self.dtype)
        self._bind()
        self.layers = mlp_layers(models[0]) if native is not False else None
        if self.layers is not None and not self._layers_match(models, probe):
            if native:
                raise WdscaleError("the hand-written MLP forward does not match this model's forward")
            self.layers = None
        if native and self.layers is None:
            raise WdscaleError("not a plain MLP: no hand-written batched forward for this model")
        # the vmap path calls a parameter-free copy of the model (on the meta device) with the stack
        meta = copy.deepcopy(models[0]).to("meta")
        self._vmapped = vmap(lambda params, x: functional_call(meta, params, (x,)))

    @property
    def native(self) -> bool:
        """True when the hand-written bmm forward is used, False for vmap(functional_call)."""
        return self.layers is not None

    def _bind(self) -> None:
        """Leaf tensors viewing the flat buffer, whose .grad views the flat gradient buffer:
        backward accumulates into it in place and the step updates every model at once."""
        self.params: dict[str, torch.Tensor] = {}
        for name, p, g in zip(
            self.layout.names, self.layout.blocks(self.flat, self.k), self.layout.blocks(self.grad, self.k)
        ):
            leaf = p.detach().requires_grad_()
            leaf.grad = g
            self.params[name] = leaf

    @torch.no_grad()
    def _layers_match(self, models: Sequence[nn.Module], probe: Optional[torch.Tensor]) -> bool:
        x = default_probe(models[0]) if probe is None else probe
        if x is None:
            return False
        x = x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)
        try:
            got = mlp_forward(self.layers, self.params, x.expand(self.k, *x.shape))  # type: ignore[arg-type]
            want = torch.stack([m(x) for m in models])
        except Exception:
            return False
        return got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, N, ...) of member k on x[k], for x (K, N, ...)."""
        if self.layers is not None:
            return mlp_forward(self.layers, self.params, x)
        return self._vmapped(self.params, x)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step of every member on its own batch x[k], y[k]; returns the K losses
        (taken before the step; non-finite ones are the caller's to act on — the members are
        independent, so a NaN in one never reaches another)."""
        losses = per_model_loss(self.forward(x), y)
        self.grad.zero_()
        losses.sum().backward()
        self.optimizer.step(self.flat, self.grad)
        return losses.detach()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation (loss, accuracy) of every member on the same data, each (K,) float64."""
        chunk = max(1, min(EVAL_CHUNK, EVAL_CHUNK * 8 // self.k))
        return metrics(lambda xc: self.forward(xc.expand(self.k, *xc.shape)), x, y, chunk)

    def member(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters (views into the stack)."""
        return {n: p.detach()[k] for n, p in self.params.items()}

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (e.g. diverged ones): the rest train on, unchanged."""
        idx = torch.as_tensor(list(members), dtype=torch.long, device=self.device)
        self.flat = self.layout.select(self.flat, self.k, idx)
        self.grad = torch.zeros_like(self.flat)
        self.optimizer.select(idx)
        self.k = len(idx)
        self._bind()


# -- what the study runner calls ---------------------------------------------------------------------


def can_batch(model: nn.Module, example: Optional[torch.Tensor] = None) -> tuple[bool, str]:
    """Whether K copies of `model` can be stacked, and why not.

    Buffers (BatchNorm running statistics) are updated in place by the forward and Dropout draws
    from the global RNG, so neither would match K sequential runs. Otherwise a two-copy
    vmap(functional_call) forward and backward on `example` (default: a tiny input inferred from
    the first layer) must work."""
    buffers = [n for n, _ in model.named_buffers()]
    if buffers:
        return (
            False,
            f"model has buffers ({', '.join(buffers[:3])}{', ...' if len(buffers) > 3 else ''}), "
            "e.g. BatchNorm running stats",
        )
    dropout = [
        n for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0
    ]
    if dropout:
        return False, f"model has Dropout in train mode ({', '.join(dropout[:3])}): it draws from the global RNG"
    if not any(True for _ in model.parameters()):
        return False, "model has no parameters"
    not_probed = "no buffers, no dropout; vmap not probed (pass example=, train_batched checks it)"
    x = example if example is not None else default_probe(model)
    if x is None:
        return True, not_probed
    p0 = next(model.parameters())
    x = x.to(p0.device, p0.dtype) if x.is_floating_point() else x.to(p0.device)
    if example is None:
        try:
            with torch.no_grad():
                model(x)
        except Exception:  # the guessed input does not fit: vmap cannot be judged without real data
            return True, not_probed
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params, _ = stack_module_state([model, model])
            meta = copy.deepcopy(model).to("meta")
            out = vmap(lambda p, xx: functional_call(meta, p, (xx,)))(params, x.expand(2, *x.shape))
            out.float().sum().backward()
    except Exception as e:
        return False, f"vmap(functional_call) fails on this model: {one_line(e)}"
    slow = [str(w.message) for w in caught if "performance drop" in str(w.message)]
    if slow:
        return True, f"vmap works, but falls back to a per-copy loop for some ops: {slow[0][:120]}"
    return True, "no buffers, no dropout, vmap(functional_call) works"


def choose_k(
    model: nn.Module,
    batch_shape: Sequence[int],
    budget_bytes: int,
    *,
    optimizer: str = "adamw",
    dtype: Optional[torch.dtype] = None,
) -> int:
    """How many copies fit in `budget_bytes`: per copy, parameters, gradients, optimizer state
    and the engine's per-element lr/λ buffers, plus activations for one batch of `batch_shape`
    (every module's output, measured by a forward on the meta device, ×3 for what autograd saves
    and the gradients flowing back)."""
    params = list(model.parameters())
    itemsize = (dtype or params[0].dtype).itemsize
    n = sum(p.numel() for p in params)
    states = 1 if optimizer == "sgd" else 2
    # parameter, gradient, optimizer state, per-element decay and lr, two step scratch buffers, one temporary
    per_copy = n * itemsize * (2 + states + 2 + 3)
    outputs: list[int] = []
    meta = copy.deepcopy(model).to("meta")
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: outputs.append(o.numel() if torch.is_tensor(o) else 0))
        for m in meta.modules()
        if next(m.children(), None) is None
    ]
    try:
        for in_dtype in (torch.float32, torch.long):
            outputs.clear()
            try:
                meta(torch.zeros(tuple(batch_shape), dtype=in_dtype, device="meta"))
                break
            except Exception:
                continue
    finally:
        for h in hooks:
            h.remove()
    per_copy += 3 * sum(outputs) * itemsize + math.prod(batch_shape) * 8
    return max(1, int(budget_bytes // per_copy))


def check_batch(configs: Sequence[RunConfig]) -> None:
    """Raise ValueError unless the configs differ only in seed, setting, lr and rule, and the
    rules share one decay mode (one batched step serves all of them)."""
    if not configs:
        raise WdscaleError("no configs to train")
    c0 = configs[0]
    for c in configs[1:]:
        diff = [
            f.name
            for f in dataclasses.fields(RunConfig)
            if f.name not in MAY_DIFFER and getattr(c, f.name) != getattr(c0, f.name)
        ]
        if diff:
            raise WdscaleError(
                f"configs in one batch may differ only in {', '.join(MAY_DIFFER)}; "
                f"{c.run_id} differs from {c0.run_id} in {', '.join(diff)}"
            )
    modes = {decay_mode(c.rule, c.optimizer) for c in configs}
    if len(modes) > 1:
        raise WdscaleError(f"configs in one batch must share one decay mode, got {sorted(modes)}")


def _trainer(
    configs: Sequence[RunConfig], d: TaskData, model_fn: ModelFn, device: Device, dtype: torch.dtype
) -> BatchedTrainer:
    built = [build(c, d.n_train, model_fn, device=device, dtype=dtype) for c in configs]
    ok, why = can_batch(built[0][0], d.x_train[:2])
    if not ok:
        raise WdscaleError(f"cannot batch this model: {why}")
    return BatchedTrainer([m for m, _ in built], [o for _, o in built], probe=d.x_train[:4])


def train_batched(
    configs: Sequence[RunConfig],
    data: TaskData,
    model_fn: ModelFn,
    *,
    device: Device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[RunResult]:
    """Train the runs together; one RunResult per config, in order, as `train_run` would report it.

    Each member starts from `build` (its own seed), draws its own batch order from its own
    generator, and gets its own lr/λ per parameter. A member whose training loss turns
    non-finite is reported "diverged" with the steps it took and dropped from the stack at the end
    of that epoch (losses are checked once per epoch, not per step, so a GPU is not synchronised
    every step); the others go on unchanged. `wall_time` is the batch's time divided by K.
    Raises (ValueError for configs that cannot share a batch) rather than returning "failed":
    the runner then falls back to `train_run`, run by run."""
    start = time.perf_counter()
    check_batch(configs)
    c0 = configs[0]
    d = prepare(data, c0.n_train, device, dtype)
    trainer = _trainer(configs, d, model_fn, device, dtype)
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    n, bs = d.n_train, c0.batch_size
    sizes = torch.tensor([min(bs, n - i) for i in range(0, n, bs)])
    alive = list(range(len(configs)))  # config index of each stacked member, in stack order
    status = ["ok"] * len(configs)
    steps = [0] * len(configs)
    train_loss = [float("nan")] * len(configs)
    history: list[list[float]] = [[] for _ in configs]
    accs: list[list[float]] = [[] for _ in configs]
    initial: list[float] = []  # each member's loss on its first batch, before any step
    schedule = c0.lr_schedule  # one for the batch: check_batch keeps the configs' schedules equal
    multipliers = None if schedule.is_constant else schedule.multipliers(c0.total_steps)
    evals_within = set(c0.eval_steps[:-1])  # one for the batch: check_batch keeps evals_per_epoch equal
    val_part = part_of_val(d, c0.evals_per_epoch)
    done = 0
    for _ in range(c0.epochs):
        if not alive:
            break
        perms = torch.stack([torch.randperm(n, generator=gens[j]) for j in alive]).to(device)
        losses = torch.empty(len(alive), len(sizes), dtype=torch.float64, device=device)
        within: list[tuple[list[float], list[float]]] = []  # evaluations before the epoch's end
        for s, i in enumerate(range(0, n, bs)):
            if s in evals_within:
                within.append(tuple(t.tolist() for t in trainer.evaluate(*val_part)))  # type: ignore[arg-type]
            idx = perms[:, i : i + bs]
            if multipliers is not None:
                trainer.optimizer.set_multiplier(multipliers[done + s])
            losses[:, s] = trainer.step(gather(d.x_train, idx), gather(d.y_train, idx))
        if not initial:
            initial = losses[:, 0].tolist()
        bad = ~torch.isfinite(losses)
        first_bad = torch.where(bad.any(dim=1), bad.double().argmax(dim=1), len(sizes)).tolist()
        val_loss, val_acc = (t.tolist() for t in trainer.evaluate(d.x_val, d.y_val))
        means = epoch_mean(losses, sizes.to(device)).tolist()
        keep = []
        for pos, j in enumerate(alive):
            steps[j] = done + first_bad[pos]
            losses_j = [v[pos] for v, _ in within] + [val_loss[pos]]
            if first_bad[pos] < len(sizes) or not all(math.isfinite(v) for v in losses_j):
                status[j] = "diverged"
                continue
            history[j] += losses_j
            accs[j] += [a[pos] for _, a in within] + [val_acc[pos]]
            train_loss[j] = means[pos]
            keep.append(pos)
        done += len(sizes)
        if len(keep) < len(alive):
            if keep:
                trainer.keep(keep)
            alive = [alive[pos] for pos in keep]
    share = (time.perf_counter() - start) / len(configs)
    path = "batched-bmm" if trainer.native else "batched-vmap"
    chance = chance_loss(d)
    n_params = sum(math.prod(shape) for shape in trainer.layout.shapes)
    return [
        finish(
            c,
            status[j],
            history[j],
            accs[j],
            train_loss[j],
            steps[j],
            share,
            initial_loss=initial[j] if initial else float("nan"),
            chance_loss=chance,
            path=path,
            n_params=n_params,
        )
        for j, c in enumerate(configs)
    ]


# -- the path choice: a rule of the model's size, not a timing ----------------------------------------

# Above these parameter counts one batched pass stops beating the sequential loop on one CPU thread
# (measured with the timing this rule replaced, K=16, 1 thread: MNIST-1D MLP 2.9x at 23k params,
# 1.6x at 79k, 0.94x at 289k; the char transformer through vmap 1.4x at 32k, 0.93x at 113k). A
# timing decided differently from one invocation to the next, and the two paths give different
# last bits, which training grows into percent-level differences: a run's path must follow from
# its config, so it is a size rule.
BATCH_MAX_PARAMS = {"batched-bmm": 150_000, "batched-vmap": 50_000}


# the updates the batched step re-does; Muon's Newton–Schulz iteration is not among them (it would
# need K small matmul chains per matrix per step, batched by shape): its runs train one by one
BATCHED_OPTIMIZERS = ("sgd", "adam", "adamw")


def choose_path(model: nn.Module, device: Device = "cpu", optimizer: str = "adamw") -> tuple[str, str]:
    """("sequential" | "batched-bmm" | "batched-vmap", why) for runs of `model` trained by
    `optimizer` on `device`: a deterministic rule of the optimizer and the model's structure and
    size (on a GPU, every batchable model batches); "muon" runs are sequential."""
    if optimizer not in BATCHED_OPTIMIZERS:
        return "sequential", f"the batched engine re-does {', '.join(BATCHED_OPTIMIZERS)} steps only, not {optimizer}"
    ok, why = can_batch(model)
    if not ok:
        return "sequential", why
    path = "batched-bmm" if mlp_layers(model) is not None else "batched-vmap"
    n = sum(p.numel() for p in model.parameters())
    if torch.device(device).type == "cuda":
        return path, f"{n:,} parameters on a GPU"
    if n > BATCH_MAX_PARAMS[path]:
        return "sequential", f"{n:,} parameters > {BATCH_MAX_PARAMS[path]:,}, where {path} stops being faster on CPU"
    return path, f"{n:,} parameters ≤ {BATCH_MAX_PARAMS[path]:,}"
