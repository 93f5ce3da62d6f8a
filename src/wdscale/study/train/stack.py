"""The stacked parameter layout of K models: one flat buffer, one contiguous block per parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """All K models' parameters in one flat buffer: parameter i is a contiguous (K, *shape_i) block.

    One buffer lets the optimizer step be ~10 big elementwise ops instead of ~10 per tensor, and
    each block stays contiguous, so the (K, *shape) views are ordinary dense tensors."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    def blocks(self, flat: torch.Tensor, k: int) -> list[torch.Tensor]:
        views, start = [], 0
        for size, shape in zip(self.sizes, self.shapes):
            views.append(flat[start : start + k * size].view(k, *shape))
            start += k * size
        return views

    def stack(self, per_model: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
        return torch.cat([torch.stack([m[n] for m in per_model]).reshape(-1) for n in self.names])

    def spread(self, values: torch.Tensor) -> torch.Tensor:
        """(K, n_params) per-model per-parameter values -> flat, each repeated over its block."""
        k = values.shape[0]
        return torch.cat([values[:, i : i + 1].expand(k, s).reshape(-1) for i, s in enumerate(self.sizes)])

    def select(self, flat: torch.Tensor, k: int, members: torch.Tensor) -> torch.Tensor:
        """The flat buffer of the kept members only (diverged ones are dropped from the stack)."""
        return torch.cat([b.reshape(k, -1)[members].reshape(-1) for b in self.blocks(flat, k)])
