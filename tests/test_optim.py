import dataclasses
import inspect
import math
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import wdscale
from conftest import TinyMLP
from wdscale import DataFacts
from wdscale.cli import main
from wdscale.loading import UsageError
from wdscale.optim import RULE_KEYWORDS, TORCH_KEYWORDS

DATA = DataFacts(n_samples=1000, batch_size=50, epochs=10)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(rule="summ", lr=0.1, weight_decay=0.1), ValueError, r"unknown rule 'summ'; known rules: sum, mean"),
        (dict(rule="sum", lr=0.1, weight_decay=-1.0), ValueError, r"weight_decay=-1.0 is not allowed: .*>= 0"),
        (dict(rule="sum", lr=0.1, weight_decay=math.nan), ValueError, r"weight_decay=nan"),
        (dict(rule="sum", lr=0.1, weight_decay=math.inf), ValueError, r"weight_decay=inf"),
        (
            dict(rule="sum", lr=0.0, weight_decay=0.1),
            ValueError,
            r"lr=0.0 is not allowed: lr must be a finite number > 0",
        ),
        (dict(rule="sum", lr=-1e-3, weight_decay=0.1), ValueError, r"lr=-0.001"),
        (dict(rule="sum", lr="big", weight_decay=0.1), TypeError, r"lr must be a number, got 'big'"),
        (dict(rule="timescale", lr=0.1, tau=0.0, data=DATA), ValueError, r"tau=0.0 is not allowed: .*> 0"),
        (dict(rule="timescale", lr=0.1, tau=-2.0, data=DATA), ValueError, r"tau=-2.0"),
        (
            dict(rule="sum", lr=0.1, weight_decay=0.1, tau=3.0),
            ValueError,
            r"takes weight_decay .*weight_decay=0.1 and tau=3.0",
        ),
        (dict(rule="sum", lr=0.1), ValueError, r"rule 'sum' takes weight_decay \(λ\) and nothing else; got neither"),
        (dict(rule="timescale", lr=0.1, weight_decay=0.1, data=DATA), ValueError, r"rule 'timescale' takes tau"),
        (
            dict(rule="sum", lr=0.1, weight_decay=0.1, optimizer="lion"),
            ValueError,
            r"unsupported optimizer 'lion'; supported: sgd, adam, adamw",
        ),
        (
            dict(rule="sqrt_width", lr=0.1, weight_decay=0.1, optimizer="sgd"),
            ValueError,
            r"defined for optimizers adam, adamw, not 'sgd'",
        ),
        (
            dict(rule="per_sample", lr=0.1, weight_decay=0.1),
            ValueError,
            r"rule 'per_sample' needs data=DataFacts\(n_samples=...\)",
        ),
        (
            dict(rule="normalized", lr=0.1, weight_decay=0.1, data=DataFacts(1000, 50)),
            ValueError,
            r"needs the run length",
        ),
        (
            dict(rule="sum", lr=0.1, weight_decay=0.1, data={"n_samples": 3}),
            TypeError,
            r"data must be a wdscale.DataFacts",
        ),
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
    with pytest.raises(
        ValueError, match=r"more than width at 'inp.weight': model shape \(16, 40\), base shape \(8, 30\)"
    ):
        wdscale.param_groups(TinyMLP(16, n_in=40), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(8, n_in=30))
    with pytest.raises(
        ValueError, match=r"more than width at 'out.weight': model shape \(5, 16\), base shape \(3, 8\)"
    ):
        wdscale.param_groups(TinyMLP(16, n_out=5), rule="sum", lr=0.1, weight_decay=0.1, base=TinyMLP(8))
    # at the same width only the input size differs: still refused
    with pytest.raises(ValueError, match=r"'inp.weight'.*\(16, 40\).*\(16, 30\)"):
        wdscale.param_groups(TinyMLP(16, n_in=40), rule="mup", lr=0.1, weight_decay=0.1, base=TinyMLP(16, n_in=30))
    with pytest.raises(ValueError, match="differ at parameter #0"):
        wdscale.param_groups(TinyMLP(16), rule="mup", lr=0.1, weight_decay=0.1, base=nn.Sequential(nn.Linear(8, 3)))


def test_datafacts_validation():
    with pytest.raises(
        ValueError, match=r"DataFacts.n_samples=0 is not allowed: DataFacts.n_samples must be a positive integer"
    ):
        DataFacts(n_samples=0, batch_size=8)
    with pytest.raises(ValueError, match=r"DataFacts.batch_size=2.5 is not allowed: .* a positive integer"):
        DataFacts(n_samples=10, batch_size=2.5)
    with pytest.raises(ValueError, match=r"DataFacts.epochs"):
        DataFacts(n_samples=10, batch_size=2, epochs=-1)
    assert DataFacts(1000, 50, steps=400).total_epochs == 20


def test_unknown_optimizer_kwarg_is_named():
    with pytest.raises(
        TypeError,
        match=r"optimizer 'adamw' \(AdamW\) does not take 'momentum', nor does the rule; "
        r"allowed: weight_decay, tau, base, .* \(for the rule\) and amsgrad, betas, .*",
    ):
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
    assert (
        main(
            [
                "explain",
                "--model",
                "conftest:TinyMLP",
                "--width",
                "128",
                "--base-width",
                "32",
                "--rule",
                "mup",
                "--lr",
                "0.001",
                "--weight-decay",
                "0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "hid.weight" in out and "0.00025" in out and "0.4" in out  # η/m and λ·m at m = 4


def test_cli_errors_are_one_line(capsys):
    assert (
        main(
            [
                "explain",
                "--model",
                "conftest:TinyMLP",
                "--width",
                "8",
                "--rule",
                "nope",
                "--lr",
                "0.1",
                "--weight-decay",
                "0.1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("wdscale: error: unknown rule 'nope'") and err.count("\n") == 1
    assert (
        main(["explain", "--model", "conftest:Missing", "--rule", "sum", "--lr", "0.1", "--weight-decay", "0.1"]) == 2
    )
    assert "has no attribute 'Missing'" in capsys.readouterr().err


# -- input checks (issue 11) ----------------------------------------------------------------------


def test_datafacts_refuses_impossible_or_ambiguous_facts():
    with pytest.raises(
        ValueError, match=r"DataFacts.batch_size=64 is larger than n_samples=50.*1 <= batch_size <= n_samples"
    ):
        DataFacts(n_samples=50, batch_size=64)
    with pytest.raises(ValueError, match=r"either epochs or steps, not both \(got epochs=10, steps=200\)"):
        DataFacts(n_samples=1000, batch_size=50, epochs=10, steps=200)
    with pytest.raises(ValueError, match=r"DataFacts.n_samples must be a positive integer, got True"):
        DataFacts(n_samples=True, batch_size=1)


def test_numpy_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    facts = DataFacts(n_samples=np.int64(1000), batch_size=np.int32(50), epochs=np.float32(10))
    assert (facts.n_samples, facts.batch_size, facts.epochs) == (1000, 50, 10.0)
    assert type(facts.n_samples) is int and type(facts.epochs) is float
    plain = wdscale.param_groups(TinyMLP(16), rule="timescale", lr=1e-3, tau=4.0, data=DATA)
    numpy = wdscale.param_groups(TinyMLP(16), rule="timescale", lr=np.float64(1e-3), tau=np.float32(4.0), data=facts)
    assert [(g["lr"], g["weight_decay"]) for g in numpy] == [(g["lr"], g["weight_decay"]) for g in plain]
    opt = wdscale.optimizer(TinyMLP(16), "adamw", rule="decoupled", lr=np.float32(1e-3), weight_decay=np.float64(0.1))
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3) and type(opt.defaults["lr"]) is float
    with pytest.raises(TypeError, match=r"lr must be a number, got np.True_|lr must be a number, got True"):
        wdscale.param_groups(TinyMLP(16), rule="sum", lr=np.bool_(True), weight_decay=0.1)


def test_a_nonpositive_shrink_factor_is_flagged():
    # decoupled, η·λ = 0.1 · 12 = 1.2: w ← w·(1 − 1.2) flips the weights' sign every step
    with pytest.warns(
        wdscale.ShrinkWarning,
        match=r"'inp.weight' lr=0.1 and weight_decay=12: the per-step shrink "
        r"factor 1 - lr·weight_decay = -0.2 is not > 0 \(and in 2 more",
    ):
        wdscale.param_groups(TinyMLP(16), rule="decoupled", lr=0.1, weight_decay=12.0)
    with pytest.warns(wdscale.ShrinkWarning):
        text = str(wdscale.explain(TinyMLP(16), rule="decoupled", lr=0.1, weight_decay=12.0))
    assert "warning: shrink/step <= 0" in text and "inp.weight, hid.weight, out.weight" in text

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # η·λ = 0.99 and coupled L2 are fine
        wdscale.param_groups(TinyMLP(16), rule="decoupled", lr=0.1, weight_decay=9.9)
        wdscale.param_groups(TinyMLP(16), rule="sum", lr=0.1, weight_decay=12.0)


@pytest.mark.parametrize("value", [True, False])
def test_decoupled_weight_decay_cannot_override_the_rule(value):
    with pytest.raises(
        ValueError,
        match=rf"decoupled_weight_decay={value} is not allowed: the rule decides .*rule "
        r"'sum' with 'adam' is coupled, so Adam",
    ):
        wdscale.optimizer(TinyMLP(16), "adam", rule="sum", lr=0.1, weight_decay=0.1, decoupled_weight_decay=value)


def test_no_decay_takes_one_name_or_a_list():
    one = {
        n
        for g in wdscale.param_groups(TinyMLP(16), rule="sum", lr=0.1, weight_decay=0.1, no_decay="out")
        if g["weight_decay"] == 0
        for n in g["names"]
    }
    listed = {
        n
        for g in wdscale.param_groups(TinyMLP(16), rule="sum", lr=0.1, weight_decay=0.1, no_decay=["out"])
        if g["weight_decay"] == 0
        for n in g["names"]
    }
    assert one == listed == {"inp.bias", "hid.bias", "out.bias", "out.weight"}
    with pytest.raises(TypeError, match=r"no_decay must hold parameter or module names \(str\), got 3"):
        wdscale.param_groups(TinyMLP(16), rule="sum", lr=0.1, weight_decay=0.1, no_decay=["out", 3])


@pytest.mark.parametrize("rule", ["mup", "sqrt_width", "completep"])
def test_width_rules_need_a_base(rule):
    for build in (
        wdscale.param_groups,
        wdscale.explain,
        lambda m, **kw: wdscale.optimizer(m, kw.pop("optimizer"), **kw),
    ):
        with pytest.raises(
            ValueError,
            match=rf"rule '{rule}' scales lr and weight_decay with width against a base "
            r"model, but base=None .*base=model if this is that width",
        ):
            build(TinyMLP(64), rule=rule, lr=0.1, weight_decay=0.1, optimizer="adamw")
    # at the base width, the model is its own base: every multiplier 1, the plain optimizer
    model = TinyMLP(64)
    groups = wdscale.param_groups(model, rule=rule, lr=0.1, weight_decay=0.1, base=model)
    assert {g["lr"] for g in groups} == {0.1}
    # apply_rule (what a study centres its grid with) takes no base as that
    assert {a.lr for a in wdscale.apply_rule(model, rule=rule, lr=0.1, weight_decay=0.1).assignments} == {0.1}


# -- the command line: where --model comes from -------------------------------------------------


MODELS_PY = """
from torch import nn

def make(width=16):
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
"""


def test_cli_model_from_the_current_directory_and_from_a_file(tmp_path, monkeypatch, capsys):

    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "wds_cli_models_a.py").write_text(MODELS_PY)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "wds_cli_models_b.py").write_text(MODELS_PY)
    monkeypatch.chdir(pkg)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(pkg))])
    for name in ("wds_cli_models_a", "wds_cli_models_b"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    args = ["--width", "64", "--base-width", "16", "--rule", "mup", "--lr", "0.001", "--weight-decay", "0.1"]
    assert main(["explain", "--model", "wds_cli_models_a:make", *args]) == 0
    out = capsys.readouterr().out
    assert "2.weight" in out and "0.00025" in out  # hidden at m = 4: η/4
    assert main(["explain", "--model", "../elsewhere/wds_cli_models_b.py:make", *args]) == 0
    assert "0.00025" in capsys.readouterr().out
    assert main(["explain", "--model", "nope_missing.py:make", *args]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["explain", "--model", "nope_missing_mod:make", *args]) == 2
    err = capsys.readouterr().err
    assert "looked in the current directory" in err and "path/to/file.py:make" in err and err.count("\n") == 1
    assert (
        main(["explain", "--model", "wds_cli_models_a:make", "--rule", "mup", "--lr", "0.001", "--weight-decay", "0.1"])
        == 2
    )
    assert (
        "--rule mup scales with width against a base (base=None otherwise): give --base-width"
        in capsys.readouterr().err
    )


# -- arguments a reader can see --------------------------------------------------------------------


def test_torch_keyword_table_matches_the_installed_torch():

    constructors = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    # muon: torch.optim.Muon's own (its Newton–Schulz eps and adjust_lr_fn are wdscale's to set), then AdamW's
    muon_own = set(inspect.signature(torch.optim.Muon).parameters) - {
        "params",
        "lr",
        "weight_decay",
        "eps",
        "adjust_lr_fn",
    }
    assert set(TORCH_KEYWORDS["muon"]) == muon_own | set(TORCH_KEYWORDS["adamw"])
    for name, table in TORCH_KEYWORDS.items():
        if name == "muon":
            continue
        accepted = set(inspect.signature(constructors[name]).parameters)
        # every listed keyword is a real constructor argument, and every real one but those the
        # rule owns is listed
        assert set(table) == accepted - {"params", "lr", "weight_decay", "decoupled_weight_decay"}, name
        opt = wdscale.optimizer(TinyMLP(8), name, rule="sum", lr=0.1, weight_decay=0.1, maximize=True, foreach=False)
        assert opt.param_groups[0]["maximize"] is True
    adam = wdscale.optimizer(TinyMLP(8), "adam", rule="sum", lr=0.1, weight_decay=0.1, betas=(0.8, 0.9), eps=1e-6)
    assert adam.param_groups[0]["betas"] == (0.8, 0.9) and adam.param_groups[0]["eps"] == 1e-6
    sgdw = wdscale.optimizer(TinyMLP(8), "sgd", rule="decoupled", lr=0.1, weight_decay=0.1, dampening=0.5)
    assert type(sgdw) is wdscale.SGDW and sgdw.param_groups[0]["dampening"] == 0.5


def test_the_rule_keywords_are_the_same_in_every_entry_point():

    def keywords(fn):
        return [n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY]

    rule_args = [k for k in keywords(wdscale.apply_rule) if k not in ("rule", "lr", "optimizer")]
    assert tuple(rule_args) == RULE_KEYWORDS
    assert keywords(wdscale.param_groups) == keywords(wdscale.explain) == keywords(wdscale.apply_rule)
    assert keywords(wdscale.optimizer) == ["rule", "lr", *RULE_KEYWORDS]


@pytest.mark.parametrize(
    "fn",
    [
        wdscale.apply_rule,
        wdscale.param_groups,
        wdscale.explain,
        wdscale.optimizer,
        wdscale.classify,
        wdscale.get_rule,
        wdscale.register_rule,
        wdscale.setting_kind,
        wdscale.setting_kwargs,
        wdscale.decay_mode,
    ],
)
def test_public_functions_document_every_argument(fn):

    doc = inspect.getdoc(fn)
    assert "Args:" in doc and "Returns:" in doc and "Raises:" in doc
    for name, p in inspect.signature(fn).parameters.items():
        shown = f"**{name}" if p.kind is p.VAR_KEYWORD else name
        assert f"\n    {shown}: " in doc, f"{fn.__name__}: argument {name!r} is not described"
    assert "{ARGS}" not in doc


def test_bad_input_raises_wdscale_errors():
    with pytest.raises(wdscale.WdscaleError):
        wdscale.param_groups(TinyMLP(16), rule="nope", lr=0.1, weight_decay=0.1)
    with pytest.raises(wdscale.WdscaleTypeError) as e:
        wdscale.param_groups(TinyMLP(16), rule="sum", lr="big", weight_decay=0.1)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)
    with pytest.raises(wdscale.WdscaleTypeError, match="model must be a torch.nn.Module"):
        wdscale.classify("not a model")
    with pytest.raises(wdscale.WdscaleError, match="more than width"):
        wdscale.classify(TinyMLP(16, n_in=40), TinyMLP(8, n_in=30))
    with pytest.raises(wdscale.WdscaleTypeError, match="does not take 'momentum'"):
        wdscale.optimizer(TinyMLP(16), "adam", rule="sum", lr=0.1, weight_decay=0.1, momentum=0.9)
    with pytest.raises(wdscale.WdscaleError, match="needs data=DataFacts"):
        wdscale.param_groups(TinyMLP(16), rule="per_sample", lr=0.1, weight_decay=0.1)

    assert issubclass(UsageError, wdscale.WdscaleError)


def test_python_dash_m_wdscale_runs_the_command():

    done = subprocess.run([sys.executable, "-m", "wdscale", "rules"], capture_output=True, text=True, check=True)
    assert "source: " + wdscale.get_rule("timescale").source in done.stdout


@pytest.mark.parametrize("fn", [wdscale.apply_rule, wdscale.param_groups, wdscale.explain, wdscale.optimizer])
def test_the_shared_keywords_are_written_once_and_shown_everywhere(fn):
    """help() shows and describes every argument, though the keywords are written once (RuleArgs)."""
    from wdscale.optim import RuleArgs

    names = [f.name for f in dataclasses.fields(RuleArgs) if not (fn is wdscale.optimizer and f.name == "optimizer")]
    params = inspect.signature(fn).parameters
    assert [n for n in params if n in names] == names
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
    for n in ["model", *names]:
        assert f"\n        {n}: " in fn.__doc__, f"{fn.__name__}'s docstring does not describe {n}"
    with pytest.raises(TypeError, match="weight_dacay"):
        fn(torch.nn.Linear(2, 2), rule="sum", lr=1e-3, weight_dacay=0.1) if fn is not wdscale.optimizer else fn(
            torch.nn.Linear(2, 2), "sgd", rule="sum", lr=1e-3, weight_dacay=0.1
        )


def test_explain_under_a_schedule_averages_tau_over_the_run():
    """τ at the peak lr stays in the table; under a schedule the decay applied over the run is
    Σ_t η_t·λ (worked here step by step from torch's LambdaLR), so the run-averaged τ is τ/m̄."""
    model = nn.Linear(8, 8)
    data = wdscale.DataFacts(n_samples=100, batch_size=10, epochs=3)  # 30 steps
    table = wdscale.explain(model, rule="timescale", lr=0.01, tau=2.0, data=data)
    under = table.under(wdscale.Schedule("cosine", warmup=0.1, final_lr=0.1))
    assert under.total_steps == 30 and under.rows == table.rows
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = wdscale.lr_scheduler(opt, "cosine", 30, warmup=0.1, final_lr=0.1)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    hidden = next(r for r in table.rows if r.decayed)
    applied = sum(lr * hidden.weight_decay for lr in lrs)  # Σ_t η_t·λ
    mean = sum(lrs) / 30 / 0.01
    text = str(under)
    assert f"τ {hidden.tau_steps:.4g} → {hidden.tau_steps / mean:.4g} steps" in text
    assert f"{hidden.tau_epochs:.4g} → {2.0 / mean:.4g} epochs" in text and f"over the run {applied:.4g}" in text
    with pytest.raises(wdscale.WdscaleError, match="give total_steps"):
        wdscale.explain(model, rule="decoupled", lr=0.01, weight_decay=0.1).under(wdscale.Schedule("linear"))


def test_explain_refuses_a_width_below_one_instead_of_using_the_base(capsys):
    from wdscale.cli import main

    common = ["explain", "--model", "mnist1d_mlp", "--rule", "mup", "--lr", "0.01", "--weight-decay", "0.1"]
    for flags in (["--width", "0", "--base-width", "16"], ["--width", "32", "--base-width", "-2"]):
        assert main([*common, *flags]) == 2
        err = capsys.readouterr().err
        assert "is not a width: give a whole number ≥ 1" in err and err.count("\n") == 1
    assert main([*common, "--width", "32", "--base-width", "16"]) == 0
