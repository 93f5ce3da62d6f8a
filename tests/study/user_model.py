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
