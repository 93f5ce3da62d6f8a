import pytest
import torch
from torch import nn

import wdscale
from conftest import TinyMLP
from wdscale.errors import WdscaleError
from wdscale.groups import classify


def by_name(infos):
    return {p.name: p for p in infos}


def test_kinds_fans_and_multipliers_against_base():
    infos = by_name(classify(TinyMLP(256), TinyMLP(64)))
    assert [infos[n].kind for n in ("inp.weight", "hid.weight", "out.weight")] == ["input", "hidden", "output"]
    assert all(infos[n].kind == "vector" for n in ("inp.bias", "hid.bias", "out.bias"))
    hid, inp, out = infos["hid.weight"], infos["inp.weight"], infos["out.weight"]
    assert (hid.fan_in, hid.fan_out, hid.fan_in_mult, hid.fan_out_mult, hid.ninf) == (256, 256, 4.0, 4.0, 2)
    assert (inp.fan_in, inp.fan_out, inp.fan_in_mult, inp.fan_out_mult, inp.ninf) == (8, 256, 1.0, 4.0, 1)
    assert (out.fan_in, out.fan_out, out.fan_in_mult, out.fan_out_mult, out.ninf) == (256, 3, 4.0, 1.0, 1)
    assert infos["hid.bias"].width_mult == 4.0 and infos["out.bias"].width_mult == 1.0
    assert [p.decayed for p in infos.values()] == [True, False, True, False, True, False]


def test_without_base_kinds_come_from_position_and_multipliers_are_one():
    infos = by_name(classify(TinyMLP(32)))
    assert [infos[n].kind for n in ("inp.weight", "hid.weight", "out.weight")] == ["input", "hidden", "output"]
    assert all(p.width_mult == 1.0 and p.fan_in_mult == 1.0 for p in infos.values())


def test_embedding_conv_and_decay_options():
    class Net(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.emb = nn.Embedding(50, w)
            self.conv = nn.Conv1d(w, w, 5)
            self.norm = nn.LayerNorm(w)
            self.head = nn.Linear(w, 7)

        def no_weight_decay(self):
            return {"emb"}

    infos = by_name(classify(Net(64), Net(16)))
    emb, conv = infos["emb.weight"], infos["conv.weight"]
    assert (emb.kind, emb.fan_in, emb.fan_out) == ("input", 50, 64)
    assert (conv.kind, conv.fan_in, conv.fan_out, conv.fan_in_mult) == ("hidden", 64 * 5, 64, 4.0)
    assert not emb.decayed  # no_weight_decay() is honoured
    assert not infos["norm.weight"].decayed and infos["head.weight"].decayed
    with_vectors = by_name(classify(Net(64), Net(16), decay_vectors=True, no_decay=["head"]))
    assert with_vectors["norm.weight"].decayed and with_vectors["conv.bias"].decayed
    assert not with_vectors["head.weight"].decayed and not with_vectors["emb.weight"].decayed


def test_wrappers_do_not_change_the_result():
    model, base = TinyMLP(128), TinyMLP(32)
    plain = wdscale.param_groups(model, rule="mup", lr=1e-3, weight_decay=0.1, base=base)

    class Wrapper(nn.Module):  # what DDP / torch.compile look like from named_parameters()
        def __init__(self, m):
            super().__init__()
            self.module = m

    wrapped = nn.DataParallel(model)
    compiled_like = Wrapper(model)
    compiled_like._orig_mod = model
    for other in (wrapped, compiled_like):
        groups = wdscale.param_groups(other, rule="mup", lr=1e-3, weight_decay=0.1, base=base)
        assert [(g["names"], g["lr"], g["weight_decay"], g["kind"]) for g in groups] == [
            (g["names"], g["lr"], g["weight_decay"], g["kind"]) for g in plain
        ]


def test_every_parameter_in_exactly_one_group():
    model = TinyMLP(64)
    groups = wdscale.param_groups(model, rule="mean", lr=1e-3, weight_decay=1.0)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len(ids) == len(set(ids))
    assert sum(len(g["names"]) for g in groups) == len(ids)


def test_base_mismatch_names_the_first_difference():
    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(8, 16)
            self.other = nn.Linear(16, 16)
            self.out = nn.Linear(16, 3)

    with pytest.raises(ValueError, match="'hid.weight'.*'other.weight'"):
        classify(TinyMLP(64), Other())
    with pytest.raises(ValueError, match="rank of 'w'"):
        a, b = nn.Module(), nn.Module()
        a.w, b.w = nn.Parameter(torch.zeros(4, 4)), nn.Parameter(torch.zeros(4))
        classify(a, b)
    with pytest.raises(ValueError, match="no counterpart"):
        short = nn.Module()
        short.inp = nn.Linear(8, 16)
        classify(TinyMLP(16), short)
    with pytest.raises(TypeError, match="base must be a torch.nn.Module"):
        classify(TinyMLP(16), "base")


def test_a_base_larger_than_the_model_or_with_another_vocabulary_is_refused():
    with pytest.raises(
        WdscaleError, match=r"the base is larger than the model: 'inp.weight' is \(16, 8\) in the model, \(64, 8\)"
    ):
        wdscale.param_groups(TinyMLP(16), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(64))
    assert wdscale.param_groups(TinyMLP(16), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(16))

    class UntiedLM(nn.Module):  # embedding and head both change with the vocabulary
        def __init__(self, width, vocab):
            super().__init__()
            self.emb, self.mid, self.head = nn.Embedding(vocab, width), nn.Linear(width, width), nn.Linear(width, vocab)

    with pytest.raises(WdscaleError, match=r"'emb.weight': an embedding of 100 rows in the model, 96 in the base"):
        wdscale.param_groups(UntiedLM(64, 100), rule="mup", lr=0.1, weight_decay=0.1, base=UntiedLM(16, 96))
    kinds = {
        g["names"][0]: g["kind"]
        for g in wdscale.param_groups(UntiedLM(64, 100), rule="mup", lr=0.1, weight_decay=0.1, base=UntiedLM(16, 100))
    }
    assert kinds["emb.weight"] == "input" and kinds["head.weight"] == "output"
