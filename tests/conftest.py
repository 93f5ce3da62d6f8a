import pytest
import torch
from torch import nn


class TinyMLP(nn.Module):
    """8 -> w -> w -> 3: one input, one hidden and one output matrix, three biases."""

    def __init__(self, width: int, n_in: int = 8, n_out: int = 3):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.hid = nn.Linear(width, width)
        self.out = nn.Linear(width, n_out)

    def forward(self, x):
        return self.out(torch.relu(self.hid(torch.relu(self.inp(x)))))


@pytest.fixture
def tiny_mlp():
    return TinyMLP
