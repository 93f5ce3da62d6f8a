"""SGD with decoupled weight decay, which torch does not ship.

Each step first shrinks every parameter, `p ← p · (1 − lr · weight_decay)`, then takes the plain
`torch.optim.SGD` step with no weight decay. For plain SGD this equals coupled L2; with momentum
it does not (the decay skips the momentum buffer) — the SGD counterpart of AdamW
(Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019).
"""

from __future__ import annotations

from typing import Any

import torch


class SGDW(torch.optim.SGD):
    """`torch.optim.SGD` whose `weight_decay` is decoupled: `p ← p(1 − lr·λ)` before the step.

    Args:
        params: parameters or parameter groups, as torch optimizers take them.
        lr: the default learning rate.
        weight_decay: the default decoupled decay λ.
        **kwargs: `torch.optim.SGD`'s other arguments (momentum, dampening, nesterov, maximize,
            foreach, differentiable, fused); `foreach` defaults to False.
    """

    def __init__(self, params: Any, lr: float = 1e-3, weight_decay: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("foreach", False)  # single-tensor path: a documented order of operations
        super().__init__(params, lr=lr, weight_decay=weight_decay, **kwargs)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, wd in zip(self.param_groups, decays):
            if wd != 0.0:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1.0 - group["lr"] * wd)
            group["weight_decay"] = 0.0  # the SGD step must not add it again, coupled
        try:
            super().step()
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd
        return loss
