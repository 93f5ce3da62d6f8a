import math

import pytest
import torch
from torch import nn

import wdscale
from wdscale import DataFacts
from wdscale.cli import main

from conftest import TinyMLP

DATA = DataFacts(n_samples=1000, batch_size=50, epochs=10)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(rule="summ", lr=0.1, weight_decay=0.1), ValueError, r"unknown rule 'summ'; known rules: sum, mean"),
        (dict(rule="sum", lr=0.1, weight_decay=-1.0), ValueError, r"weight_decay=-1.0 is not allowed: .*>= 0"),
        (dict(rule="sum", lr=0.1, weight_decay=math.nan), ValueError, r"weight_decay=nan"),
        (dict(rule="sum", lr=0.1, weight_decay=math.inf), ValueError, r"weight_decay=inf"),
        (dict(rule="sum", lr=0.0, weight_decay=0.1), ValueError, r"lr=0.0 is not allowed: lr must be a finite number > 0"),
        (dict(rule="sum", lr=-1e-3, weight_decay=0.1), ValueError, r"lr=-0.001"),
        (dict(rule="sum", lr="big", weight_decay=0.1), TypeError, r"lr must be a number, got 'big'"),
        (dict(rule="timescale", lr=0.1, tau=0.0, data=DATA), ValueError, r"tau=0.0 is not allowed: .*> 0"),
        (dict(rule="timescale", lr=0.1, tau=-2.0, data=DATA), ValueError, r"tau=-2.0"),
        (dict(rule="sum", lr=0.1, weight_decay=0.1, tau=3.0), ValueError, r"takes weight_decay .*weight_decay=0.1 and tau=3.0"),
        (dict(rule="sum", lr=0.1), ValueError, r"rule 'sum' takes weight_decay \(λ\) and nothing else; got neither"),
        (dict(rule="timescale", lr=0.1, weight_decay=0.1, data=DATA), ValueError, r"rule 'timescale' takes tau"),
        (dict(rule="sum", lr=0.1, weight_decay=0.1, optimizer="lion"), ValueError, r"unsupported optimizer 'lion'; supported: sgd, adam, adamw"),
        (dict(rule="sqrt_width", lr=0.1, weight_decay=0.1, optimizer="sgd"), ValueError, r"defined for optimizers adam, adamw, not 'sgd'"),
        (dict(rule="per_sample", lr=0.1, weight_decay=0.1), ValueError, r"rule 'per_sample' needs data=DataFacts\(n_samples=...\)"),
        (dict(rule="normalized", lr=0.1, weight_decay=0.1, data=DataFacts(1000, 50)), ValueError, r"needs the run length"),
        (dict(rule="sum", lr=0.1, weight_decay=0.1, data={"n_samples": 3}), TypeError, r"data must be a wdscale.DataFacts"),
    ],
)
def test_bad_input_gets_one_clear_error_before_any_optimizer(kwargs, error, match):
    model = TinyMLP(16)
    with pytest.raises(error, match=match):
        wdscale.param_groups(model, **kwargs)
    kwargs = dict(kwargs)
    name = kwargs.pop("optimizer", "adamw")
    with pytest.raises(error, match=match):
        wdscale.optimizer(model, name, **kwargs)


def test_base_may_differ_in_width_only():
    # 30 inputs in the base, 40 in the model: not a width, so not a multiplier (it would make the
    # input layer "hidden" with lr × 30/40)
    with pytest.raises(ValueError, match=r"more than width at 'inp.weight': model shape \(16, 40\), base shape \(8, 30\)"):
        wdscale.param_groups(TinyMLP(16, n_in=40), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(8, n_in=30))
    with pytest.raises(ValueError, match=r"more than width at 'out.weight': model shape \(5, 16\), base shape \(3, 8\)"):
        wdscale.param_groups(TinyMLP(16, n_out=5), rule="sum", lr=0.1, weight_decay=0.1, base=TinyMLP(8))
    # at the same width only the input size differs: still refused
    with pytest.raises(ValueError, match=r"'inp.weight'.*\(16, 40\).*\(16, 30\)"):
        wdscale.param_groups(TinyMLP(16, n_in=40), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(16, n_in=30))
    with pytest.raises(ValueError, match="differ at parameter #0"):
        wdscale.param_groups(TinyMLP(16), rule="mup", lr=0.1, weight_decay=0.1, base=nn.Sequential(nn.Linear(8, 3)))


def test_datafacts_validation():
    with pytest.raises(ValueError, match=r"DataFacts.n_samples must be a positive integer, got 0"):
        DataFacts(n_samples=0, batch_size=8)
    with pytest.raises(ValueError, match=r"DataFacts.batch_size must be a positive integer, got 2.5"):
        DataFacts(n_samples=10, batch_size=2.5)
    with pytest.raises(ValueError, match=r"DataFacts.epochs"):
        DataFacts(n_samples=10, batch_size=2, epochs=-1)
    assert DataFacts(1000, 50, steps=400).total_epochs == 20


def test_unknown_optimizer_kwarg_is_named():
    with pytest.raises(TypeError, match=r"optimizer 'adamw' \(AdamW\) does not take 'momentum', nor does the rule; "
                                        r"allowed: weight_decay, tau, base, .* \(for the rule\) and amsgrad, betas, .*"):
        wdscale.optimizer(TinyMLP(16), "adamw", rule="decoupled", lr=0.1, weight_decay=0.1, momentum=0.9)
    # a misspelt rule keyword is named as such, with the likely intent, not as a missing weight_decay
    with pytest.raises(TypeError, match=r"does not take 'weight_decy' \(did you mean 'weight_decay'\?\)"):
        wdscale.optimizer(TinyMLP(16), "adamw", rule="decoupled", lr=0.1, weight_decy=0.1)
    opt = wdscale.optimizer(TinyMLP(16), "sgd", rule="sum", lr=0.1, weight_decay=0.1, momentum=0.9, nesterov=True)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]


def test_groups_carry_names_and_kinds_and_torch_keeps_them():
    model = TinyMLP(32)
    opt = wdscale.optimizer(model, "adamw", rule="mup", lr=1e-3, weight_decay=0.1, base=TinyMLP(16))
    kinds = {g["kind"] for g in opt.param_groups}
    assert kinds == {"input", "hidden", "output", "vector"}
    hidden = next(g for g in opt.param_groups if g["kind"] == "hidden")
    assert hidden["names"] == ["hid.weight"] and hidden["lr"] == pytest.approx(5e-4)
    # the torch optimizer still trains with these groups
    loss = model(torch.randn(4, 8)).square().mean()
    loss.backward()
    before = model.hid.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.hid.weight)


def test_explain_table_shows_every_parameter_and_the_timescale():
    ex = wdscale.explain(TinyMLP(256), rule="timescale", lr=1e-3, tau=4.0, base=TinyMLP(64), data=DATA)
    assert [r.name for r in ex.rows] == [n for n, _ in TinyMLP(8).named_parameters()]
    for r in ex.rows:
        if r.decayed:
            assert r.tau_epochs == pytest.approx(4.0) and r.tau_steps == pytest.approx(4.0 * 1000 / 50)
            assert r.decay_per_step == pytest.approx(1 - r.lr * r.weight_decay)
        else:
            assert r.weight_decay == 0 and r.tau_steps is None
    text = str(ex)
    assert "hid.weight" in text and "hidden" in text and "Wang & Aitchison" in text
    assert "τ epochs" in text and " no " in text  # the decay column shows which are not decayed
    adam = str(wdscale.explain(TinyMLP(16), rule="sum", lr=1e-3, weight_decay=0.1, optimizer="adam"))
    assert "no fixed per-step shrink factor" in adam


def test_cli_rules_and_explain(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for name in wdscale.RULES:
        assert name in out
    assert "Loshchilov & Hutter" in out
    assert main(["explain", "--model", "conftest:TinyMLP", "--width", "128", "--base-width", "32",
                 "--rule", "mup", "--lr", "0.001", "--weight-decay", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "hid.weight" in out and "0.00025" in out and "0.4" in out  # η/m and λ·m at m = 4


def test_cli_errors_are_one_line(capsys):
    assert main(["explain", "--model", "conftest:TinyMLP", "--width", "8", "--rule", "nope", "--lr", "0.1",
                 "--weight-decay", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wdscale: error: unknown rule 'nope'") and err.count("\n") == 1
    assert main(["explain", "--model", "conftest:Missing", "--rule", "sum", "--lr", "0.1",
                 "--weight-decay", "0.1"]) == 2
    assert "has no attribute 'Missing'" in capsys.readouterr().err
