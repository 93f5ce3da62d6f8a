"""The sequential reference loop: statuses, determinism, what a run reports."""

import math

import torch
import torch.nn.functional as F
from toy import mlp_fn, one_thread, toy_config  # noqa: F401 (one_thread: autouse fixture)
from toy import toy_data as data

from wdscale.study.plan.config import TaskData
from wdscale.study.plan.models import CharTransformer
from wdscale.study.train.loop import build, evaluate, per_model_loss, train_run


def config(**kw):
    return toy_config(**{"lr": 1e-2, **kw})


def test_a_run_trains_and_is_deterministic():
    c = config()
    r = train_run(c, data(), mlp_fn)
    assert r.status == "ok" and r.error is None and r.run_id == c.run_id
    assert r.steps == 3 * math.ceil(90 / 16) and len(r.history) == 3
    assert r.val_loss == r.history[-1] and r.best_val_loss == min(r.history)
    assert 0 <= r.val_acc <= r.best_val_acc <= 1 and math.isfinite(r.train_loss) and r.wall_time > 0
    again = train_run(c, data(), mlp_fn)
    assert again.history == r.history and again.train_loss == r.train_loss
    other = train_run(config(seed=1), data(), mlp_fn)
    assert other.history != r.history
    # what the run records about how it ran: its path and its model's size (MLP 8 → 16 → 16 → 4)
    assert r.path == "sequential" and r.n_params == 8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4


def test_init_depends_on_the_seed_only():
    """The base model is built for its shapes without touching the global RNG."""
    model, opt = build(config(seed=5, base_width=32), 90, mlp_fn)
    torch.manual_seed(5)
    fresh = mlp_fn(16, 2)
    for (n, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), n
    assert isinstance(opt, torch.optim.AdamW)


def test_huge_lr_diverges():
    r = train_run(config(optimizer="sgd", rule="sum", momentum=0.9, lr=1e6), data(), mlp_fn)
    assert r.status == "diverged" and r.steps < 18 and math.isnan(r.val_loss) and r.error is None


def test_a_raising_model_fn_fails_with_a_one_line_message():
    def broken(width, depth):
        raise RuntimeError("no such model\nsecond line")

    r = train_run(config(), data(), broken)
    assert r.status == "failed" and r.error == "RuntimeError: no such model second line"
    too_many = train_run(config(n_train=1000), data(), mlp_fn)
    assert too_many.status == "failed" and "n_train=1000" in too_many.error


def test_lm_run_reports_per_token_accuracy():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (40, 9), generator=g)
    lm = TaskData(ids[:32, :-1], ids[:32, 1:], ids[32:, :-1], ids[32:, 1:], n_classes=11, objective="lm")
    c = config(width=16, depth=1, base_width=16, base_depth=1, n_train=32, batch_size=8, epochs=2)
    r = train_run(c, lm, lambda w, d: CharTransformer(11, 8, w, d))
    assert r.status == "ok" and r.steps == 8 and 0 <= r.val_acc <= 1


def test_loss_and_metrics_are_the_usual_ones():
    torch.manual_seed(0)
    logits, y = torch.randn(2, 10, 4), torch.randint(0, 4, (2, 10))
    want = torch.stack([F.cross_entropy(logits[k], y[k]) for k in range(2)])
    assert torch.allclose(per_model_loss(logits, y), want)
    d = data()
    model = mlp_fn(16, 2)
    loss, acc = evaluate(model, d.x_val, d.y_val, chunk=7)
    with torch.no_grad():
        out = model(d.x_val)
    assert abs(loss - F.cross_entropy(out, d.y_val).item()) < 1e-6
    assert acc == (out.argmax(1) == d.y_val).double().mean().item()
