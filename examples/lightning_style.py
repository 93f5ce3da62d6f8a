"""wdscale in a Lightning-style module: `configure_optimizers` returns wdscale's optimizer.

Lightning calls `configure_optimizers()` once and steps what it returns; this file has the same
shape as a `lightning.LightningModule` (subclass that instead, unchanged) and a five-line `fit` that
does what Lightning's loop does with it, so it runs without Lightning installed:
`python examples/lightning_style.py`.

The rule here is `timescale` (Wang & Aitchison 2025): every group's AdamW EMA timescale
τ = 1/(η_g λ_g) is `tau` epochs, at any width; it needs the data facts (N, B).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_models import vit  # noqa: E402

import wdscale  # noqa: E402


class ViTClassifier(nn.Module):  # in a Lightning project: class ViTClassifier(lightning.LightningModule)
    def __init__(self, width: int, base_width: int, data: wdscale.DataFacts, lr: float = 3e-3, tau: float = 5.0):
        super().__init__()
        self.model = vit(width)
        self.base_width, self.data, self.lr, self.tau = base_width, data, lr, tau

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.model(pixel_values=x).logits, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # the base only lends its shapes (width multipliers); build it at the tuned width
        return wdscale.optimizer(
            self.model, "adamw", rule="timescale", lr=self.lr, tau=self.tau, base=vit(self.base_width), data=self.data
        )


def fit(module: ViTClassifier, batches: list, epochs: int) -> list[float]:
    """What Lightning's fit loop does with the module (one optimizer, no scheduler)."""
    opt = module.configure_optimizers()
    losses = []
    for _ in range(epochs):
        for i, batch in enumerate(batches):
            loss = module.training_step(batch, i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def main(width: int = 64, base_width: int = 32, epochs: int = 3) -> tuple[ViTClassifier, list[float]]:
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 5, (32,))
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    module = ViTClassifier(width, base_width, wdscale.DataFacts(n_samples=32, batch_size=8, epochs=epochs))
    return module, fit(module, batches, epochs)


if __name__ == "__main__":
    module, losses = main()
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps")
