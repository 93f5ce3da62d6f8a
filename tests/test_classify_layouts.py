"""Classification by what a tensor does: raw parameters, layouts, tied and frozen tensors, shapes the
rules cannot scale. References: mup's own infshape rules (MuAdamW / MuSGD on a copy of the model
that mup prepared) and hand-worked formulas."""

import copy

import pytest
import torch
from torch import nn

import wdscale
from wdscale.groups import classify

mup = pytest.importorskip("mup")

LR, LAM = 0.01, 0.1


class MiniViT(nn.Module):
    """ViT-style: raw class token (1×1×d) and position embedding (1×T×d), a patch conv, one packed
    nn.MultiheadAttention block, a Perceiver-style latent array (L×d) and a linear head."""

    def __init__(self, d: int, n_patches: int = 16, n_latents: int = 4, n_classes: int = 5):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, d) * 0.02)
        self.latents = nn.Parameter(torch.randn(n_latents, d))
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Linear(d, 2 * d)
        self.mlp_out = nn.Linear(2 * d, d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(x), -1, -1), t], 1) + self.pos_embed
        t = t + self.attn(self.latents.expand(len(x), -1, -1), t, t)[0].mean(1, keepdim=True)
        t = t + self.mlp_out(torch.relu(self.mlp(self.norm(t))))
        return self.head(t[:, 0])


def mup_reference(model, base, mu_cls, readouts=()):
    """Per-name (lr, weight_decay) from mup on a copy of `model` (the model itself stays plain).

    mup treats a plain nn.Linear readout as vector-like (it wants a MuReadout there, whose forward
    divides by the width multiplier); wdscale follows Tensor Programs V Table 3 for a plain readout
    instead: lr / fan_in_mult, λ · fan_in_mult. For names in `readouts` the reference is that
    formula, with fan_in_mult read from mup's infshape."""
    twin = copy.deepcopy(model)
    mup.set_base_shapes(twin, base, rescale_params=False, do_assert=False)
    opt = mu_cls(twin.parameters(), lr=LR, weight_decay=LAM)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    ref = {}
    for name, p in twin.named_parameters():
        if name in readouts:
            fan_in_mult = p.infshape[1].width_mult()
            ref[name] = (LR / fan_in_mult, LAM * fan_in_mult)
        else:
            ref[name] = by_id[id(p)]
    return ref


def assert_same(got, ref):
    assert got.keys() == ref.keys()
    for n in ref:
        assert got[n] == pytest.approx(ref[n], rel=1e-12), n


def ours(model, name, rule="mup", **kwargs):
    opt = wdscale.optimizer(model, name, rule=rule, lr=LR, weight_decay=LAM, decay_vectors=True, **kwargs)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    return {n: by_id[id(p)] for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name,mu_cls", [("adamw", mup.MuAdamW), ("adam", mup.MuAdam), ("sgd", mup.MuSGD)])
def test_vit_style_raw_parameters_follow_mups_infshape_rules(name, mu_cls):
    model, base = MiniViT(64), MiniViT(16)
    ref = mup_reference(model, base, mu_cls, readouts={"head.weight"})
    assert_same(ours(model, name, base=base), ref)
    infos = {p.name: p for p in classify(model, base)}
    # one width-growing dim: vector-like whatever the module (mup: infshape.ninf() <= 1)
    for n in ("cls_token", "pos_embed", "latents"):
        assert (infos[n].kind, infos[n].ninf, infos[n].fan_in) == ("vector", 1, 1), n
    attn = infos["attn.in_proj_weight"]  # packed q, k, v: (3d, d)
    assert (attn.kind, attn.fan_in, attn.fan_out, attn.width_mult) == ("hidden", 64, 192, 4.0)
    patch = infos["patch.weight"]
    assert (patch.kind, patch.fan_in, patch.fan_out) == ("input", 3 * 4 * 4, 64)
    assert infos["head.weight"].kind == "output"


def test_vector_like_raw_parameters_keep_the_base_lr_under_every_width_rule():
    """The bug this guards: a 1×1×d class token read as a readout got lr/m and λ·m."""
    model, base = MiniViT(64), MiniViT(16)
    data = wdscale.DataFacts(n_samples=1000, batch_size=50, epochs=10)
    for rule, setting in [
        ("mup", dict(weight_decay=LAM)),
        ("sqrt_width", dict(weight_decay=LAM)),
        ("completep", dict(weight_decay=LAM)),
        ("timescale", dict(tau=4.0)),
        ("power_lines", dict(tau=0.5)),
    ]:
        groups = wdscale.param_groups(model, rule=rule, lr=LR, base=base, data=data, decay_vectors=True, **setting)
        lr_of = {n: g["lr"] for g in groups for n in g["names"]}
        for n in ("cls_token", "pos_embed", "latents"):
            assert lr_of[n] == LR, (rule, n)
        assert lr_of["mlp.weight"] == pytest.approx(LR / 4), rule


def test_raw_parameters_decay_like_what_they_are():
    # the class token (one dim > 1) is a vector: not decayed by default; the position table is
    infos = {p.name: p for p in classify(MiniViT(64), MiniViT(16))}
    assert not infos["cls_token"].decayed and infos["pos_embed"].decayed and infos["latents"].decayed
    assert not infos["norm.weight"].decayed and not infos["attn.in_proj_bias"].decayed


def test_embedding_bag_is_an_input_layer():
    class Bag(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.bag = nn.EmbeddingBag(100, d)
            self.out = nn.Linear(d, 3)

    infos = {p.name: p for p in classify(Bag(64), Bag(16))}
    bag = infos["bag.weight"]
    assert (bag.kind, bag.fan_in, bag.fan_out, bag.width_mult) == ("input", 100, 64, 4.0)
    ref = mup_reference(Bag(64), Bag(16), mup.MuAdamW, readouts={"out.weight"})
    assert_same(ours(Bag(64), "adamw", base=Bag(16)), ref)


class TiedLM(nn.Module):
    """An embedding tied to the readout; `readout_first` registers the readout module first."""

    def __init__(self, d, readout_first):
        super().__init__()
        if readout_first:
            self.readout = nn.Linear(d, 50, bias=False)
            self.emb = nn.Embedding(50, d)
        else:
            self.emb = nn.Embedding(50, d)
            self.readout = nn.Linear(d, 50, bias=False)
        self.readout.weight = self.emb.weight
        self.hid = nn.Linear(d, d)


@pytest.mark.parametrize("readout_first", [False, True])
def test_tied_embedding_is_input_whichever_module_registered_it_first(readout_first):
    model, base = TiedLM(64, readout_first), TiedLM(16, readout_first)
    (tied,) = [p for p in classify(model, base) if p.param is model.emb.weight]
    assert (tied.kind, tied.fan_in, tied.fan_out) == ("input", 50, 64)
    # mup: the tied (50, d) tensor has one infinite dim, vector-like (its MuSharedReadout divides by m)
    assert_same(ours(model, "adamw", base=base), mup_reference(model, base, mup.MuAdamW))
    # without a base, by position: still input (the embedding reading wins over the readout's)
    kinds = {p.name: p.kind for p in classify(model)}
    assert kinds[tied.name] == "input"


def test_frozen_parameters_are_in_no_group_and_not_counted():
    model = MiniViT(32)
    model.patch.requires_grad_(False)
    model.pos_embed.requires_grad_(False)
    groups = wdscale.param_groups(model, rule="mean", lr=LR, weight_decay=LAM)
    in_groups = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(in_groups) == sorted(trainable) and len(in_groups) == len(set(in_groups))
    # mean: λ / P with P the decayed trainable scalars, counted by hand
    decayed = ["latents", "attn.in_proj_weight", "attn.out_proj.weight", "mlp.weight", "mlp_out.weight", "head.weight"]
    P = sum(dict(model.named_parameters())[n].numel() for n in decayed)
    wd = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert {n for n, v in wd.items() if v > 0} == set(decayed)
    assert all(wd[n] == pytest.approx(LAM / P) for n in decayed)
    text = str(wdscale.explain(model, rule="mean", lr=LR, weight_decay=LAM))
    assert "frozen (requires_grad=False; in no group, not counted in P): pos_embed, patch.weight, patch.bias" in text
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter of the model is frozen"):
        wdscale.param_groups(model, rule="sum", lr=LR, weight_decay=LAM)


def test_three_growing_dimensions_is_one_clear_error():
    class Bi(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.inp = nn.Linear(4, d)
            self.bil = nn.Bilinear(d, d, d)

    with pytest.raises(
        ValueError,
        match=r"parameter 'bil.weight' \(shape \(64, 64, 64\)\) grows with width in 3 "
        r"dimensions \[0, 1, 2\]; the rules scale tensors with at most two",
    ):
        wdscale.param_groups(Bi(64), rule="mup", lr=LR, weight_decay=LAM, base=Bi(16))
    # mup refuses it too (the independent reference for "cannot scale")
    twin = Bi(64)
    mup.set_base_shapes(twin, Bi(16), rescale_params=False, do_assert=False)
    with pytest.raises(NotImplementedError):
        mup.MuAdamW(twin.parameters(), lr=LR)
    # frozen, it is nobody's business
    model = Bi(64)
    model.bil.weight.requires_grad_(False)
    assert wdscale.param_groups(model, rule="mup", lr=LR, weight_decay=LAM, base=Bi(16))


def test_conv1d_layout_is_read_as_in_out():
    """transformers' Conv1D stores (in, out); recognised by its nf/nx attributes without importing it."""

    class Conv1D(nn.Module):  # the layout of transformers.pytorch_utils.Conv1D
        def __init__(self, nf, nx):
            super().__init__()
            self.nf, self.nx = nf, nx
            self.weight = nn.Parameter(torch.randn(nx, nf))
            self.bias = nn.Parameter(torch.zeros(nf))

    class Net(nn.Module):
        def __init__(self, d, inner):
            super().__init__()
            self.fc = Conv1D(inner, d)  # d -> inner
            self.proj = Conv1D(d, inner)  # inner -> d
            self.lin_fc, self.lin_proj = nn.Linear(d, inner), nn.Linear(inner, d)

    model, base = Net(64, 256), Net(32, 64)
    infos = {p.name: p for p in classify(model, base)}
    for conv, lin in (("fc", "lin_fc"), ("proj", "lin_proj")):
        c, li = infos[conv + ".weight"], infos[lin + ".weight"]
        assert (c.fan_in, c.fan_out, c.fan_in_mult, c.fan_out_mult, c.kind) == (
            li.fan_in,
            li.fan_out,
            li.fan_in_mult,
            li.fan_out_mult,
            li.kind,
        )
    assert (infos["fc.weight"].fan_in, infos["fc.weight"].fan_out) == (64, 256)
    # SGD μP, matrix-like: lr / r with r = fan_in_mult / fan_out_mult (mup's MuSGD on the nn.Linear twin)
    got = ours(model, "sgd", base=base)
    for conv, lin in (("fc", "lin_fc"), ("proj", "lin_proj")):
        assert got[conv + ".weight"] == pytest.approx(got[lin + ".weight"])
    assert got["fc.weight"][0] == pytest.approx(LR / (2 / 4))  # fan_in ×2, fan_out ×4
    data = wdscale.DataFacts(n_samples=1000, batch_size=10)
    prior = {
        n: g["weight_decay"]
        for g in wdscale.param_groups(model, rule="prior_matched", lr=LR, weight_decay=LAM, data=data)
        for n in g["names"]
    }
    assert prior["fc.weight"] == pytest.approx(LAM * model.fc.nx / 1000)
    assert prior["proj.weight"] == pytest.approx(LAM * model.proj.nx / 1000)
