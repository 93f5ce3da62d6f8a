"""Small PyTorch models with a width knob and a depth knob, for weight-decay scaling studies.

Design constraints, and why:

* Default PyTorch init everywhere: the study asks how the best decay moves under the
  parametrisation people actually use, not under a hand-tuned one.
* No dropout and no BatchNorm, and attention written by hand with ``nn.Linear``: every model is a
  pure function of its parameters, so many copies can be stacked with ``torch.func`` and trained
  at once under ``vmap`` (no buffers, no in-place running statistics, no fused attention module).
* Parameter names depend only on depth, never on width, so a width-64 and a width-1024 model have
  the same names and tensor ranks; per-parameter rules can then match tensors across sizes by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import WdscaleError


class MLP(nn.Module):
    """``depth`` hidden Linear+ReLU layers of size ``width``, then a Linear readout.

    Parameters: ``layers.0`` (input layer), ``layers.1..depth-1`` (hidden), ``readout``.
    """

    def __init__(self, in_dim: int, n_classes: int, width: int, depth: int) -> None:
        super().__init__()
        if depth < 1:
            raise WdscaleError(f"MLP depth must be >= 1, got {depth}")
        dims = [in_dim] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.readout = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.layers:
            h = F.relu(layer(h))
        return self.readout(h)


class OneHotMLP(MLP):
    """An `MLP` over ``context`` token ids (N, context) -> logits (N, n_classes), each id one-hot
    encoded inside the forward: ``layers.0`` takes the context × vocabulary one-hot vector.

    The ids are what a data set stores (8 bytes a position, not 4 × vocabulary), and the first
    layer stays an ``nn.Linear`` whose fan_in (context × vocabulary) does not grow with width: it
    is the input layer to the rules and μP exactly as an MLP's first layer over features is.
    """

    def __init__(self, vocab_size: int, context: int, n_classes: int, width: int, depth: int) -> None:
        super().__init__(context * vocab_size, n_classes, width, depth)
        self.vocab_size = vocab_size
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point() or x.shape[-1] != self.context:
            raise WdscaleError(
                f"OneHotMLP takes integer token ids of shape (N, {self.context}), "
                f"got {x.dtype} of shape {tuple(x.shape)}"
            )
        return super().forward(F.one_hot(x, self.vocab_size).to(self.readout.weight.dtype))


class ResMLP(nn.Module):
    """Pre-activation residual MLP: ``input`` Linear, ``depth`` blocks h ← h + s·W_l relu(h), then
    relu and a Linear ``readout``. Parameters: ``input``, ``blocks.0..depth-1``, ``readout``.

    ``branch_scale`` s multiplies every residual branch. s = 1 is the usual residual net; s = 1/depth
    is CompleteP's depth parameterisation with α = 1 against a depth-1 base (branches × L^−α;
    Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient deep transformers").
    """

    def __init__(self, in_dim: int, n_classes: int, width: int, depth: int, branch_scale: float = 1.0) -> None:
        super().__init__()
        if depth < 1:
            raise WdscaleError(f"ResMLP depth must be >= 1, got {depth}")
        self.input = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.readout = nn.Linear(width, n_classes)
        self.branch_scale = float(branch_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x.flatten(1))
        for block in self.blocks:
            h = h + self.branch_scale * block(F.relu(h))
        return self.readout(F.relu(h))


class CNN1D(nn.Module):
    """1-D convnet for sequences like MNIST-1D's (N, L) signals.

    ``depth`` Conv1d layers (kernel 5, padding 2, ``width`` channels, ReLU), each with stride 2,
    so the length halves at every layer (40 -> 20 -> 10 -> 5 ...; never below 1) and wide models
    stay cheap on a CPU: a width-C layer costs ~C^2 * length, and the length shrinks fast.
    The final feature map is flattened into a Linear readout (as in the MNIST-1D reference CNN):
    where a feature sits matters for these signals, and global pooling would throw that away and
    leave the narrow base models underfitting. Parameters: ``convs.0..depth-1``, ``readout``.
    """

    def __init__(self, in_len: int, n_classes: int, width: int, depth: int) -> None:
        super().__init__()
        if depth < 1:
            raise WdscaleError(f"CNN1D depth must be >= 1, got {depth}")
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else width, width, kernel_size=5, padding=2, stride=2) for i in range(depth)
        )
        out_len = in_len
        for _ in range(depth):
            out_len = (out_len + 1) // 2  # what kernel 5, padding 2, stride 2 does to the length
        self.readout = nn.Linear(width * out_len, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], 1, -1)
        for conv in self.convs:
            h = F.relu(conv(h))
        return self.readout(h.flatten(1))


def default_n_heads(width: int) -> int:
    """About one head per 32 channels, at least one, and always a divisor of ``width``."""
    n = max(1, width // 32)
    while width % n:
        n -= 1
    return n


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention from two ``nn.Linear`` layers (``qkv`` and ``proj``).

    The masked softmax is written out rather than calling ``F.scaled_dot_product_attention``:
    on CPU the fused kernel has no ``torch.func.vmap`` batching rule (vmap falls back to a slow
    per-copy loop and warns), while these plain ops batch cleanly. At the short contexts used
    here the explicit (T, T) score matrix is cheap.
    """

    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        if width % n_heads:
            raise WdscaleError(f"width {width} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q, k, v = (z.reshape(n, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (c // self.n_heads) ** -0.5
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        y = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)) with a 4x GELU MLP."""

    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, n_heads)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.fc_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class CharTransformer(nn.Module):
    """Small decoder-only (GPT-style) transformer over token ids (N, T) -> logits (N, T, vocab).

    Token and learned position embeddings (both ``nn.Embedding``, default N(0, 1) init),
    ``depth`` pre-LN blocks, a final LayerNorm and an untied Linear readout.
    Parameters: ``tok_emb``, ``pos_emb``, ``blocks.{i}.{ln1,attn.qkv,attn.proj,ln2,fc,fc_proj}``,
    ``ln_f``, ``readout``.
    """

    def __init__(self, vocab_size: int, context: int, width: int, depth: int, n_heads: int | None = None) -> None:
        super().__init__()
        if depth < 1:
            raise WdscaleError(f"CharTransformer depth must be >= 1, got {depth}")
        n_heads = default_n_heads(width) if n_heads is None else n_heads
        self.context = context
        self.tok_emb = nn.Embedding(vocab_size, width)
        self.pos_emb = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, n_heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        if t > self.context:
            raise WdscaleError(f"sequence length {t} is longer than the context {self.context}")
        h = self.tok_emb(x) + self.pos_emb.weight[:t]
        for block in self.blocks:
            h = block(h)
        return self.readout(self.ln_f(h))
