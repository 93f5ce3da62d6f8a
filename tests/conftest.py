import sys
from pathlib import Path

import pytest
import torch
from torch import nn

# the study tests' shared helpers (toy.py: a tiny plan; user_model.py: a user's model and data) sit in
# tests/study/, beside the folders that mirror src/wdscale/study/
sys.path.insert(0, str(Path(__file__).parent / "study"))


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
