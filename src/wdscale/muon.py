"""Muon for the hidden matrices and AdamW for the rest, as one torch optimizer.

Muon (Keller Jordan, "Muon: An optimizer for hidden layers in neural networks", blog post, 2024)
orthogonalises each 2-D hidden weight's momentum by a Newton–Schulz iteration; everything else
(embeddings, the readout, biases and norm gains, tensors of another rank) is trained by AdamW, as
Keller Jordan's reference code and Moonlight (Liu et al., "Muon is Scalable for LLM Training",
2025, arXiv:2502.16982) split them. `torch.optim.Muon` steps a group as

    w ← w·(1 − η_g λ_g)                      decoupled decay, with the group's lr η_g
    w ← w − η_g · s(A, B) · NS(momentum)     the update, its lr adjusted by the shape A×B

with s = √max(1, A/B) ("original", Keller Jordan's) or s = 0.2·√max(A, B) ("match_rms_adamw",
Moonlight's: the update's RMS ≈ 0.2, AdamW's typical update RMS, so AdamW's lr and λ can be
reused at one shape). The adjustment scales the update only, never the decay.

`MuonWithAdamW` holds one `torch.optim.Muon` and one `torch.optim.AdamW` and is itself a torch
optimizer: its `param_groups` are the inner optimizers' own group dicts (Muon's first), so an lr
scheduler that sets `group["lr"]` on it sets the inner ones; its `state` is the one dict both inner
optimizers write to, so torch's own `state_dict` / `load_state_dict` round-trip it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Literal, Optional, get_args

import torch

from .errors import WdscaleError, WdscaleTypeError

AdjustLR = Literal["match_rms_adamw", "original"]
ADJUST_LR_NAMES: tuple[AdjustLR, ...] = get_args(AdjustLR)
DEFAULT_ADJUST_LR: AdjustLR = "match_rms_adamw"
InnerName = Literal["muon", "adamw"]

# torch.optim.Muon's own keywords (lr, weight_decay and adjust_lr_fn come per group); AdamW's are the
# rest. Muon's Newton–Schulz eps keeps torch's default: `eps` is AdamW's.
MUON_KEYWORDS = ("momentum", "nesterov", "ns_coefficients", "ns_steps")
ADAMW_KEYWORDS = ("betas", "eps", "amsgrad", "capturable", "maximize", "foreach", "differentiable", "fused")


def check_adjust_lr(adjust_lr: Any) -> AdjustLR:
    """`adjust_lr` if it is one of `ADJUST_LR_NAMES`, else one WdscaleError naming it."""
    for name in ADJUST_LR_NAMES:
        if adjust_lr == name:
            return name
    raise WdscaleError(
        f"unknown adjust_lr {adjust_lr!r}: Muon's lr adjustment is one of {', '.join(map(repr, ADJUST_LR_NAMES))} "
        "(0.2·√max(A, B), Moonlight's RMS match to AdamW; or √max(1, A/B), Keller Jordan's)"
    )


def update_scale(shape: tuple[int, ...], adjust_lr: AdjustLR) -> float:
    """s(A, B): what `torch.optim.Muon` multiplies a group's lr by for the update of an A×B weight
    (A, B its stored first two dimensions); the decay keeps the group's lr.

    Args:
        shape: the weight's shape.
        adjust_lr: "match_rms_adamw" (0.2·√max(A, B)) or "original" (√max(1, A/B)).

    Returns:
        The factor s(A, B).
    """
    a, b = shape[0], shape[1]
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(a, b))
    return math.sqrt(max(1.0, a / b))


class MuonWithAdamW(torch.optim.Optimizer):
    """`torch.optim.Muon` on the groups marked `"optimizer": "muon"`, `torch.optim.AdamW` on those
    marked `"adamw"`, stepped together as one optimizer.

    `wdscale.optimizer(model, "muon", rule=...)` builds one; `wdscale.param_groups(model,
    optimizer="muon", ...)` gives groups this class takes.

    Args:
        params: parameter groups (dicts), each with `"optimizer"`: "muon" (2-D tensors only) or
            "adamw", and its own `lr` and `weight_decay` (decoupled on both sides).
        lr: the lr of a group that gives none.
        weight_decay: the decoupled λ of a group that gives none.
        adjust_lr: Muon's lr adjustment: "match_rms_adamw" (default) or "original".
        **kwargs: Muon's `MUON_KEYWORDS` (momentum, nesterov, ns_coefficients, ns_steps) and AdamW's
            `ADAMW_KEYWORDS` (betas, eps, amsgrad, capturable, maximize, foreach, differentiable, fused).

    Raises:
        WdscaleError: a group not marked muon or adamw, a Muon group holding a tensor that is not
            2-D, no Muon group, an unknown `adjust_lr`.
        WdscaleTypeError: a keyword neither Muon nor AdamW takes, a group that is not a dict.
    """

    def __init__(
        self,
        params: Iterable[dict[str, Any]],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        adjust_lr: str = DEFAULT_ADJUST_LR,
        **kwargs: Any,
    ) -> None:
        adjust = check_adjust_lr(adjust_lr)
        unknown = sorted(set(kwargs) - set(MUON_KEYWORDS) - set(ADAMW_KEYWORDS))
        if unknown:
            raise WdscaleTypeError(
                f"MuonWithAdamW does not take {', '.join(map(repr, unknown))}; Muon takes "
                f"{', '.join(MUON_KEYWORDS)}, AdamW {', '.join(ADAMW_KEYWORDS)}"
            )
        sides: dict[InnerName, list[dict[str, Any]]] = {"muon": [], "adamw": []}
        for i, group in enumerate(params):
            if not isinstance(group, dict):
                raise WdscaleTypeError(
                    f"MuonWithAdamW takes parameter groups (dicts with 'optimizer': 'muon' or 'adamw'); "
                    f"item {i} is a {type(group).__name__}"
                )
            side = group.get("optimizer")
            if side not in sides:
                raise WdscaleError(
                    f"parameter group {i} has 'optimizer': {side!r}; each group must say 'muon' (2-D hidden "
                    "matrices) or 'adamw' (the rest), as wdscale.param_groups(..., optimizer='muon') marks them"
                )
            if side == "muon":
                bad = next((p for p in group["params"] if p.ndim != 2), None)
                if bad is not None:
                    names = group.get("names")
                    raise WdscaleError(
                        f"parameter group {i} is marked 'muon' but holds a tensor of shape {tuple(bad.shape)}"
                        f"{f' (in {names})' if names else ''}: Muon takes 2-D matrices only; give it to 'adamw'"
                    )
            sides[side].append(group)
        if not sides["muon"]:
            raise WdscaleError(
                "no parameter group is marked 'muon': Muon has nothing to train (the model has no 2-D hidden "
                "matrix?); use AdamW alone"
            )
        muon_kw = {k: v for k, v in kwargs.items() if k in MUON_KEYWORDS}
        adamw_kw = {k: v for k, v in kwargs.items() if k in ADAMW_KEYWORDS}
        self.adjust_lr: AdjustLR = adjust
        self.muon = torch.optim.Muon(sides["muon"], lr=lr, weight_decay=weight_decay, adjust_lr_fn=adjust, **muon_kw)
        self.adamw: Optional[torch.optim.AdamW] = (
            torch.optim.AdamW(sides["adamw"], lr=lr, weight_decay=weight_decay, **adamw_kw) if sides["adamw"] else None
        )
        # Optimizer.__init__ appends the inner optimizers' own group dicts (it copies none), so a
        # scheduler setting group["lr"] here sets it there; the hooks (register_step_post_hook) are its.
        super().__init__(self._inner_groups(), {"lr": lr, "weight_decay": weight_decay})
        self._share_state()

    def __getstate__(self) -> dict[str, Any]:
        # torch's keeps defaults, state and groups only; a copy must keep the inner optimizers too
        # (deepcopy keeps them sharing the copied groups and state)
        return {**super().__getstate__(), "muon": self.muon, "adamw": self.adamw, "adjust_lr": self.adjust_lr}

    def _inners(self) -> list[torch.optim.Optimizer]:
        return [self.muon] + ([self.adamw] if self.adamw is not None else [])

    def _inner_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self._inners() for g in opt.param_groups]

    def _share_state(self) -> None:
        """One state dict for all three: the parameters are disjoint, and torch's state_dict reads it."""
        for opt in self._inners():
            opt.state = self.state

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:  # type: ignore[override]
        """One step of Muon on its groups and of AdamW on the rest.

        Args:
            closure: re-evaluates the model and returns the loss (called once, with grad enabled).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self._inners():
            opt.step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's `load_state_dict`; the loaded groups and state are then handed back to Muon and AdamW.

        Args:
            state_dict: what `state_dict()` of a MuonWithAdamW with the same groups returned.
        """
        super().load_state_dict(state_dict)
        n_muon = len(self.muon.param_groups)
        # torch's load replaces self.param_groups and self.state with new objects: rebind the inner
        # optimizers to them, through __setstate__ (which also re-applies their group defaults)
        self.muon.__setstate__({"state": self.state, "param_groups": self.param_groups[:n_muon]})
        if self.adamw is not None:
            self.adamw.__setstate__({"state": self.state, "param_groups": self.param_groups[n_muon:]})
        self._share_state()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Used by torch while building; afterwards refused (the group would reach neither inner optimizer).

        Raises:
            WdscaleError: called after construction.
        """
        if len(self.param_groups) >= len(self._inner_groups()):
            raise WdscaleError(
                "MuonWithAdamW cannot add a parameter group after it is built: build a new one with all the groups"
            )
        super().add_param_group(param_group)
