"""A user's own model family and data, as `wdscale study run --model/--data` imports them."""

import torch
from torch import nn


def make(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def load():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    return x[:300], y[:300], x[300:400], y[300:400]


class Fragile(nn.Module):
    """Fails in its forward pass at width 16 once training batches arrive (the study's check of
    every size on two samples passes): a run that raises for its own reasons."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.a, self.b = nn.Linear(64, width), nn.Linear(width, 10)

    def forward(self, x):
        if self.width == 16 and x.shape[0] > 2:
            raise RuntimeError("boom at width 16")
        return self.b(torch.relu(self.a(x)))


def fragile_study(out, **kw):
    """A one-seed study of Fragile on digits, widths 8 and 16: the runs at width 16 fail."""
    from wdscale.study import Study

    return Study(Fragile, load(), out=out, sizes=[8, 16], rules=["sum"], settings={"sum": [1e-3, 1e-2, 1e-1]},
                 seeds=1, lr=1e-2, epochs=1, batch_size=50, **kw)  # fmt: skip
