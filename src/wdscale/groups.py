"""Model -> classified parameters: kind, fan_in / fan_out, width multipliers against a base model.

Kinds (the μP vocabulary, Yang et al. 2022, "Tensor Programs V"):
  hidden  two dimensions grow with width                  (inner Linear / Conv / attention weights)
  input   a layer's fan_out grows, its fan_in does not   (first layer, embeddings)
  output  a layer's fan_in grows, its fan_out does not   (readout)
  vector  at most one dimension grows and the tensor is no layer's weight matrix
          (biases, norm gains, class tokens, position embeddings, latent arrays)

A tensor is classified by what it does, not by its ndim or by module order:

* Which dimensions grow is found by comparing shapes with a `base` model (the same architecture at
  the size where λ was tuned), as `mup.set_base_shapes` does; a parameter that already carries
  mup's `infshape` keeps it. Like mup, at most two dimensions may grow: a tensor with three (an
  `nn.Bilinear` weight scaled in every dimension) is an error, not silently left unscaled.
* Which dimensions are fan_in and which fan_out comes from the module that owns the weight and its
  real layout: `nn.Linear` / `nn.Bilinear` / convolutions (out, in, ...), transposed convolutions
  (in, out, ...), `transformers`' `Conv1D` (in, out), `nn.Embedding` / `nn.EmbeddingBag`
  (vocabulary, dim), `nn.MultiheadAttention`'s packed `in_proj_weight` (3·d, d).
* A raw `nn.Parameter` (no such layout: a ViT class token 1×1×d, a position embedding 1×T×d) is
  vector-like when at most one of its dimensions grows — mup's rule (`infshape.ninf() <= 1`) —
  and matrix-like (`hidden`) when two do.
* A tensor registered in several modules (an embedding tied to the readout) is classified from all
  of its owners; an `input` reading wins, as in mup (its `MuSharedReadout` keeps the embedding's
  vector-like scaling).
* Frozen parameters (`requires_grad=False`) are not classified: they go in no group and are not
  counted in P.

Where no dimension grows (no base, or the model *is* the base), a layer weight's kind comes from
its position: embeddings and the first weight are `input`, the last registered weight (a tied
readout counts as its embedding) is `output`, the rest `hidden`; a raw parameter is `vector` when
at most one of its dimensions is larger than 1. All multipliers are then 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Literal, Optional, Sequence, Union, get_args

import torch
from torch import nn

from .errors import WdscaleError, WdscaleTypeError

ParamKind = Literal["hidden", "input", "output", "vector"]
KINDS: tuple[ParamKind, ...] = get_args(ParamKind)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MHA_PROJECTIONS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(frozen=True)
class ParamInfo:
    """One trainable parameter as the rules see it (what `classify` returns, a rule's first argument).

    Attributes:
        name: canonical name (wrapper prefixes removed).
        shape: the tensor's shape.
        kind: "hidden", "input", "output" or "vector" (the μP vocabulary, see the module doc).
        fan_in, fan_out: the layer's fans, from its real layout (1 and numel for a vector).
        fan_in_mult, fan_out_mult: the fans divided by the base model's.
        ninf: how many dimensions grow with width.
        width_mult: the multiplier μP scales this parameter by.
        decayed: whether weight decay applies to it.
        mup_readout: it belongs to a mup `MuReadout`-like layer.
        from_infshape: the multipliers were read from mup's `infshape`.
        param: the tensor itself.
    """

    name: str  # canonical: wrapper prefixes (DDP `module.`, torch.compile `_orig_mod.`) removed
    shape: tuple[int, ...]
    kind: ParamKind
    fan_in: int
    fan_out: int
    fan_in_mult: float  # fan_in / base fan_in
    fan_out_mult: float
    ninf: int  # how many dimensions grow with width (mup's `infshape.ninf()`)
    width_mult: float  # hidden: the fan_in multiplier; one growing dim: its multiplier; else 1
    decayed: bool
    mup_readout: bool  # a mup `MuReadout`-like layer (its forward divides by the width multiplier)
    from_infshape: bool  # multipliers were read from mup's `infshape`
    param: torch.Tensor = field(compare=False, repr=False)

    @property
    def numel(self) -> int:
        """Scalar entries in the tensor."""
        return math.prod(self.shape)


def canonical_name(name: str) -> str:
    """`module._orig_mod.fc.weight` -> `fc.weight`: wrappers must not change the result."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
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


# -- layouts --------------------------------------------------------------------------------------

LayerRole = Literal["layer", "embedding"]
Layout = tuple[list[int], list[int], LayerRole]  # (fan_out dims, fan_in dims, role)


def _is_hf_conv1d(module: nn.Module, local_name: str, shape: tuple[int, ...]) -> bool:
    # transformers.pytorch_utils.Conv1D (GPT-2, GPT, ...): a Linear whose weight is stored (nx, nf).
    # Recognised by its attributes, so wdscale does not import transformers.
    nf, nx = getattr(module, "nf", None), getattr(module, "nx", None)
    return (
        type(module).__name__ == "Conv1D"
        and local_name == "weight"
        and isinstance(nf, int)
        and isinstance(nx, int)
        and shape == (nx, nf)
    )


def layout(module: Optional[nn.Module], local_name: str, shape: tuple[int, ...]) -> Optional[Layout]:
    """Which dims of a layer weight are fan_out and which fan_in; None for a raw parameter."""
    ndim = len(shape)
    if module is None or ndim < 2:
        return None
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and local_name == "weight":
        return [1], [0], "embedding"  # (num_embeddings, dim): a lookup, its "fan_in" is the vocabulary
    if isinstance(module, nn.modules.conv._ConvTransposeNd) and local_name == "weight":
        return [1], [0] + list(range(2, ndim)), "layer"  # (in, out/groups, *kernel)
    if isinstance(module, (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)) and local_name == "weight":
        return [0], list(range(1, ndim)), "layer"  # (out, in[, in2 | *kernel])
    if isinstance(module, nn.MultiheadAttention) and local_name in _MHA_PROJECTIONS:
        return [0], [1], "layer"  # packed q, k, v: (3·embed_dim, embed_dim)
    if _is_hf_conv1d(module, local_name, shape):
        return [1], [0], "layer"
    return None


def _registrations(model: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """Every (module, local name, parameter) registration, tied parameters once per owner, in order."""
    out: list[tuple[nn.Module, str, torch.Tensor]] = []
    for module in model.modules():
        for local_name, p in module._parameters.items():
            if p is not None:
                out.append((module, local_name, p))
    return out


def _is_mup_readout(module: Optional[nn.Module]) -> bool:
    return module is not None and hasattr(module, "output_mult") and callable(getattr(module, "width_mult", None))


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names the model asks not to decay, timm-style: `model.no_weight_decay()` -> set of names."""
    fn = getattr(unwrap(model), "no_weight_decay", None)
    return {canonical_name(n) for n in fn()} if callable(fn) else set()


def _excluded(name: str, excluded: set[str]) -> bool:
    return any(name == e or name.startswith(e + ".") for e in excluded)


def _names(no_decay: Union[str, Iterable[str]]) -> set[str]:
    if isinstance(no_decay, str):
        return {canonical_name(no_decay)}  # one name, not its characters
    try:
        names = list(no_decay)
    except TypeError:
        raise WdscaleTypeError(
            f"no_decay must be a parameter or module name or a list of them, got {no_decay!r}"
        ) from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise WdscaleTypeError(f"no_decay must hold parameter or module names (str), got {bad[0]!r}")
    return {canonical_name(n) for n in names}


# -- classification -------------------------------------------------------------------------------


@dataclass
class _Growth:
    mults: list[float]
    grows: list[bool]
    from_infshape: bool
    infshape_width_mult: Optional[float] = None


def classify(
    model: nn.Module,
    base: Optional[nn.Module] = None,
    *,
    decay_vectors: bool = False,
    no_decay: Union[str, Iterable[str]] = (),
) -> list[ParamInfo]:
    """Classify every trainable parameter of `model` once, in `named_parameters` order.

    Args:
        model: the model (DDP, DataParallel and torch.compile wrappers are looked through).
        base: the same architecture at the width where the setting was tuned; dimensions that
            differ from it grow with width. None: nothing grows (unless the parameters carry
            mup's `infshape`), kinds are read from layer positions.
        decay_vectors: decay vectors too (biases, norm gains; ndim <= 1, names ending in
            `.bias`, raw parameters with at most one dimension larger than 1).
        no_decay: a parameter or module name, or a list of them, never to decay; names in
            `model.no_weight_decay()` are never decayed either.

    Returns:
        One `ParamInfo` per trainable parameter; frozen parameters are left out.

    Raises:
        WdscaleTypeError: `model` or `base` is not an nn.Module, or `no_decay` holds a non-name.
        WdscaleError: the model has no trainable parameter, a parameter grows in three
            dimensions, or `base` differs from the model in more than width.
    """
    if not isinstance(model, nn.Module):
        raise WdscaleTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inner = unwrap(model)
    named_all = [(canonical_name(n), p) for n, p in inner.named_parameters()]
    if not named_all:
        raise WdscaleError("the model has no parameters to put in groups")
    excluded = no_weight_decay_names(inner) | _names(no_decay)
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    registrations = _registrations(inner)
    for module, local_name, p in registrations:
        owners.setdefault(id(p), []).append((module, local_name))
    base_shapes = None
    if base is not None:
        module_of = [id(owners[id(p)][0][0]) if id(p) in owners else id(p) for _, p in named_all]
        embeddings = {  # indices of embedding tables (their rows are a vocabulary, never a width)
            i
            for i, (_, p) in enumerate(named_all)
            for m, n in owners.get(id(p), [])
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and n == "weight"
        }
        base_shapes = _base_shapes(named_all, base, module_of, embeddings)
    # position order of layer weights (a tied readout counts where it is registered, as its tensor)
    layer_weights = [id(p) for m, n, p in registrations if layout(m, n, tuple(p.shape)) is not None]
    first_layer, last_layer = (layer_weights[0], layer_weights[-1]) if layer_weights else (None, None)

    infos = []
    for i, (name, p) in enumerate(named_all):
        if not p.requires_grad:
            continue  # frozen: in no group, not counted
        shape = tuple(p.shape)
        growth = _growth(p, shape, base_shapes[i] if base_shapes is not None else shape)
        ninf = sum(growth.grows)
        if ninf > 2:
            grown = [d for d, g in enumerate(growth.grows) if g]
            raise WdscaleError(
                f"parameter {name!r} (shape {shape}) grows with width in {ninf} dimensions {grown}; the rules "
                "scale tensors with at most two growing dimensions (μP's vector- and matrix-like, as mup). "
                "Keep it fixed in the base comparison or freeze it (requires_grad=False)"
            )
        own = owners.get(id(p), [])
        readings = [_reading(layout(m, n, shape), shape, growth, id(p), first_layer, last_layer) for m, n in own]
        if not readings:  # a parameter with no owner module: cannot happen with nn.Module, be safe
            readings = [_reading(None, shape, growth, id(p), first_layer, last_layer)]
        kind, out_dims, in_dims, is_layer = next((r for r in readings if r[0] == "input"), readings[0])
        fan_out, fan_in, fan_out_mult, fan_in_mult = _fans(shape, growth.mults, out_dims, in_dims)
        if growth.infshape_width_mult is not None:
            width_mult = growth.infshape_width_mult  # mup's own (its last infinite dimension)
        elif ninf == 2:
            width_mult = fan_in_mult if is_layer else _last_growing(growth)
        else:
            width_mult = _last_growing(growth)
        vector_shaped = p.ndim <= 1 or name.endswith(".bias") or (not is_layer and sum(d > 1 for d in shape) <= 1)
        decayed = (decay_vectors or not vector_shaped) and not _excluded(name, excluded)
        infos.append(
            ParamInfo(
                name=name,
                shape=shape,
                kind=kind,
                fan_in=fan_in,
                fan_out=fan_out,
                fan_in_mult=float(fan_in_mult),
                fan_out_mult=float(fan_out_mult),
                ninf=ninf,
                width_mult=float(width_mult),
                decayed=decayed,
                mup_readout=any(_is_mup_readout(m) for m, _ in own),
                from_infshape=growth.from_infshape,
                param=p,
            )
        )
    if not infos:
        raise WdscaleError("every parameter of the model is frozen (requires_grad=False): nothing to put in groups")
    return infos


def _growth(p: torch.Tensor, shape: tuple[int, ...], base_shape: tuple[int, ...]) -> _Growth:
    infshape = getattr(p, "infshape", None)
    if infshape is not None:
        return _Growth(
            [float(d.width_mult()) for d in infshape],
            [bool(d.isinf()) for d in infshape],
            True,
            float(infshape.width_mult()),
        )
    return _Growth([d / b for d, b in zip(shape, base_shape)], [d != b for d, b in zip(shape, base_shape)], False)


def _last_growing(growth: _Growth) -> float:
    return next((m for m, g in zip(reversed(growth.mults), reversed(growth.grows)) if g), 1.0)


def _reading(
    lay: Optional[Layout],
    shape: tuple[int, ...],
    growth: _Growth,
    pid: int,
    first_layer: Optional[int],
    last_layer: Optional[int],
) -> tuple[ParamKind, list[int], list[int], bool]:
    """(kind, fan_out dims, fan_in dims, is a layer weight) as one owner sees the tensor."""
    ndim, grows = len(shape), growth.grows
    if lay is None:  # a raw parameter (or a 0/1-d one): what grows decides, whatever the module
        ninf = sum(grows)
        if ndim >= 2 and (ninf == 2 or (ninf == 0 and sum(d > 1 for d in shape) > 1)):
            dims = [d for d, g in enumerate(grows) if g] if ninf == 2 else [0, 1]
            # mup's convention for a matrix without a known layout: first dim fan_out, second fan_in
            return "hidden", [dims[0]], [dims[1]], False
        return "vector", [], [], False
    out_dims, in_dims, role = lay
    kind: ParamKind
    out_grows, in_grows = any(grows[d] for d in out_dims), any(grows[d] for d in in_dims)
    if out_grows and in_grows:
        kind = "hidden"
    elif role == "embedding" or out_grows:
        kind = "input"
    elif in_grows:
        kind = "output"
    elif pid == first_layer:  # nothing grows (no base, or the model is the base): by position
        kind = "input"
    elif pid == last_layer:
        kind = "output"
    else:
        kind = "hidden"
    return kind, out_dims, in_dims, True


def _fans(
    shape: tuple[int, ...], mults: list[float], out_dims: list[int], in_dims: list[int]
) -> tuple[int, int, float, float]:
    if not in_dims:  # vector-like: no contraction, a bias's fan_in is 1
        return math.prod(shape), 1, math.prod(mults) if shape else 1.0, 1.0
    return (
        math.prod(shape[d] for d in out_dims),
        math.prod(shape[d] for d in in_dims),
        math.prod(mults[d] for d in out_dims),
        math.prod(mults[d] for d in in_dims),
    )


def _base_shapes(
    named: Sequence[tuple[str, torch.Tensor]], base: nn.Module, module_of: list[int], embeddings: set[int]
) -> list[tuple[int, ...]]:
    if not isinstance(base, nn.Module):
        raise WdscaleTypeError(
            f"base must be a torch.nn.Module (the model at its base size), got {type(base).__name__}"
        )
    base_named = [(canonical_name(n), tuple(p.shape)) for n, p in unwrap(base).named_parameters()]
    for i, (name, p) in enumerate(named):
        if i >= len(base_named):
            raise WdscaleError(
                f"model and base differ: model parameter {name!r} has no counterpart in base "
                f"(base has {len(base_named)} parameters, model {len(named)})"
            )
        bname, bshape = base_named[i]
        if bname != name:
            raise WdscaleError(
                f"model and base differ at parameter #{i}: model has {name!r}, base has {bname!r}; "
                "base must be the same architecture at another width"
            )
        if len(bshape) != p.ndim:
            raise WdscaleError(f"model and base differ in the rank of {name!r}: model {tuple(p.shape)}, base {bshape}")
    if len(base_named) != len(named):
        raise WdscaleError(
            f"model and base differ: base parameter {base_named[len(named)][0]!r} has no counterpart "
            f"in model (base has {len(base_named)} parameters, model {len(named)})"
        )
    for (name, p), (_, bshape) in zip(named, base_named):
        if any(d < b for d, b in zip(p.shape, bshape)):
            raise WdscaleError(
                f"the base is larger than the model: {name!r} is {tuple(p.shape)} in the model, {bshape} in the "
                "base. base must be the same model at the width where the setting was tuned, no wider than the "
                "model (base=model when the model is that width): a wider base turns the width multipliers below "
                "1 and raises μP's hidden lr instead of lowering it"
            )
    _check_only_width_differs(named, base_named, module_of, embeddings)
    return [s for _, s in base_named]


def _check_only_width_differs(
    named: Sequence[tuple[str, torch.Tensor]],
    base_named: list[tuple[str, tuple[int, ...]]],
    module_of: list[int],
    embeddings: set[int],
) -> None:
    """A dimension that differs from the base must be a width: its ratio shows up in another module
    too (a width one layer produces, another reads). A ratio found in one module alone (a weight
    and its bias) is a data-facing size (inputs, classes, vocabulary) that changed."""
    where: dict[Fraction, dict[int, int]] = {}  # ratio -> {module: first parameter index}
    for i, ((name, p), (_, bshape)) in enumerate(zip(named, base_named)):
        if i in embeddings and p.ndim == 2 and p.shape[0] != bshape[0]:
            # an embedding's rows are a vocabulary (or positions): never a width, even where the
            # model's untied readout changes by the same ratio
            raise WdscaleError(
                f"model and base differ in more than width at {name!r}: an embedding of {p.shape[0]} rows in the "
                f"model, {bshape[0]} in the base; its rows are a vocabulary (or positions), not a width. The base "
                "must be the same model at another width, with the same vocabulary"
            )
        for d, b in zip(p.shape, bshape):
            if d != b:
                where.setdefault(Fraction(d, b), {}).setdefault(module_of[i], i)
    for ratio, modules in where.items():
        if len(modules) == 1:
            i = next(iter(modules.values()))
            name, p = named[i]
            raise WdscaleError(
                f"model and base differ in more than width at {name!r}: model shape {tuple(p.shape)}, base shape "
                f"{base_named[i][1]}; a dimension changes by {float(ratio):.4g}x there and in no other layer, so "
                "it is not a width (inputs, classes or vocabulary?). The base must be the same model at another "
                "width, with the same inputs and outputs"
            )
