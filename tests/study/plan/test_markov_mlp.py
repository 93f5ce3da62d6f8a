"""The `markov_mlp` task: the Markov chain's next character from the previous four, as a
classification over token ids one-hot encoded inside an MLP (the input layer to the rules)."""

import math

import pytest
import torch
import torch.nn.functional as F

from wdscale.errors import WdscaleError
from wdscale.groups import classify
from wdscale.study.plan.models import MLP, OneHotMLP
from wdscale.study.plan.tasks import (
    MARKOV_MLP_CHUNK,
    MARKOV_MLP_CONTEXT,
    get_task,
    load_markov_mlp,
    markov_chain,
    shakespeare_vocab,
)

V = len(shakespeare_vocab())


def _chain_allows(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Every (context, next) pair is one the fitted chain can emit (a nonzero transition)."""
    chain = markov_chain()
    code = torch.zeros(len(x), dtype=torch.int64)
    for i in range(MARKOV_MLP_CONTEXT):
        code = code * V + x[:, i]
    rows = torch.searchsorted(torch.from_numpy(chain.codes), code)
    for r, c, nxt in zip(rows.tolist(), code.tolist(), y.tolist()):
        if r >= len(chain.codes) or chain.codes[r] != c:
            return False
        if nxt not in chain.nexts[chain.ptr[r] : chain.ptr[r + 1]].tolist():
            return False
    return True


def test_samples_are_context_ids_and_the_chains_next_character():
    d = load_markov_mlp(0, n_pool=500, n_val=300)
    assert d.x_train.shape == (500, MARKOV_MLP_CONTEXT) and d.y_train.shape == (500,)
    assert d.x_val.shape == (300, MARKOV_MLP_CONTEXT) and d.y_val.shape == (300,)
    assert d.x_train.dtype == d.y_train.dtype == torch.int64  # ids: the model one-hot encodes them
    assert d.objective == "classification" and d.n_classes == V
    assert int(d.x_train.max()) < V and int(d.y_train.max()) < V
    assert _chain_allows(d.x_train, d.y_train) and _chain_allows(d.x_val, d.y_val)
    # each sample its own chain: the draws are not windows of one stream (no sample is the
    # previous one shifted by a character)
    assert not torch.equal(d.x_train[1:, :-1], d.x_train[:-1, 1:])


def test_seeds_reorder_a_pool_that_grows_by_prefix_and_validation_stays():
    small, big = load_markov_mlp(0, n_pool=1000, n_val=50), load_markov_mlp(0, n_pool=MARKOV_MLP_CHUNK + 10, n_val=50)
    assert torch.equal(big.x_train[:1000], small.x_train) and torch.equal(big.y_train[:1000], small.y_train)
    assert not torch.equal(big.x_train[MARKOV_MLP_CHUNK : MARKOV_MLP_CHUNK + 10], big.x_train[:10])  # a new chunk
    other = load_markov_mlp(3, n_pool=1000, n_val=50)
    assert torch.equal(other.x_val, small.x_val) and not torch.equal(other.x_train, small.x_train)
    pairs = lambda d: sorted(zip(map(tuple, d.x_train.tolist()), d.y_train.tolist()))  # noqa: E731
    assert pairs(other) == pairs(small)
    # validation comes from another random stream: its first samples are not the training pool's
    assert not torch.equal(small.x_val[:50], small.x_train[:50])
    assert get_task("markov_mlp").load(0, n_pool=1000, n_val=50).n_train == 1000  # options reach the loader


@pytest.mark.parametrize(
    "options,match",
    [({"n_pool": 0}, "n_pool=0"), ({"n_val": 2.5}, "n_val=2.5"), ({"n_pool": True}, "n_pool=True")],
)
def test_a_bad_pool_is_one_error_naming_it_and_what_is_allowed(options, match):
    with pytest.raises(WdscaleError, match=f"{match} is not allowed: a whole number of samples from 1 to"):
        load_markov_mlp(0, **options)


def test_the_model_one_hot_encodes_ids_and_refuses_features():
    torch.manual_seed(0)
    model = get_task("markov_mlp").make_model(16)
    assert isinstance(model, OneHotMLP) and model.layers[0].in_features == MARKOV_MLP_CONTEXT * V
    x = torch.randint(0, V, (5, MARKOV_MLP_CONTEXT))
    plain = MLP(MARKOV_MLP_CONTEXT * V, V, 16, 2)
    plain.load_state_dict(model.state_dict())
    assert torch.allclose(model(x), plain(F.one_hot(x, V).float()))
    with pytest.raises(WdscaleError, match=r"integer token ids of shape \(N, 4\), got torch.float32"):
        model(x.float())
    with pytest.raises(WdscaleError, match=r"got torch.int64 of shape \(5, 3\)"):
        model(x[:, :3])


@pytest.mark.parametrize("width", [16, 64])
def test_a_model_trains_one_step_at_two_widths(width):
    torch.manual_seed(0)
    d = get_task("markov_mlp").load(0, n_pool=256, n_val=64)
    model = get_task("markov_mlp").make_model(width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)  # decay would move every column
    first = model.layers[0].weight.detach().clone()
    loss = F.cross_entropy(model(d.x_train[:128]), d.y_train[:128])
    loss.backward()
    opt.step()
    assert float(loss.detach()) == pytest.approx(math.log(V), rel=0.1)  # about chance from default init
    # the one-hot input's gradient reaches exactly the columns of the ids seen in the batch
    moved = (model.layers[0].weight.detach() != first).any(dim=0).reshape(MARKOV_MLP_CONTEXT, V)
    seen = F.one_hot(d.x_train[:128], V).any(dim=0)
    assert torch.equal(moved, seen)
    with torch.no_grad():
        after = F.cross_entropy(model(d.x_train[:128]), d.y_train[:128])
    assert after < loss


def test_the_one_hot_layer_is_the_input_layer():
    task = get_task("markov_mlp")
    model, base = task.make_model(64), task.make_model(16)
    kinds = {p.name: p for p in classify(model, base)}
    first = kinds["layers.0.weight"]
    assert first.kind == "input" and first.fan_in == MARKOV_MLP_CONTEXT * V and first.fan_out == 64
    assert first.fan_in_mult == 1 and first.fan_out_mult == 4
    assert kinds["layers.1.weight"].kind == "hidden" and kinds["readout.weight"].kind == "output"
    assert kinds["layers.0.bias"].kind == "vector"
    # with no base, by position: the first weight is the input layer
    assert {p.name: p.kind for p in classify(model)}["layers.0.weight"] == "input"
