"""The `mup` rule against microsoft/mup's own optimizers (an independent reference)."""

import pytest
import torch
from torch import nn

mup = pytest.importorskip("mup")

import wdscale  # noqa: E402


class MuMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.hid = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.out = mup.MuReadout(width, 3)

    def forward(self, x):
        return self.out(self.norm(torch.relu(self.hid(torch.relu(self.inp(x))))))


def per_param(opt):
    return {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}


def prepared(width):
    model = MuMLP(width)
    mup.set_base_shapes(model, MuMLP(32), delta=MuMLP(64))
    return model


CASES = [("adamw", mup.MuAdamW), ("adam", mup.MuAdam), ("sgd", mup.MuSGD)]


@pytest.mark.parametrize("name,mu_cls", CASES)
@pytest.mark.parametrize("width", [32, 128, 512])
def test_mup_rule_matches_mup_optimizers(name, mu_cls, width):
    model = prepared(width)
    ref = mu_cls(model.parameters(), lr=0.01, weight_decay=0.1)
    ours = wdscale.optimizer(model, name, rule="mup", lr=0.01, weight_decay=0.1, decay_vectors=True)
    assert type(ours) is type(ref)
    ref_pp, ours_pp = per_param(ref), per_param(ours)
    assert ref_pp.keys() == ours_pp.keys()
    for k in ref_pp:
        assert ours_pp[k] == pytest.approx(ref_pp[k], rel=1e-12)


@pytest.mark.parametrize("name,mu_cls", CASES)
def test_base_model_without_infshape_gives_the_same_as_mup(name, mu_cls):
    """Our own shape comparison (no mup needed at run time) reproduces set_base_shapes."""
    width = 256
    model = prepared(width)
    ref = per_param(mu_cls(model.parameters(), lr=0.01, weight_decay=0.1))
    plain = MuMLP(width)
    plain.load_state_dict(model.state_dict())
    ours = wdscale.optimizer(plain, name, rule="mup", lr=0.01, weight_decay=0.1, base=MuMLP(32), decay_vectors=True)
    ours_by_name = {
        n: v
        for n, v in zip([n for n, _ in plain.named_parameters()], [per_param(ours)[id(p)] for p in plain.parameters()])
    }
    ref_by_name = {n: ref[id(p)] for n, p in model.named_parameters()}
    for n in ref_by_name:
        assert ours_by_name[n] == pytest.approx(ref_by_name[n], rel=1e-12), n


def test_default_leaves_vectors_undecayed_but_scales_their_lr_like_mup():
    model = prepared(128)
    ref = per_param(mup.MuSGD(model.parameters(), lr=0.01, weight_decay=0.1))
    ours = per_param(wdscale.optimizer(model, "sgd", rule="mup", lr=0.01, weight_decay=0.1))
    for p in model.parameters():
        if p.ndim == 1:
            assert ours[id(p)] == (pytest.approx(ref[id(p)][0]), 0.0)
