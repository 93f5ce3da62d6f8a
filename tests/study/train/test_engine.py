"""The batched engine must train K models exactly as K sequential torch.optim runs would."""

import copy
import dataclasses
import hashlib
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from toy import mlp_fn, one_thread, toy_config  # noqa: F401 (one_thread: autouse fixture)
from toy import toy_data as classification_data

from wdscale.sgdw import SGDW
from wdscale.study.plan.config import TaskData
from wdscale.study.plan.models import MLP, CharTransformer, OneHotMLP
from wdscale.study.train.batched_step import BatchedOptimizer, read_optimizer
from wdscale.study.train.engine import BatchedTrainer, can_batch, check_batch, choose_k, choose_path, train_batched
from wdscale.study.train.loop import build, train_run
from wdscale.study.train.stack import Layout


def config(**kw):
    return toy_config(**{"lr": 3e-3, **kw})


class TinyMLP(nn.Module):
    """Not a plain chain of modules (activations in forward): trained through vmap(functional_call)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.hid = nn.Linear(16, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(torch.tanh(self.hid(torch.relu(self.inp(x)))))


def tiny_sequential():
    """A plain chain: trained through the hand-written bmm forward."""
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


def torch_optimizer(kind, model, lr, wd):
    """Per-group lr and λ that differ between groups: matrices vs vectors."""
    mats = [p for p in model.parameters() if p.ndim == 2]
    vecs = [p for p in model.parameters() if p.ndim == 1]
    groups = [
        {"params": mats, "lr": lr, "weight_decay": wd},
        {"params": vecs, "lr": lr * 0.5, "weight_decay": wd * 0.1},
    ]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if kind == "sgdw":
        return SGDW(groups, lr=lr, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


LRS = {"sgd": 0.05, "sgdw": 0.05, "adam": 3e-3, "adamw": 3e-3}


@pytest.mark.parametrize("arch", [TinyMLP, tiny_sequential], ids=["vmap", "bmm"])
@pytest.mark.parametrize("kind", ["sgd", "sgdw", "adam", "adamw"])
def test_stacked_training_matches_torch_optim(kind, arch):
    """K=3 models, different seeds, lr and λ, 200 float64 steps: engine vs torch.optim one by one."""
    dt = torch.float64
    seeds, lrs, wds = [0, 1, 2], [LRS[kind], 2 * LRS[kind], 0.5 * LRS[kind]], [1e-2, 5e-2, 0.2]
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(arch().to(dt))
    refs = [copy.deepcopy(m) for m in models]
    trainer = BatchedTrainer(models, [torch_optimizer(kind, m, lr, wd) for m, lr, wd in zip(models, lrs, wds)])
    assert trainer.native == (arch is tiny_sequential)
    ref_opts = [torch_optimizer(kind, m, lr, wd) for m, lr, wd in zip(refs, lrs, wds)]
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(64, 8, generator=g, dtype=dt), torch.randint(0, 4, (64,), generator=g)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for step in range(200):
        if step % 4 == 0:
            perms = [torch.randperm(64, generator=gen) for gen in gens]
        idx = torch.stack([p[(step % 4) * 16 : (step % 4 + 1) * 16] for p in perms])
        trainer.step(x[idx], y[idx])
        for k, (m, opt) in enumerate(zip(refs, ref_opts)):
            loss = F.cross_entropy(m(x[idx[k]]), y[idx[k]])
            opt.zero_grad()
            loss.backward()
            opt.step()
    diff = max(
        (trainer.member(k)[n] - p).abs().max().item() for k, m in enumerate(refs) for n, p in m.named_parameters()
    )
    assert diff <= 1e-10


@pytest.mark.parametrize("kind", ["sgd", "sgdw", "adam", "adamw"])
@pytest.mark.parametrize("dt", [torch.float64, torch.float32])
def test_functional_step_is_torch_step(kind, dt):
    """Given the same gradients, the batched step is torch's single-tensor step: bitwise on x86
    CPUs (where torch's `add(alpha=)` and `addcmul` are the same fused multiply-add)."""
    torch.manual_seed(0)
    k, lrs, wds = 3, [0.1, 0.02, 0.3], [0.5, 0.0, 0.05]
    models = [nn.Linear(5, 7).to(dt) for _ in range(k)]
    opts = [torch_optimizer(kind, m, lr, wd) for m, lr, wd in zip(models, lrs, wds)]
    rule, _, _ = read_optimizer(opts[0], models[0])
    per = [read_optimizer(o, m) for o, m in zip(opts, models)]
    layout = Layout(("weight", "bias"), (torch.Size([7, 5]), torch.Size([7])))
    table = lambda i: torch.tensor([[d[i][n] for n in layout.names] for d in per], dtype=torch.float64)  # noqa: E731
    stepper = BatchedOptimizer(rule, layout, table(1), table(2), dt)
    flat = layout.stack([dict(m.named_parameters()) for m in models]).detach().clone()
    for _ in range(50):
        grads = [{n: torch.randn_like(p) for n, p in m.named_parameters()} for m in models]
        for m, o, gr in zip(models, opts, grads):
            for n, p in m.named_parameters():
                p.grad = gr[n].clone()
            o.step()
        stepper.step(flat, layout.stack(grads))
    want = layout.stack([{n: p.detach() for n, p in m.named_parameters()} for m in models])
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert torch.equal(flat, want)
    else:
        assert torch.allclose(flat, want, rtol=1e-12, atol=1e-12)


# -- train_batched vs train_run ------------------------------------------------------------------------


def assert_same(a, b, tol=1e-9):
    assert a.run_id == b.run_id and a.status == b.status and a.steps == b.steps
    assert len(a.history) == len(b.history)
    for x, y in zip(a.history + [a.best_val_loss, a.val_acc], b.history + [b.best_val_loss, b.val_acc]):
        assert abs(x - y) <= tol or (x != x and y != y)
    if a.status == "ok":
        assert abs(a.val_loss - b.val_loss) <= tol and abs(a.train_loss - b.train_loss) <= tol


@pytest.mark.parametrize(
    "optimizer,rules,lr,momentum",
    [
        ("adamw", ["decoupled", "timescale"], 1e-2, 0.0),  # decoupled: AdamW; timescale takes τ
        ("sgd", ["sum", "mean"], 0.05, 0.9),  # coupled: SGD + momentum
    ],
)
def test_train_batched_matches_train_run(optimizer, rules, lr, momentum):
    data = classification_data()
    configs = [
        config(
            optimizer=optimizer,
            rule=rules[i % 2],
            seed=i,
            lr=lr * (1 + i),
            momentum=momentum,
            setting=2.0 if rules[i % 2] == "timescale" else 1e-2 * (i + 1),
        )
        for i in range(3)
    ]
    batched = train_batched(configs, data, mlp_fn, dtype=torch.float64)
    for c, b in zip(configs, batched):
        assert b.status == "ok" and b.steps == 3 * 6 and len(b.history) == 3
        assert b.path == "batched-bmm" and b.n_params == 8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4
        assert_same(b, train_run(c, data, mlp_fn, dtype=torch.float64))


def test_lm_transformer_through_vmap_matches_train_run():
    # a learnable text (each token the previous + 3, mod 11), so the runs leave chance
    g = torch.Generator().manual_seed(0)
    ids = (torch.randint(0, 11, (40, 1), generator=g) + 3 * torch.arange(9)) % 11
    data = TaskData(ids[:32, :-1], ids[:32, 1:], ids[32:, :-1], ids[32:, 1:], n_classes=11, objective="lm")
    fn = lambda w, d: CharTransformer(11, 8, w, d)  # noqa: E731
    configs = [
        config(
            width=16,
            depth=1,
            base_width=16,
            base_depth=1,
            n_train=32,
            batch_size=8,
            epochs=2,
            seed=s,
            lr=1e-2 * (s + 1),
        )
        for s in range(2)
    ]
    batched = train_batched(configs, data, fn, dtype=torch.float64)
    for c, b in zip(configs, batched):
        ref = train_run(c, data, fn, dtype=torch.float64)
        assert b.status == "ok" and 0 <= b.val_acc <= 1
        assert_same(b, ref)


def test_one_hot_mlp_trains_batched_through_bmm_as_train_run():
    # token ids whose label is the first id + 1 (mod 7): learnable from the context
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 7, (48, 3), generator=g)
    y = (x[:, 0] + 1) % 7
    data = TaskData(x[:40], y[:40], x[40:], y[40:], n_classes=7, objective="classification")
    fn = lambda w, d: OneHotMLP(7, 3, 7, w, d)  # noqa: E731
    configs = [
        config(width=16, base_width=8, n_train=40, batch_size=8, epochs=5, seed=s, lr=3e-2 * (s + 1)) for s in range(2)
    ]
    batched = train_batched(configs, data, fn, dtype=torch.float64)
    for c, b in zip(configs, batched):
        assert b.status == "ok" and b.path == "batched-bmm"
        assert_same(b, train_run(c, data, fn, dtype=torch.float64))
    assert choose_path(fn(16, 2))[0] == "batched-bmm"
    assert can_batch(fn(16, 2))[1] == "no buffers, no dropout, vmap(functional_call) works"  # probed with ids
    # through vmap(functional_call) (native=False) the stack's logits are each model's too
    torch.manual_seed(1)
    models = [fn(16, 2) for _ in range(2)]
    vmapped = BatchedTrainer(models, [torch.optim.AdamW(m.parameters()) for m in models], native=False)
    with torch.no_grad():
        assert torch.allclose(vmapped.forward(x.expand(2, *x.shape)), torch.stack([m(x) for m in models]), atol=1e-5)


def test_diverged_member_is_dropped_and_the_others_are_unaffected():
    data = classification_data()
    configs = [config(optimizer="sgd", rule="sum", momentum=0.9, lr=0.05, seed=i) for i in range(3)]
    configs[1] = dataclasses.replace(configs[1], lr=1e6)
    batched = train_batched(configs, data, mlp_fn, dtype=torch.float64)
    assert [r.status for r in batched] == ["ok", "diverged", "ok"]
    assert [r.run_id for r in batched] == [c.run_id for c in configs]
    alone = train_run(configs[1], data, mlp_fn, dtype=torch.float64)
    assert alone.status == "diverged" and batched[1].steps == alone.steps < 18
    healthy = train_batched([configs[0], configs[2]], data, mlp_fn, dtype=torch.float64)
    for b, h in zip([batched[0], batched[2]], healthy):
        assert_same(b, h, tol=0.0)


def test_batch_must_differ_only_in_hyperparameters():
    with pytest.raises(ValueError, match="width"):
        check_batch([config(), config(width=32, seed=1)])
    with pytest.raises(ValueError, match="decay mode"):
        check_batch([config(rule="decoupled"), config(rule="sum")])
    check_batch([config(rule="decoupled", seed=0, lr=1e-3), config(rule="timescale", setting=2.0, seed=1)])


# -- can_batch, choose_k, choose_path -----------------------------------------------------------------


def test_can_batch():
    assert can_batch(MLP(8, 4, 16, 2))[0]
    ok, why = can_batch(nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)))
    assert not ok and "buffers" in why
    ok, why = can_batch(nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 4)))
    assert not ok and "Dropout" in why
    assert can_batch(CharTransformer(11, 8, 16, 1))[0]


def test_choose_k_grows_with_the_budget():
    model = MLP(40, 10, 64, 2)
    small, big = choose_k(model, (128, 40), 1 << 20), choose_k(model, (128, 40), 1 << 30)
    assert 1 <= small < big
    assert choose_k(model, (128, 40), 1) == 1


def test_the_path_is_a_rule_of_the_model_and_device_not_a_timing():
    small, wide = MLP(40, 10, 64, 2), MLP(40, 10, 1024, 2)
    assert choose_path(small)[0] == "batched-bmm"
    assert choose_path(small) == choose_path(MLP(40, 10, 64, 2))  # the same answer every time
    path, why = choose_path(wide)
    assert path == "sequential" and "parameters >" in why
    assert choose_path(CharTransformer(11, 8, 16, 1))[0] == "batched-vmap"
    assert choose_path(nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)))[0] == "sequential"
    # on a GPU every batchable model batches
    assert choose_path(wide, "cuda")[0] == "batched-bmm"


# -- lr schedules: both paths are torch.optim + LambdaLR ------------------------------------------------

SCHEDULES = [
    dict(schedule="cosine", warmup=0.1, final_lr=0.1),
    dict(schedule="linear", warmup=0.2),
    dict(schedule="wsd", warmup=0.1, decay_fraction=0.3, final_lr=0.0),
]


def _hand_multiplier(s, t, total):
    """The schedules worked by hand (not through wdscale.schedules): the reference's LambdaLR."""
    w = round(s.get("warmup", 0) * total)
    if t < w:
        return (t + 1) / (w + 1)
    p, f = (t - w) / (total - w), s.get("final_lr", 0.0)
    if s["schedule"] == "cosine":
        return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p))
    if s["schedule"] == "linear":
        return 1 - p
    d = round(s["decay_fraction"] * total)
    return 1.0 if t < total - d else f + (1 - f) * (1 - (t - (total - d)) / d)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s["schedule"])
@pytest.mark.parametrize(
    "optimizer,rule,lr,momentum,setting",
    [("adamw", "decoupled", 3e-3, 0.0, 0.05), ("sgd", "decoupled", 0.05, 0.9, 0.05), ("sgd", "sum", 0.05, 0.9, 1e-2)],
)
def test_a_scheduled_run_is_torch_optim_with_lambda_lr(schedule, optimizer, rule, lr, momentum, setting):
    """train_run and train_batched under a schedule equal a hand-written loop of the same torch
    optimizer stepped by torch's LambdaLR with the schedule worked by hand (float64)."""
    data = classification_data()
    configs = [
        config(optimizer=optimizer, rule=rule, lr=lr * (1 + i), momentum=momentum, setting=setting, seed=i, **schedule)
        for i in range(2)
    ]
    batched = train_batched(configs, data, mlp_fn, dtype=torch.float64)
    for c, b in zip(configs, batched):
        seq = train_run(c, data, mlp_fn, dtype=torch.float64)
        assert_same(b, seq)
        # the reference: the same build (seeded model, rule's optimizer), then torch's LambdaLR
        model, opt = build(c, c.n_train, mlp_fn, dtype=torch.float64)
        total = c.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t, total=total: _hand_multiplier(schedule, t, total))
        d = dataclasses.replace(data, x_train=data.x_train[: c.n_train].double(), y_train=data.y_train[: c.n_train])
        gen = torch.Generator().manual_seed(c.seed)
        lrs_seen = []
        for _ in range(c.epochs):
            perm = torch.randperm(c.n_train, generator=gen)
            for i in range(0, c.n_train, c.batch_size):
                idx = perm[i : i + c.batch_size]
                loss = F.cross_entropy(model(d.x_train[idx]), d.y_train[idx])
                opt.zero_grad()
                loss.backward()
                lrs_seen.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
        assert len(lrs_seen) == total == seq.steps and lrs_seen[0] < lrs_seen[len(lrs_seen) // 4]  # warmed up
        with torch.no_grad():
            want = F.cross_entropy(model(data.x_val.double()), data.y_val).item()
        assert abs(seq.val_loss - want) <= 1e-9 and abs(b.val_loss - want) <= 1e-9


def test_a_schedule_changes_the_run_and_its_id_but_constant_keeps_the_old_id():
    old = config()
    assert dataclasses.replace(old, schedule="constant").run_id == old.run_id
    # the id of a constant-lr run is what it was before schedules existed (a committed store's runs)
    added = ("schedule", "warmup", "final_lr", "decay_fraction", "evals_per_epoch")
    legacy = {k: v for k, v in old.to_dict().items() if k not in added}
    blob = json.dumps({**legacy, "task_options": []}, sort_keys=True, default=str)
    assert hashlib.sha1(blob.encode()).hexdigest()[:16] == old.run_id
    cos = config(schedule="cosine", final_lr=0.1)
    assert cos.run_id != old.run_id
    data = classification_data()
    a, b = train_run(old, data, mlp_fn), train_run(cos, data, mlp_fn)
    assert a.steps == b.steps and a.val_loss != b.val_loss


def test_evaluations_within_an_epoch_leave_training_unchanged_and_the_engine_agrees():
    data = classification_data()
    configs = [config(seed=i, lr=1e-2 * (1 + i), evals_per_epoch=3, schedule="linear", warmup=0.1) for i in range(2)]
    assert configs[0].eval_steps == [2, 4, 6] and configs[0].run_id != config(seed=0, lr=1e-2).run_id
    batched = train_batched(configs, data, mlp_fn, dtype=torch.float64)
    for c, b in zip(configs, batched):
        seq = train_run(c, data, mlp_fn, dtype=torch.float64)
        once = train_run(dataclasses.replace(c, evals_per_epoch=1), data, mlp_fn, dtype=torch.float64)
        assert seq.status == b.status == "ok" and len(seq.history) == len(b.history) == 9
        assert b.history == pytest.approx(seq.history, rel=1e-9, abs=0)
        # training is the one-evaluation run's: its epochs' losses are every third evaluation, and
        # the ones between them are new points of the same run
        assert seq.steps == once.steps and seq.history[2::3] == pytest.approx(once.history, rel=1e-12, abs=0)
        assert seq.val_loss == pytest.approx(once.val_loss, rel=1e-12, abs=0)
        assert len(set(seq.history)) == 9


def test_an_epoch_evaluates_where_asked_and_no_more_often_than_it_steps():
    from wdscale.study.plan.config import eval_steps
    from wdscale.study.train.loop import part_of_val

    assert eval_steps(6, 1) == [6] and eval_steps(10, 3) == [3, 7, 10] and eval_steps(5, 5) == [1, 2, 3, 4, 5]
    for bad in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match=f"evals_per_epoch={bad!r} is not allowed: a whole number from 1 to"):
            eval_steps(6, bad)
    with pytest.raises(ValueError, match="evals_per_epoch=7"):
        assert config(evals_per_epoch=7).eval_steps  # 90 samples in batches of 16: 6 steps an epoch
    d = classification_data()
    assert len(part_of_val(d, 3)[0]) == math.ceil(len(d.x_val) / 3) and len(part_of_val(d, 1)[1]) == len(d.y_val)


def test_a_batch_never_mixes_schedules():
    with pytest.raises(ValueError, match="schedule"):
        check_batch([config(), config(schedule="cosine", seed=1)])
