"""torch's optimizer step, re-done for K stacked models: read what a torch optimizer would do
(`read_optimizer`), then do it to all K at once (`BatchedOptimizer`).

The step reproduces torch's single-tensor (`foreach=False`) SGD, SGDW, Adam and AdamW op by op, so
a batched run matches the sequential `train_run` (tests/study/train/test_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ...errors import WdscaleError
from ...sgdw import SGDW
from .stack import Layout


@dataclass(frozen=True)
class TorchUpdate:
    """The update a torch optimizer makes, minus its per-parameter lr and λ."""

    family: Literal["sgd", "adam"]
    decoupled: bool  # SGDW / AdamW: p ← p(1 − lr·λ) before the step; else λp is added to the gradient
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


def read_optimizer(
    opt: torch.optim.Optimizer, model: nn.Module
) -> tuple[TorchUpdate, dict[str, float], dict[str, float]]:
    """(update, lr by parameter name, λ by parameter name) of a SGD, SGDW, Adam or AdamW instance.

    Reading the optimizer that `train_run` would build — rather than re-deriving it from the rule —
    means the batched path cannot drift from the sequential one when the rules change."""
    names = {id(p): n for n, p in model.named_parameters()}
    lr: dict[str, float] = {}
    wd: dict[str, float] = {}
    updates = set()
    for g in opt.param_groups:
        if isinstance(opt, torch.optim.SGD):
            if g.get("nesterov") or g.get("dampening", 0) or g.get("maximize") or g.get("fused"):
                raise WdscaleError("the batched engine supports SGD without nesterov, dampening, maximize, fused")
            update = TorchUpdate("sgd", isinstance(opt, SGDW), momentum=float(g.get("momentum", 0.0)))
        elif isinstance(opt, torch.optim.Adam):  # AdamW is a subclass of Adam in torch >= 2.6
            if g.get("amsgrad") or g.get("maximize") or g.get("fused") or g.get("capturable"):
                raise WdscaleError(
                    "the batched engine supports Adam/AdamW without amsgrad, maximize, fused, capturable"
                )
            decoupled = bool(g.get("decoupled_weight_decay", isinstance(opt, torch.optim.AdamW)))
            update = TorchUpdate(
                "adam", decoupled, betas=(float(g["betas"][0]), float(g["betas"][1])), eps=float(g["eps"])
            )
        else:
            raise WdscaleError(f"the batched engine has no step for {type(opt).__name__}")
        updates.add(update)
        for p in g["params"]:
            lr[names[id(p)]] = float(g["lr"])
            wd[names[id(p)]] = float(g["weight_decay"])
    missing = sorted(set(names.values()) - set(lr))
    if missing:
        raise WdscaleError(f"parameters not in the optimizer: {', '.join(missing)}")
    if len(updates) != 1:
        raise WdscaleError(f"param groups differ in momentum/betas/eps: {sorted(map(str, updates))}")
    return updates.pop(), lr, wd


class BatchedOptimizer:
    """torch's single-tensor SGD/SGDW/Adam/AdamW step on the flat buffer of K stacked models.

    Same ops in the same order as `torch.optim._single_tensor_sgd/_adam`. Where torch passes a
    per-group Python scalar (`alpha=`, `value=`), the scalar differs per model and parameter here,
    so it becomes a tensor: `add(x, alpha=a)` is a fused multiply-add in torch's CPU kernel and
    `addcmul(g, x, a)` is the same fused multiply-add with a tensor `a`; `addcdiv_(m, d, value=s)`
    computes `(s·m)/d`, so it becomes `addcdiv_(s·m, d)`. Scalars are formed in float64 (as Python
    does) and then cast to the parameter dtype (as torch casts a Python scalar).

    `lr` and `weight_decay` are (K, n_params) tables: one value per member and parameter.

    An lr schedule is torch's `LambdaLR`: before each step `set_multiplier(m)` makes every lr
    initial lr × m (in float64, as LambdaLR forms it), and the decoupled factor 1 − lr·λ and SGD's
    −lr follow; those per-step values are applied block by block (one scalar per member and
    parameter, broadcast), so a schedule adds no full-size table per step."""

    def __init__(
        self, update: TorchUpdate, layout: Layout, lr: torch.Tensor, weight_decay: torch.Tensor, dtype: torch.dtype
    ) -> None:
        lr, weight_decay = lr.double(), weight_decay.double()
        self.update, self.layout, self.dtype = update, layout, dtype
        self.lr, self.weight_decay = lr, weight_decay  # the initial (peak) lr: what a schedule multiplies
        self.multiplier = 1.0
        self.scheduled = False  # True once a multiplier other than 1 was set: per-step block scalars
        self.steps = 0
        self.decays = bool((weight_decay != 0).any())
        self.neg_lr = -lr  # (K, n_params), float64: Adam forms -lr/bc1 from it every step
        self.neg_lr_flat = layout.spread(self.neg_lr).to(dtype)  # SGD: p.add_(g, alpha=-lr)
        # decoupled: p.mul_(1 - lr*wd), the factor a Python float; coupled: grad.add(p, alpha=wd)
        self.decay = layout.spread(1 - lr * weight_decay if update.decoupled else weight_decay).to(dtype)
        self.state: dict[str, torch.Tensor] = {}
        self.scratch: dict[str, torch.Tensor] = {}

    @property
    def k(self) -> int:
        return self.neg_lr.shape[0]

    def set_multiplier(self, m: float) -> None:
        """The schedule's multiplier for the next step: lr = initial lr × m for every member and
        parameter (torch's LambdaLR), and with it the decoupled decay factor and SGD's step."""
        if m == self.multiplier:
            return
        self.multiplier, self.scheduled = m, True
        lr = self.lr * m
        self.neg_lr = -lr
        self.neg_lr_block = self.neg_lr.to(self.dtype)  # SGD: p.add_(g, alpha=-lr), per block
        # decoupled: p.mul_(1 − lr·λ), per block (coupled L2 adds λp to the gradient: no lr in it)
        self.decay_block = (1 - lr * self.weight_decay).to(self.dtype)

    def _per_block(self, op: str, p: torch.Tensor, table: torch.Tensor, *args: torch.Tensor) -> None:
        """p_i.op(*args_i, table[:, i]) for every parameter block i, the scalar broadcast per member."""
        k = self.k
        views = [self.layout.blocks(a, k) for a in args]
        for i, block in enumerate(self.layout.blocks(p, k)):
            scalar = table[:, i].view(k, *[1] * (block.dim() - 1))
            getattr(block, op)(*(v[i] for v in views), scalar)

    @torch.no_grad()
    def step(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        r = self.update
        self.steps += 1
        g = grad
        if self.decays:
            if r.decoupled:
                if self.scheduled:
                    self._per_block("mul_", p, self.decay_block)
                else:
                    p.mul_(self.decay)
            else:
                g = torch.addcmul(grad, p, self.decay)  # coupled L2: λp, not scaled by the schedule
        if r.family == "sgd":
            if r.momentum != 0:
                buf = self.state.get("momentum_buffer")
                if buf is None:
                    buf = self.state["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(r.momentum).add_(g)
                g = buf
            if self.scheduled:
                self._per_block("addcmul_", p, self.neg_lr_block, g)
            else:
                p.addcmul_(g, self.neg_lr_flat)
            return
        beta1, beta2 = r.betas
        if not self.state:
            self.state = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** float(self.steps)
        bias_correction2 = 1 - beta2 ** float(self.steps)
        if "denom" not in self.scratch:  # reused every step: no large allocation per step
            self.scratch = {"denom": torch.empty_like(p), "scaled": torch.empty_like(p)}
        denom, scaled = self.scratch["denom"], self.scratch["scaled"]
        torch.sqrt(exp_avg_sq, out=denom).div_(bias_correction2**0.5).add_(r.eps)
        # value=-step_size, one per member and parameter: broadcast over each block, no full-size table
        neg_step = (self.neg_lr / bias_correction1).to(self.dtype)
        k = self.k
        for i, (m, out) in enumerate(zip(self.layout.blocks(exp_avg, k), self.layout.blocks(scaled, k))):
            torch.mul(m, neg_step[:, i].view(k, *[1] * (m.dim() - 1)), out=out)
        p.addcdiv_(scaled, denom)

    def select(self, members: torch.Tensor) -> None:
        """Keep the listed members' lr, λ and state (see `Layout.select`)."""
        k = self.k
        self.neg_lr = self.neg_lr[members]
        self.lr, self.weight_decay = self.lr[members], self.weight_decay[members]
        if self.scheduled:
            self.neg_lr_block, self.decay_block = self.neg_lr_block[members], self.decay_block[members]
        self.neg_lr_flat = self.layout.select(self.neg_lr_flat, k, members)
        self.decay = self.layout.select(self.decay, k, members)
        self.state = {n: self.layout.select(t, k, members) for n, t in self.state.items()}
        self.scratch = {}
