"""Tasks load real data with the right shapes, and models are stackable with torch.func."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

import wdscale.study.plan.tasks as tasks_module
from wdscale.study.plan.models import CNN1D, MLP, CharTransformer, ResMLP, default_n_heads
from wdscale.study.plan.tasks import TASKS, Task, get_task, load_mnist1d

TASK_NAMES = sorted(TASKS)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_loads_with_right_shapes_and_dtypes(name: str) -> None:
    task = get_task(name)
    data = task.load()
    assert data.objective == task.objective
    assert data.n_train >= task.default_n_train
    assert data.x_train.shape[0] == data.y_train.shape[0]
    assert data.x_val.shape[0] == data.y_val.shape[0] > 0
    assert data.y_train.dtype == data.y_val.dtype == torch.int64
    assert 0 <= int(data.y_train.min()) and int(data.y_train.max()) < data.n_classes
    assert int(data.y_val.max()) < data.n_classes
    if name == "markov_mlp":  # classes are the next character, inputs the previous few as ids
        assert data.x_train.dtype == torch.int64 and data.x_train.shape == (data.n_train, 4)
        assert data.y_train.shape == (data.n_train,) and data.x_val.shape[1:] == (4,)
        assert 40 <= data.n_classes <= 100 and int(data.x_train.max()) < data.n_classes
    elif task.objective == "classification":
        assert data.n_classes == 10
        assert data.x_train.dtype == torch.float32 and data.x_train.ndim == 2
        assert data.x_val.shape[1:] == data.x_train.shape[1:]
        assert torch.isfinite(data.x_train).all()
        # standardised with the training statistics
        assert data.x_train.mean(0).abs().max() < 1e-3
        assert set(data.y_train.tolist()) == set(range(10))
    else:
        assert data.x_train.dtype == torch.int64
        assert data.x_train.shape == data.y_train.shape == (data.n_train, 64)
        assert data.x_val.shape[1] == 64
        # targets are the inputs shifted by one token
        assert torch.equal(data.x_train[:, 1:], data.y_train[:, :-1])
        assert 40 <= data.n_classes <= 100
        assert int(data.x_train.max()) < data.n_classes


def _row_set(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


# markov_mlp's samples are 4-character contexts, which recur in any text: its training and
# validation draws come from separate random streams (tests/study/plan/test_markov_mlp.py)
@pytest.mark.parametrize("name", [n for n in TASK_NAMES if n != "markov_mlp"])
def test_train_and_val_are_disjoint(name: str) -> None:
    data = get_task(name).load()
    assert not _row_set(data.x_train) & _row_set(data.x_val)


def test_load_is_deterministic() -> None:
    first = {name: task.loader(0) for name, task in TASKS.items()}
    for cached in (
        tasks_module._mnist1d_generate,
        tasks_module._mnist1d_arrays,
        tasks_module._digits_arrays,
        tasks_module._shakespeare_corpus,
    ):
        cached.cache_clear()  # rebuild everything from the raw data
    for name, task in TASKS.items():
        again = task.loader(0)
        for f in ("x_train", "y_train", "x_val", "y_val"):
            assert torch.equal(getattr(first[name], f), getattr(again, f)), (name, f)
        assert task.load(0) is task.load(0)  # cached in-process


@pytest.mark.parametrize("name", TASK_NAMES)
def test_seed_only_reorders_training_samples(name: str) -> None:
    task = get_task(name)
    a, c = task.load(0), task.load(1)
    assert torch.equal(c.x_val, a.x_val) and torch.equal(c.y_val, a.y_val)
    assert not torch.equal(c.x_train, a.x_train)
    assert _row_set(c.x_train) == _row_set(a.x_train)


def test_subset_keeps_the_first_samples_and_the_validation_set() -> None:
    data = get_task("digits_mlp").load()
    small = data.subset(100)
    assert small.n_train == 100
    assert torch.equal(small.x_train, data.x_train[:100]) and torch.equal(small.y_train, data.y_train[:100])
    assert small.x_val is data.x_val
    with pytest.raises(ValueError):
        data.subset(data.n_train + 1)


def test_mnist1d_pool_extends_training_without_changing_the_canonical_part() -> None:
    base = load_mnist1d(0)
    assert base.n_train == 4000 and base.x_val.shape == (1000, 40)
    big = load_mnist1d(0, n_pool=6000)
    assert big.n_train == 6000
    assert torch.equal(big.x_train[:4000], base.x_train)
    assert torch.equal(big.x_val, base.x_val)
    assert not _row_set(big.x_train[4000:]) & _row_set(big.x_train[:4000])
    small = load_mnist1d(0, n_pool=1000)  # a smaller pool is a prefix, scaled the same way
    assert torch.equal(small.x_train, base.x_train[:1000]) and torch.equal(small.x_val, base.x_val)
    # reordering by seed keeps subset(n <= 4000) independent of the pool size
    assert torch.equal(load_mnist1d(2, n_pool=6000).x_train[:4000], load_mnist1d(2).x_train)
    assert get_task("mnist1d_mlp").load(0, n_pool=6000).n_train == 6000  # options reach the loader


def test_mnist1d_loading_leaves_global_rngs_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    tasks_module._mnist1d_generate.__wrapped__(99)  # uncached: really run it
    assert np.random.rand() == expected


def test_get_task_rejects_unknown_names_listing_known_ones() -> None:
    with pytest.raises(ValueError) as err:
        get_task("nope")
    assert "nope" in str(err.value)
    for name in TASKS:
        assert name in str(err.value)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_defaults_are_sane(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert task.base_width in task.default_widths
    assert max(task.default_widths) >= 16 * min(task.default_widths)
    assert list(task.default_widths) == sorted(task.default_widths)
    assert set(task.default_lr) == {"sgd", "adam", "adamw", "muon"}
    assert task.default_lr["muon"] == task.default_lr["adamw"]  # match_rms_adamw: AdamW's lr reused (Moonlight)
    assert all(lr > 0 for lr in task.default_lr.values())
    assert task.default_depth >= 1 and task.default_epochs >= 1 and task.default_batch_size >= 1


@pytest.mark.parametrize("name", TASK_NAMES)
def test_models_share_parameter_names_and_ranks_across_widths(name: str) -> None:
    task = get_task(name)
    small, large = task.make_model(16), task.make_model(64)
    ps, pl = dict(small.named_parameters()), dict(large.named_parameters())
    assert list(ps) == list(pl)
    assert all(ps[k].ndim == pl[k].ndim for k in ps)
    assert any(ps[k].shape != pl[k].shape for k in ps)
    assert "readout.weight" in ps
    assert ps["readout.weight"].shape[0] == pl["readout.weight"].shape[0]  # classes don't scale
    assert not list(small.buffers())  # nothing but parameters: stackable with torch.func
    deeper = task.make_model(16, depth=task.default_depth + 1)
    assert len(list(deeper.parameters())) > len(ps)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_forward_gives_logits_of_the_right_shape(name: str) -> None:
    task = get_task(name)
    data = task.load()
    torch.manual_seed(0)
    out = task.make_model(32)(data.x_val[:5])
    if task.objective == "classification":
        assert out.shape == (5, data.n_classes)
    else:
        assert out.shape == (5, 64, data.n_classes)
    assert torch.isfinite(out).all()


def test_mlp_and_cnn_shapes_and_depth_check() -> None:
    x = torch.randn(3, 40)
    assert MLP(40, 7, 24, 3)(x).shape == (3, 7)
    assert MLP(40, 7, 24, 1)(x.reshape(3, 4, 10)).shape == (3, 7)  # flattens its input
    for depth in (1, 2, 6, 8):  # deep nets keep length >= 1
        assert CNN1D(40, 7, 8, depth)(x).shape == (3, 7)
    with pytest.raises(ValueError):
        MLP(40, 7, 24, 0)


def test_resmlp_branches_are_scaled_residuals() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 40)
    plain, scaled = ResMLP(40, 10, 16, 3), ResMLP(40, 10, 16, 3, branch_scale=0.25)
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for model, s in ((plain, 1.0), (scaled, 0.25)):
            h = x @ model.input.weight.T + model.input.bias
            for b in model.blocks:
                h = h + s * (torch.relu(h) @ b.weight.T + b.bias)
            assert torch.allclose(model(x), torch.relu(h) @ model.readout.weight.T + model.readout.bias, atol=1e-6)
        assert not torch.allclose(plain(x), scaled(x))
    # CompleteP's task scales branches by 1/depth
    assert get_task("mnist1d_resmlp_completep").make_model(16, 4).branch_scale == 0.25
    assert get_task("mnist1d_resmlp").make_model(16, 4).branch_scale == 1.0
    with pytest.raises(ValueError, match="ResMLP depth must be >= 1, got 0"):
        ResMLP(40, 10, 16, 0)


def test_default_heads_divide_width() -> None:
    for width in (8, 16, 32, 48, 64, 96, 100, 256, 512):
        n = default_n_heads(width)
        assert n >= 1 and width % n == 0
    assert default_n_heads(512) == 16 and default_n_heads(16) == 1


def test_transformer_is_causal() -> None:
    torch.manual_seed(0)
    model = CharTransformer(vocab_size=20, context=16, width=32, depth=2)
    x = torch.randint(0, 20, (2, 16))
    t = 9
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 1) % 20
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert a.shape == (2, 16, 20)
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-4)
    assert model(x[:, :5]).shape == (2, 5, 20)  # shorter sequences work
    with pytest.raises(ValueError):
        model(torch.zeros(1, 17, dtype=torch.long))


_FAMILIES = {
    "mlp": (lambda: MLP(40, 10, 24, 2), lambda: torch.randn(6, 40)),
    "resmlp": (lambda: ResMLP(40, 10, 24, 3, branch_scale=1 / 3), lambda: torch.randn(6, 40)),
    "cnn": (lambda: CNN1D(40, 10, 12, 3), lambda: torch.randn(6, 40)),
    "transformer": (lambda: CharTransformer(30, 16, 32, 2), lambda: torch.randint(0, 30, (4, 16))),
}


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_vmap_over_stacked_copies_matches_each_copy(family: str) -> None:
    """The batched training engine stacks copies with torch.func: results must match per-copy calls."""
    make, make_x = _FAMILIES[family]
    torch.manual_seed(0)
    models = [make() for _ in range(3)]
    x = make_x()
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def call(p, b, inp):
        return functional_call(skeleton, (p, b), (inp,))

    batched = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    with torch.no_grad():
        expected = torch.stack([m(x) for m in models])
    assert batched.shape == expected.shape
    assert torch.allclose(batched, expected, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])  # the copies really differ

    # per-copy gradients through vmap match too
    def loss(p, b, inp):
        return call(p, b, inp).square().mean()

    grads = vmap(torch.func.grad(loss), in_dims=(0, 0, None))(params, buffers, x)
    models[1].zero_grad()
    models[1](x).square().mean().backward()
    for name, p in models[1].named_parameters():
        assert torch.allclose(grads[name][1], p.grad, atol=1e-5), name


def test_mnist1d_takes_a_larger_validation_set_from_other_generator_seeds():
    from wdscale.study.plan.tasks import load_mnist1d

    small, big = load_mnist1d(0), load_mnist1d(0, n_val=6000)
    assert big.x_val.shape == (6000, 40) and torch.equal(big.x_val[:1000], small.x_val)  # canonical first
    assert torch.equal(big.x_train, small.x_train)  # the training set does not move
    pool = load_mnist1d(0, n_pool=9000).x_train
    extra = big.x_val[1000:]
    assert not (torch.cdist(extra[:200], pool).min(dim=1).values < 1e-6).any()  # never a training sample
    assert abs(float(extra.mean())) < 0.1 and 0.9 < float(extra.std()) < 1.1  # scaled like the rest
    with pytest.raises(Exception, match="n_val=0"):
        load_mnist1d(0, n_val=0)
