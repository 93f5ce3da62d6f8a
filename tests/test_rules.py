"""Each rule's claim, checked with real optimizer steps against formulas worked by hand here.

With the data gradient set to zero, one SGD step (coupled rules) or one AdamW/SGDW step (decoupled
rules) multiplies each weight by exactly (1 − η_g λ_g): so the step itself measures what the rule
gave each group, and we compare that with the published formula.
"""

import math
import re
from pathlib import Path

import pytest
import torch

import wdscale
from conftest import TinyMLP
from wdscale import DataFacts
from wdscale.cli import main
from wdscale.optim import decay_mode


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


LR, LAM, TAU = 0.01, 0.3, 2.0
DATA = DataFacts(n_samples=1000, batch_size=50, epochs=10)
N, B, T = 1000, 50, 10
WIDTHS = [64, 256, 1024]
BASE = 64


def n_decayed(w):  # the three matrices of TinyMLP(w)
    return 8 * w + w * w + w * 3


def n_params(w):
    return n_decayed(w) + w + w + 3


def expected(rule, name, w, sgd):
    """(lr_g, λ_g) for a decayed matrix of TinyMLP(w) against the base TinyMLP(64), by hand."""
    m = w / BASE
    kind = name.split(".")[0]  # inp / hid / out
    fan_in = {"inp": 8, "hid": w, "out": w}[kind]
    # μP lr multiplier (Tensor Programs V Table 3; mup's MuAdam/MuSGD for hidden and input)
    if sgd:
        mup_lr = {"inp": m, "hid": 1.0, "out": 1 / m}[kind]  # SGD hidden: r = m/m = 1
    else:
        mup_lr = {"inp": 1.0, "hid": 1 / m, "out": 1 / m}[kind]
    if rule == "sum":
        return LR, LAM
    if rule == "mean":
        return LR, LAM / n_decayed(w)
    if rule == "per_sample":
        return LR, LAM / N
    if rule == "per_minibatch":
        return LR, LAM * B / N
    if rule == "decoupled":
        return LR, LAM
    if rule == "normalized":
        return LR, LAM * math.sqrt(B / (N * T))
    if rule == "independent":
        return LR, LAM / LR
    if rule == "timescale":
        lr = LR * mup_lr
        return lr, B / (lr * N * TAU)
    if rule == "power_lines":
        lr = LR * mup_lr
        d = N * T
        tau = TAU * (d / n_params(w)) ** -0.527
        return lr, B / (lr * tau * d)
    if rule == "mup":
        return LR * mup_lr, LAM / mup_lr
    if rule == "sqrt_width":
        return LR * mup_lr, LAM * math.sqrt(1 / mup_lr)
    if rule == "completep":
        return LR * mup_lr, LAM / mup_lr
    if rule == "prior_matched":
        return LR, LAM * fan_in / N
    raise AssertionError(rule)


CASES = [
    (r, opt)
    for r, rule in wdscale.RULES.items()
    for opt in (
        ("sgd", "adamw")
        if rule.mode == "optimizer" and "sgd" in rule.optimizers
        else ("sgd",)
        if rule.mode == "coupled"
        else ("adamw",)
    )
]


def one_zero_grad_step(model, opt):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return before


@pytest.mark.parametrize("rule,opt_name", CASES)
@pytest.mark.parametrize("width", WIDTHS)
def test_one_step_shrinks_each_weight_by_the_formula(rule, opt_name, width):
    torch.manual_seed(0)
    model, base = TinyMLP(width), TinyMLP(BASE)
    setting = wdscale.setting_kwargs(rule, TAU if wdscale.get_rule(rule).takes == "tau" else LAM)
    opt = wdscale.optimizer(model, opt_name, rule=rule, lr=LR, base=base, data=DATA, **setting)
    before = one_zero_grad_step(model, opt)
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            assert torch.equal(p, before[name]), f"{rule}: vector {name} must not be decayed by default"
            continue
        lr_g, wd_g = expected(rule, name, width, opt_name == "sgd")
        factor = 1 - lr_g * wd_g
        torch.testing.assert_close(
            p,
            before[name] * factor,
            rtol=1e-12,
            atol=0,
            msg=f"{rule}/{opt_name} width {width} {name}: expected factor {factor}",
        )


def test_timescale_holds_tau_for_every_group_at_every_width():
    for width in [64, 128, 256, 512, 1024]:
        for opt_name in ("adamw", "sgd"):
            groups = wdscale.param_groups(
                TinyMLP(width), rule="timescale", lr=LR, tau=TAU, base=TinyMLP(BASE), data=DATA, optimizer=opt_name
            )
            tau_iter = TAU * N / B
            for g in groups:
                if g["kind"] != "vector":
                    assert g["lr"] * g["weight_decay"] * tau_iter == pytest.approx(1.0, rel=1e-12)


def test_on_a_width_axis_per_sample_is_sum_and_timescale_is_mup():
    """The width studies leave out per_sample and timescale where these identities make them
    repeat sum and mup run for run: the same decay mode and (lr, weight_decay) for every group at
    every width. Under SGD timescale is SGDW (decoupled) while mup is MuSGD (coupled): they differ."""

    assert decay_mode("per_sample", "sgd") == decay_mode("sum", "sgd") == "coupled"
    assert decay_mode("per_sample", "adamw") == decay_mode("sum", "adamw") == "coupled"
    assert decay_mode("timescale", "adamw") == decay_mode("mup", "adamw") == "decoupled"
    assert decay_mode("timescale", "sgd") == "decoupled" != decay_mode("mup", "sgd")

    def groups(width, rule, opt_name, **setting):
        return [
            (g["kind"], g["lr"], g["weight_decay"])
            for g in wdscale.param_groups(
                TinyMLP(width), rule=rule, lr=LR, base=TinyMLP(BASE), data=DATA, optimizer=opt_name, **setting
            )
        ]

    for width in WIDTHS:
        for opt_name in ("adamw", "sgd"):
            same = zip(
                groups(width, "per_sample", opt_name, weight_decay=LAM * N),
                groups(width, "sum", opt_name, weight_decay=LAM),
            )
            for a, b in same:
                assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-12)
            if opt_name == "sgd":
                continue
            # τ in epochs ↔ λ: η λ τ N/B = 1
            same = zip(
                groups(width, "timescale", opt_name, tau=1 / (LR * LAM * N / B)),
                groups(width, "mup", opt_name, weight_decay=LAM),
            )
            for a, b in same:
                assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-12)


def test_mean_per_weight_decay_falls_as_one_over_p():
    decays = {}
    for width in WIDTHS:
        groups = wdscale.param_groups(TinyMLP(width), rule="mean", lr=LR, weight_decay=LAM)
        (wd,) = {g["weight_decay"] for g in groups if g["kind"] != "vector"}
        decays[width] = wd
    for width in WIDTHS:
        assert decays[width] * n_decayed(width) == pytest.approx(LAM, rel=1e-12)
    assert decays[64] / decays[1024] == pytest.approx(n_decayed(1024) / n_decayed(64))


def test_decoupled_sgd_with_momentum_keeps_decay_out_of_the_buffer():
    torch.manual_seed(0)
    model = TinyMLP(16)
    opt = wdscale.optimizer(model, "sgd", rule="decoupled", lr=LR, weight_decay=LAM, momentum=0.9)
    assert isinstance(opt, wdscale.SGDW)
    w0 = model.hid.weight.detach().clone()
    g = torch.randn_like(w0)
    # two steps with the same data gradient g: decay multiplies, momentum only sees g
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        model.hid.weight.grad = g.clone()
        opt.step()
    w1 = w0 * (1 - LR * LAM) - LR * g
    w2 = w1 * (1 - LR * LAM) - LR * (0.9 * g + g)
    torch.testing.assert_close(model.hid.weight, w2, rtol=1e-12, atol=1e-15)
    assert opt.param_groups[0]["weight_decay"] == LAM  # restored after the step


def test_coupled_rule_under_adam_is_adam_not_adamw():
    model = TinyMLP(16)
    assert type(wdscale.optimizer(model, "adamw", rule="sum", lr=LR, weight_decay=LAM)) is torch.optim.Adam
    assert type(wdscale.optimizer(model, "adam", rule="decoupled", lr=LR, weight_decay=LAM)) is torch.optim.AdamW
    # base=model: this is the base width
    assert type(wdscale.optimizer(model, "adamw", rule="mup", lr=LR, weight_decay=LAM, base=model)) is torch.optim.AdamW
    assert type(wdscale.optimizer(model, "adam", rule="mup", lr=LR, weight_decay=LAM, base=model)) is torch.optim.Adam


def test_completep_depth_multiplier():
    for alpha, depth_mult in [(1.0, 4.0), (0.5, 4.0)]:
        groups = wdscale.param_groups(
            TinyMLP(256),
            rule="completep",
            lr=LR,
            weight_decay=LAM,
            base=TinyMLP(64),
            depth_mult=depth_mult,
            alpha=alpha,
        )
        hid = next(g for g in groups if g["kind"] == "hidden")
        assert hid["lr"] == pytest.approx(LR / 4 * depth_mult ** (alpha - 1))
        assert hid["weight_decay"] == pytest.approx(LAM * 4)


def test_power_lines_tau_follows_tokens_per_parameter():
    """Doubling the data at fixed model size scales τ by 2^-0.527 (and λ by 2^-0.473)."""
    model = TinyMLP(64)
    lam = []
    for n in (1000, 2000):
        groups = wdscale.param_groups(
            model, rule="power_lines", lr=LR, tau=1.0, data=DataFacts(n_samples=n, batch_size=50, epochs=10)
        )
        lam.append(next(g for g in groups if g["kind"] == "hidden")["weight_decay"])
    assert lam[1] / lam[0] == pytest.approx(2 ** (-1 + 0.527))


def test_every_rule_has_formula_and_source():
    assert len(wdscale.RULES) >= 13
    for rule in wdscale.RULES.values():
        assert rule.summary and rule.formula and rule.source


# -- rules as data: fields, the CLI listing, rules of one's own ------------------------------------


def test_rules_command_prints_each_rules_fields_and_no_drafting_notes(capsys):

    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for rule in wdscale.RULES.values():
        assert f"{rule.formula}\n" in out and f"source: {rule.source}\n" in out and rule.summary in out
    for note in ("seed", "question", "../", "Source:"):
        assert note not in out
    rules_py = Path(wdscale.rules.__file__).read_text()
    assert "../shared" not in rules_py and "references.md" not in rules_py


@pytest.fixture
def restore_rules():
    saved = dict(wdscale.RULES)
    yield
    wdscale.RULES.clear()
    wdscale.RULES.update(saved)


def halved_lr_rule(p, ctx):
    """A user's rule: half the lr on hidden matrices, the setting as λ everywhere."""
    return (ctx.lr / 2 if p.kind == "hidden" else ctx.lr), ctx.setting


def test_a_registered_rule_works_end_to_end(restore_rules, capsys):

    rule = wdscale.register_rule(
        wdscale.Rule(
            name="halved_hidden",
            fn=halved_lr_rule,
            summary="hidden lr halved, λ as given",
            formula="hidden: η/2, λ",
            source="a test of register_rule",
            mode="decoupled",
        )
    )
    assert wdscale.get_rule("halved_hidden") is rule
    groups = wdscale.param_groups(TinyMLP(16), rule="halved_hidden", lr=LR, weight_decay=LAM)
    by_kind = {g["kind"]: (g["lr"], g["weight_decay"]) for g in groups if g["weight_decay"] > 0}
    assert by_kind == {"input": (LR, LAM), "hidden": (LR / 2, LAM), "output": (LR, LAM)}
    opt = wdscale.optimizer(TinyMLP(16), "sgd", rule="halved_hidden", lr=LR, weight_decay=LAM, momentum=0.9)
    assert type(opt) is wdscale.SGDW  # its mode is decoupled
    assert {g["lr"] for g in opt.param_groups if g["kind"] == "hidden"} == {LR / 2}
    text = str(wdscale.explain(TinyMLP(16), rule="halved_hidden", lr=LR, weight_decay=LAM))
    assert "rule 'halved_hidden' (hidden: η/2, λ; decoupled decay, adamw)" in text
    assert "source: a test of register_rule" in text
    assert main(["rules"]) == 0
    assert "halved_hidden" in capsys.readouterr().out


def test_register_rule_refuses_a_name_clash_and_a_non_rule(restore_rules):
    clash = wdscale.Rule("mup", halved_lr_rule, "another mup", "η/2", "nowhere")
    with pytest.raises(wdscale.WdscaleError, match=r"a rule named 'mup' is registered already .*another name"):
        wdscale.register_rule(clash)
    assert wdscale.get_rule("mup").fn is not halved_lr_rule
    with pytest.raises(wdscale.WdscaleTypeError, match=r"register_rule takes a wdscale.Rule, got function"):
        wdscale.register_rule(halved_lr_rule)


def test_rule_fields_are_checked():
    with pytest.raises(
        wdscale.WdscaleError, match=r"Rule.mode='sideways' is not allowed: .*coupled, decoupled, optimizer"
    ):
        wdscale.Rule("x", halved_lr_rule, "s", "f", "src", mode="sideways")
    with pytest.raises(wdscale.WdscaleError, match=r"Rule.optimizers='lion' is not allowed"):
        wdscale.Rule("x", halved_lr_rule, "s", "f", "src", optimizers=("adamw", "lion"))
    with pytest.raises(wdscale.WdscaleError, match=r"Rule.source='' is not allowed"):
        wdscale.Rule("x", halved_lr_rule, "s", "f", "")
    with pytest.raises(wdscale.WdscaleTypeError, match=r"Rule.fn must be a function"):
        wdscale.Rule("x", 3.0, "s", "f", "src")


def test_needs_base_marks_exactly_the_width_rules():
    assert tuple(n for n, r in wdscale.RULES.items() if r.needs_base) == wdscale.WIDTH_RULES
    assert set(wdscale.WIDTH_RULES) == {"mup", "sqrt_width", "completep"}


def test_readme_core_samples_run(restore_rules):
    """README's Python samples for the core API (all but the Study one) run as written."""

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "Study(" not in b]
    assert any("register_rule" in b for b in blocks) and any("param_groups" in b for b in blocks)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert isinstance(namespace["opt"], torch.optim.Optimizer)
    assert "halved_hidden" in wdscale.RULES


def test_sqrt_width_leaves_vectors_undecayed_even_when_they_are_not_one_dimensional():
    """A ViT's class token (1×1×d) and position embedding (1×T×d) are vectors (one growing
    dimension), not matrices: the rule gives them λ = 0 unless decay_vectors=True (issue 23)."""
    pytest.importorskip("transformers")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from hf_models import vit

    model, base = vit(64), vit(32)
    names = {id(p): n for n, p in model.named_parameters()}

    def decay(**kw):
        groups = wdscale.param_groups(model, rule="sqrt_width", lr=1e-3, weight_decay=0.1, base=base, **kw)
        return {names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}

    off, on = decay(), decay(decay_vectors=True)
    for name in ("vit.embeddings.cls_token", "vit.embeddings.position_embeddings"):
        assert off[name] == 0.0 and on[name] == pytest.approx(0.1)
    hidden = "vit.layers.0.attention.q_proj.weight"
    assert off[hidden] == on[hidden] == pytest.approx(0.1 * (64 / 32) ** 0.5)  # λ ∝ √width on hidden matrices
