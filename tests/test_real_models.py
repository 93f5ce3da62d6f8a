"""Real model families: Hugging Face `transformers` models built from tiny configs (random weights,
nothing downloaded), GPT-2, Llama, BERT and ViT, at two widths. The reference for every
parameter's lr and weight_decay is microsoft/mup's own infshape rules: `mup.set_base_shapes` on a
copy of the model, then MuAdamW / MuAdam / MuSGD. Where mup sees a plain nn.Linear readout
(Llama's untied lm_head, ViT's classifier) it wants a MuReadout instead; wdscale then follows
Tensor Programs V Table 3 (lr / fan_in_mult, λ · fan_in_mult), written out below."""

import copy
import logging

import pytest
import torch

import wdscale
from wdscale.groups import classify

transformers = pytest.importorskip("transformers")
mup = pytest.importorskip("mup")

LR, LAM = 0.01, 0.1
BASE, WIDTH = 32, 64
logging.getLogger("transformers").setLevel(logging.ERROR)


def gpt2(width, n_inner=None):
    return transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            n_embd=width,
            n_layer=2,
            n_head=4,
            n_inner=n_inner,
            vocab_size=97,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
        )
    )


def llama(width):
    return transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=97,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
        )
    )


def bert(width):
    return transformers.BertForMaskedLM(
        transformers.BertConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=97,
            max_position_embeddings=32,
            pad_token_id=0,
        )
    )


def vit(width):
    return transformers.ViTForImageClassification(
        transformers.ViTConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=16,
            patch_size=4,
            num_labels=5,
        )
    )


# the plain-Linear readouts of each family (tied readouts are their embedding: mup's own rule)
FAMILIES = {
    "gpt2": (gpt2, set()),
    "llama": (llama, {"lm_head.weight"}),
    "bert": (bert, set()),
    "vit": (vit, {"classifier.weight"}),
}
MU = {"adamw": mup.MuAdamW, "adam": mup.MuAdam, "sgd": mup.MuSGD}


def mup_reference(model, base, mu_cls, readouts):
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


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {name: (make(WIDTH), make(BASE)) for name, (make, _) in FAMILIES.items()}


@pytest.mark.parametrize("opt_name", list(MU))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_parameter_gets_mups_lr_and_decay(built, family, opt_name):
    model, base = built[family]
    opt = wdscale.optimizer(model, opt_name, rule="mup", lr=LR, weight_decay=LAM, base=base, decay_vectors=True)
    # every trainable parameter in exactly one group
    in_groups = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(in_groups) == len(set(in_groups))
    assert set(in_groups) == {id(p) for p in model.parameters() if p.requires_grad}
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    ref = mup_reference(model, base, MU[opt_name], FAMILIES[family][1])
    got = {n: by_id[id(p)] for n, p in model.named_parameters()}
    assert got.keys() == ref.keys()
    for n in ref:
        assert got[n] == pytest.approx(ref[n], rel=1e-12), n


def test_kinds_and_fans_on_real_layouts(built):
    infos = {p.name: p for p in classify(*built["gpt2"])}
    c_attn = built["gpt2"][0].transformer.h[0].attn.c_attn  # transformers Conv1D: weight (nx, nf)
    got = infos["transformer.h.0.attn.c_attn.weight"]
    assert (got.kind, got.fan_in, got.fan_out) == ("hidden", c_attn.nx, c_attn.nf) == ("hidden", WIDTH, 3 * WIDTH)
    assert infos["transformer.wte.weight"].kind == "input"  # tied to lm_head: input wins
    assert "lm_head.weight" not in infos  # the same tensor, classified once
    infos = {p.name: p for p in classify(*built["vit"])}
    for n in ("vit.embeddings.cls_token", "vit.embeddings.position_embeddings"):
        assert (infos[n].kind, infos[n].ninf, infos[n].width_mult) == ("vector", 1, WIDTH / BASE)
    assert infos["vit.embeddings.patch_embeddings.projection.weight"].kind == "input"
    assert infos["classifier.weight"].kind == "output"
    infos = {p.name: p for p in classify(*built["bert"])}
    assert infos["bert.embeddings.word_embeddings.weight"].kind == "input"  # tied to the MLM decoder


def test_default_decay_set_on_hf_models(built):
    """Matrices and tables decayed; biases, norm gains and the class token not (what HF's Trainer
    also leaves out, plus the token)."""
    for family, (model, base) in built.items():
        for p in classify(model, base):
            shape = p.shape
            expect = len(shape) >= 2 and not (family == "vit" and p.name == "vit.embeddings.cls_token")
            assert p.decayed == expect, (family, p.name)


def test_conv1d_fan_in_under_sgd_and_prior_matched():
    """GPT-2 with the MLP's inner size scaled ×4 while the width doubles: c_fc's fan_in grows ×2 and
    fan_out ×4. mup reads fan_in from dim 1, which is Conv1D's fan_out; the hand formula from
    Conv1D's own nx/nf: SGD matrix-like lr / r, r = fan_in_mult / fan_out_mult."""
    model, base = gpt2(64, n_inner=256), gpt2(32, n_inner=64)
    groups = wdscale.param_groups(model, rule="mup", lr=LR, weight_decay=LAM, base=base, optimizer="sgd")
    lr = {n: g["lr"] for g in groups for n in g["names"]}
    for block, base_block in zip(model.transformer.h, base.transformer.h):
        for layer, base_layer in ((block.mlp.c_fc, base_block.mlp.c_fc), (block.mlp.c_proj, base_block.mlp.c_proj)):
            r = (layer.nx / base_layer.nx) / (layer.nf / base_layer.nf)
            name = next(n for n, p in model.named_parameters() if p is layer.weight)
            assert lr[name] == pytest.approx(LR / r), name
    data = wdscale.DataFacts(n_samples=1000, batch_size=10)
    groups = wdscale.param_groups(model, rule="prior_matched", lr=LR, weight_decay=LAM, data=data)
    wd = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert wd["transformer.h.0.mlp.c_fc.weight"] == pytest.approx(LAM * 64 / 1000)
    assert wd["transformer.h.0.mlp.c_proj.weight"] == pytest.approx(LAM * 256 / 1000)


def test_frozen_embeddings_are_left_out_of_groups_and_of_P():
    model = vit(WIDTH)
    model.vit.embeddings.requires_grad_(False)
    groups = wdscale.param_groups(model, rule="mean", lr=LR, weight_decay=LAM, base=vit(BASE))
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert in_groups == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(id(p) in in_groups for p in model.vit.embeddings.parameters())
    P = sum(p.numel() for p in model.parameters() if p.requires_grad and p.ndim >= 2)
    decays = sorted({g["weight_decay"] for g in groups})
    assert decays == [0.0, pytest.approx(LAM / P)]
