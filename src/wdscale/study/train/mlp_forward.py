"""The hand-written batched forward of a plain MLP: baddbmm on K stacked weights.

Faster than vmap(functional_call) on CPU (docs/benchmarks.md); used only for
`wdscale.study.plan.models.MLP` (and its `OneHotMLP`, token ids one-hot encoded first) or a plain
Linear/activation/Flatten chain, and only after its output has been checked against the model's
own forward (`engine.BatchedTrainer`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..plan.models import MLP, OneHotMLP

_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Mish, nn.Identity)


def mlp_layers(model: nn.Module) -> Optional[list[tuple[str, object]]]:
    """The layer chain of a plain MLP, for the hand-written batched forward; None if not one.

    `wdscale.study.plan.models.MLP` or `OneHotMLP`, or a model whose leaf modules in registration
    order are exactly nn.Linear, elementwise activations and Flatten(1). A candidate is only used
    after its output has been checked against the model's own forward (`BatchedTrainer`)."""
    if isinstance(model, MLP) and type(model) in (MLP, OneHotMLP):  # not a subclass with its own forward
        layers: list[tuple[str, object]] = [("flatten", None)]
        if isinstance(model, OneHotMLP):
            layers.insert(0, ("onehot", model.vocab_size))
        for i in range(len(model.layers)):
            layers += [("linear", f"layers.{i}"), ("act", F.relu)]
        return layers + [("linear", "readout")]
    layers = []
    for name, mod in model.named_modules():
        if next(mod.children(), None) is not None:
            continue  # containers: their forward is checked by the probe
        if type(mod) is nn.Linear:
            layers.append(("linear", name))
        elif type(mod) is nn.Flatten and mod.start_dim == 1 and mod.end_dim == -1:
            layers.append(("flatten", None))
        elif type(mod) in _ACTIVATIONS or (type(mod) is nn.Dropout and mod.p == 0):
            layers.append(("act", mod))
        else:
            return None
    covered = {f"{n}.{p}" for op, n in layers if op == "linear" for p in ("weight", "bias")}
    if not layers or not {n for n, _ in model.named_parameters()} <= covered:
        return None
    return layers


def mlp_forward(layers: list[tuple[str, object]], params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (K, N, ..., in) -> logits (K, N, ..., out) with baddbmm on the stacked weights.

    Activations are kept features-first, (K, features, rows): h' = W h + b puts each weight in
    the first matmul slot, so its gradient comes out contiguous in the weight's own layout (with
    h W^T it comes out transposed, and adding it into the gradient buffer runs ~10x slower at
    width 1024); the logits come out (K, classes, rows), the layout the loss wants."""
    h, rows = x, None  # rows: the sample dims, once the features-first layout has started
    fresh = False  # h is a linear layer's own output, so ReLU may overwrite it
    for op, arg in layers:
        fresh_before, fresh = fresh, op == "linear"
        if op == "linear":
            w, b = params[f"{arg}.weight"], params.get(f"{arg}.bias")
            if rows is None:
                rows = h.shape[1:-1]
                h = h.reshape(h.shape[0], -1, h.shape[-1]).transpose(1, 2)
            h = torch.bmm(w, h) if b is None else torch.baddbmm(b.unsqueeze(2), w, h)
        elif op == "onehot":
            # token ids (K, N, ..., context) -> (K, N, ..., context, vocabulary) in the weights' dtype
            h = F.one_hot(h, arg).to(params[f"{layers[-1][1]}.weight"].dtype)  # type: ignore[arg-type]
        elif op == "flatten":
            if rows is None:
                h = h.flatten(2)  # a linear's output is already flat: nothing to do after one
        elif fresh_before and (arg is F.relu or type(arg) is nn.ReLU):
            h = torch.relu_(h)  # its backward needs only the output; baddbmm's needs not its output
        else:
            h = arg(h)  # type: ignore[operator]
    if rows is None:
        return h
    out = h.transpose(1, 2)
    return out if len(rows) == 1 else out.reshape(out.shape[0], *rows, out.shape[-1])


def default_probe(model: nn.Module) -> Optional[torch.Tensor]:
    """A tiny input for the model's first layer (Linear, Embedding, Conv); None when it cannot be told."""
    gen = torch.Generator().manual_seed(0)
    if isinstance(model, OneHotMLP):  # its first Linear takes one-hot vectors, its input is their ids
        return torch.randint(model.vocab_size, (4, model.context), generator=gen)
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            return torch.randn(4, mod.in_features, generator=gen)
        if isinstance(mod, nn.Embedding):
            return torch.randint(mod.num_embeddings, (4, 4), generator=gen)
        if isinstance(mod, nn.modules.conv._ConvNd) and not isinstance(mod, nn.modules.conv._ConvTransposeNd):
            return torch.randn(4, mod.in_channels, *[16] * len(mod.kernel_size), generator=gen)
        if next(mod.children(), None) is None and any(True for _ in mod.parameters(recurse=False)):
            return None
    return None
