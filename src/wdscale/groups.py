"""Model -> classified parameters: kind, fan_in / fan_out, width multipliers against a base model.

Kinds (the μP vocabulary, Yang et al. 2022, "Tensor Programs V"):
  hidden  both fan dimensions grow with width            (inner Linear / Conv weights)
  input   fan_in fixed, fan_out grows                     (first layer, embeddings)
  output  fan_out fixed, fan_in grows                     (readout)
  vector  one dimension or none                           (biases, norm gains)

Which dimensions grow is found by comparing shapes with a `base` model (the same architecture at
the size where λ was tuned), as `mup.set_base_shapes` does; a parameter that already carries mup's
`infshape` keeps it. Without a base (or where no dimension differs, e.g. the model *is* the base),
a matrix's kind comes from its position: embeddings and the first matrix are `input`, the last is
`output`, the rest `hidden`; all multipliers are then 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch
from torch import nn

KINDS = ("hidden", "input", "output", "vector")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the rules see it."""

    name: str  # canonical: wrapper prefixes (DDP `module.`, torch.compile `_orig_mod.`) removed
    shape: tuple[int, ...]
    kind: str  # one of KINDS
    fan_in: int
    fan_out: int
    fan_in_mult: float  # fan_in / base fan_in
    fan_out_mult: float
    ninf: int  # how many dimensions grow with width (mup's `infshape.ninf()`)
    width_mult: float  # multiplier of the last growing dimension (mup's `infshape.width_mult()`)
    decayed: bool
    mup_readout: bool  # a mup `MuReadout`-like layer (its forward divides by the width multiplier)
    from_infshape: bool  # multipliers were read from mup's `infshape`
    param: torch.Tensor = field(compare=False, repr=False)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def canonical_name(name: str) -> str:
    """`module._orig_mod.fc.weight` -> `fc.weight`: wrappers must not change the result."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def _fan_dims(module: Optional[nn.Module], ndim: int) -> tuple[list[int], list[int]]:
    """Which dimensions of a weight are fan_out and which fan_in, by the module that owns it."""
    if isinstance(module, nn.Embedding):
        return [1], [0]  # (num_embeddings, dim): a lookup, its "fan_in" is the vocabulary
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return [1], [0] + list(range(2, ndim))  # (in, out/groups, *kernel)
    return [0], list(range(1, ndim))  # Linear, Conv: (out, in, *kernel)


def _owners(model: nn.Module) -> dict[int, nn.Module]:
    owners: dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), module)
    return owners


def _is_mup_readout(module: Optional[nn.Module]) -> bool:
    return module is not None and hasattr(module, "output_mult") and callable(getattr(module, "width_mult", None))


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names the model asks not to decay, timm-style: `model.no_weight_decay()` -> set of names."""
    fn = getattr(unwrap(model), "no_weight_decay", None)
    return {canonical_name(n) for n in fn()} if callable(fn) else set()


def _excluded(name: str, excluded: set[str]) -> bool:
    return any(name == e or name.startswith(e + ".") for e in excluded)


def classify(
    model: nn.Module,
    base: Optional[nn.Module] = None,
    *,
    decay_vectors: bool = False,
    no_decay: Iterable[str] = (),
) -> list[ParamInfo]:
    """Classify every parameter of `model` once, in `named_parameters` order.

    Vectors (ndim <= 1, or names ending in `.bias`) are not decayed unless `decay_vectors`; names in
    `model.no_weight_decay()` or `no_decay` are never decayed.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inner = unwrap(model)
    named = [(canonical_name(n), p) for n, p in inner.named_parameters()]
    if not named:
        raise ValueError("the model has no parameters to put in groups")
    base_shapes = _base_shapes(named, base) if base is not None else None
    owners = _owners(inner)
    excluded = no_weight_decay_names(inner) | {canonical_name(n) for n in no_decay}
    matrices = [i for i, (_, p) in enumerate(named) if p.ndim >= 2]

    infos = []
    for i, (name, p) in enumerate(named):
        module = owners.get(id(p))
        shape = tuple(p.shape)
        out_dims, in_dims = _fan_dims(module, p.ndim) if p.ndim >= 2 else ([0] if p.ndim else [], [])
        infshape = getattr(p, "infshape", None)
        if infshape is not None:
            mults = [float(d.width_mult()) for d in infshape]
            grows = [bool(d.isinf()) for d in infshape]
            width_mult = float(infshape.width_mult())
            # mup reads fan_in / fan_out as dims 1 / 0 whatever the module
            if p.ndim >= 2:
                out_dims, in_dims = [0], [1]
        else:
            bshape = base_shapes[i] if base_shapes is not None else shape
            mults = [d / b for d, b in zip(shape, bshape)]
            grows = [d != b for d, b in zip(shape, bshape)]
            width_mult = next((m for m, g in zip(reversed(mults), reversed(grows)) if g), 1.0)
        fan_out = math.prod(shape[d] for d in out_dims) if shape else 1
        fan_in = math.prod(shape[d] for d in in_dims) if p.ndim >= 2 else 1
        fan_out_mult = math.prod(mults[d] for d in out_dims) if shape else 1.0
        fan_in_mult = math.prod(mults[d] for d in in_dims) if p.ndim >= 2 else 1.0
        ninf = sum(grows)
        kind = _kind(p, module, i, matrices, out_dims, in_dims, grows)
        is_vector = kind == "vector" or name.endswith(".bias")
        decayed = (decay_vectors or not is_vector) and not _excluded(name, excluded)
        infos.append(
            ParamInfo(
                name=name, shape=shape, kind=kind, fan_in=fan_in, fan_out=fan_out,
                fan_in_mult=float(fan_in_mult), fan_out_mult=float(fan_out_mult), ninf=ninf,
                width_mult=float(width_mult), decayed=decayed, mup_readout=_is_mup_readout(module),
                from_infshape=infshape is not None, param=p,
            )
        )
    return infos


def _kind(p, module, index, matrices, out_dims, in_dims, grows) -> str:
    if p.ndim <= 1:
        return "vector"
    out_grows = any(grows[d] for d in out_dims)
    in_grows = any(grows[d] for d in in_dims)
    if out_grows and in_grows:
        return "hidden"
    if out_grows:
        return "input"
    if in_grows:
        return "output"
    # nothing grows (no base, or the model is the base): by position
    if isinstance(module, nn.Embedding) or index == matrices[0]:
        return "input"
    if index == matrices[-1]:
        return "output"
    return "hidden"


def _base_shapes(named: list[tuple[str, torch.Tensor]], base: nn.Module) -> list[tuple[int, ...]]:
    if not isinstance(base, nn.Module):
        raise TypeError(f"base must be a torch.nn.Module (the model at its base size), got {type(base).__name__}")
    base_named = [(canonical_name(n), tuple(p.shape)) for n, p in unwrap(base).named_parameters()]
    for i, (name, p) in enumerate(named):
        if i >= len(base_named):
            raise ValueError(f"model and base differ: model parameter {name!r} has no counterpart in base "
                             f"(base has {len(base_named)} parameters, model {len(named)})")
        bname, bshape = base_named[i]
        if bname != name:
            raise ValueError(f"model and base differ at parameter #{i}: model has {name!r}, base has {bname!r}; "
                             "base must be the same architecture at another width")
        if len(bshape) != p.ndim:
            raise ValueError(f"model and base differ in the rank of {name!r}: model {tuple(p.shape)}, base {bshape}")
    if len(base_named) != len(named):
        raise ValueError(f"model and base differ: base parameter {base_named[len(named)][0]!r} has no counterpart "
                         f"in model (base has {len(base_named)} parameters, model {len(named)})")
    return [s for _, s in base_named]
