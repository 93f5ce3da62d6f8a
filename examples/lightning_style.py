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


class StudyModule(nn.Module):  # in a Lightning project: class StudyModule(lightning.LightningModule)
    """The same module inside a wdscale study: the study builds the model (`run.model`) and the
    rule's optimizer (`run.optimizer`); `configure_optimizers` hands them to the loop with the
    plan's schedule stepped every optimizer step, as Lightning's `"interval": "step"` does."""

    def __init__(self, run: wdscale.study.Run):
        super().__init__()
        self.run, self.model = run, run.model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.model(pixel_values=x).logits, y)

    def configure_optimizers(self) -> dict:
        return {
            "optimizer": self.run.optimizer,
            "lr_scheduler": {"scheduler": self.run.lr_scheduler(), "interval": "step"},
        }


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is a fixed linear read-out of their pixels (learnable, offline)."""
    g = torch.Generator().manual_seed(seed)
    x, w = (
        torch.randn(n, 3, 16, 16, generator=g),
        torch.randn(3 * 16 * 16, 5, generator=torch.Generator().manual_seed(99)),
    )
    return x, (x.flatten(1) @ w).argmax(1)


def train(run: wdscale.study.Run) -> float:
    """A study's training function: Lightning's loop on `StudyModule`, then the validation loss."""
    module = StudyModule(run)
    config = module.configure_optimizers()
    opt, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    x, y = _data(run.config.n_train)
    bs = run.config.batch_size
    for _ in range(run.config.epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(run.config.seed))
        for i in range(0, len(x), bs):
            idx = order[i : i + bs]
            loss = module.training_step((x[idx], y[idx]), i // bs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()  # "interval": "step"
    xv, yv = _data(64, seed=1)
    with torch.no_grad():
        return nn.functional.cross_entropy(module.model(pixel_values=xv).logits, yv).item()


def main(width: int = 64, base_width: int = 32, epochs: int = 3) -> tuple[ViTClassifier, list[float]]:
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 5, (32,))
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    module = ViTClassifier(width, base_width, wdscale.DataFacts(n_samples=32, batch_size=8, epochs=epochs))
    return module, fit(module, batches, epochs)


if __name__ == "__main__":
    module, losses = main()
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps")
