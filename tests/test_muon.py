"""wdscale.optimizer(model, "muon", ...): torch's Muon on the 2-D hidden matrices, AdamW on the rest.

References are independent of wdscale: torch.optim.Muon and torch.optim.AdamW built by hand on
groups written out by hand, with the lrs and decays of the rules' formulas worked by hand.
"""

import copy
import io
import math

import pytest
import torch
from torch import nn

import wdscale
from conftest import TinyMLP
from wdscale import DataFacts, MuonWithAdamW, WdscaleError
from wdscale.cli import main


class DeepMLP(nn.Module):
    """8 -> w -> w -> 2w -> 3: hidden matrices w×w (square) and 2w×w (tall), all with biases."""

    def __init__(self, width: int):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.sq = nn.Linear(width, width)
        self.tall = nn.Linear(width, 2 * width)
        self.out = nn.Linear(2 * width, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(torch.relu(self.tall(torch.relu(self.sq(h)))))


def loss_of(model, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    return nn.functional.cross_entropy(model(x), y)


def hand_built(model, lr, wd, adjust_lr, m):
    """torch.optim.Muon + AdamW with the mup rule's groups written out by hand (base width = width/m).

    Spectral lr for Muon's matrices (both dims grow by m): "match_rms_adamw" lr/√m, "original" lr;
    λ times the inverse. AdamW side as μP Adam: input lr, λ; readout lr/m, λ·m; biases lr, no decay.
    """
    k = 1 / math.sqrt(m) if adjust_lr == "match_rms_adamw" else 1.0
    muon = torch.optim.Muon(
        [{"params": [model.sq.weight, model.tall.weight], "lr": lr * k, "weight_decay": wd / k}],
        adjust_lr_fn=adjust_lr,
    )
    biases = [model.inp.bias, model.sq.bias, model.tall.bias, model.out.bias]
    adamw = torch.optim.AdamW(
        [
            {"params": [model.inp.weight], "lr": lr, "weight_decay": wd},
            {"params": biases, "lr": lr, "weight_decay": 0.0},
            {"params": [model.out.weight], "lr": lr / m, "weight_decay": wd * m},
        ]
    )
    return muon, adamw


@pytest.mark.parametrize("adjust_lr", ["match_rms_adamw", "original"])
def test_steps_equal_torch_muon_and_adamw_built_by_hand(adjust_lr):
    torch.manual_seed(0)
    model = DeepMLP(32)
    ref_model = copy.deepcopy(model)
    opt = wdscale.optimizer(model, "muon", rule="mup", lr=0.01, weight_decay=0.1, base=DeepMLP(8), adjust_lr=adjust_lr)
    assert isinstance(opt, MuonWithAdamW) and isinstance(opt, torch.optim.Optimizer)
    muon, adamw = hand_built(ref_model, 0.01, 0.1, adjust_lr, m=4)
    for step in range(3):
        for mdl, opts in ((model, [opt]), (ref_model, [muon, adamw])):
            for o in opts:
                o.zero_grad()
            loss_of(mdl, step).backward()
            for o in opts:
                o.step()
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-7), name
    moved = model.sq.weight - DeepMLP(32).sq.weight  # it did train
    assert moved.abs().max() > 0


def test_groups_say_who_trains_them_and_muon_takes_only_the_2d_hidden_matrices():
    model = DeepMLP(16)
    groups = wdscale.param_groups(model, rule="decoupled", lr=0.02, weight_decay=0.1, optimizer="muon")
    by_opt = {g["optimizer"]: [] for g in groups}
    for g in groups:
        by_opt[g["optimizer"]] += g["names"]
    assert sorted(by_opt["muon"]) == ["sq.weight", "tall.weight"]
    assert sorted(by_opt["adamw"]) == sorted(n for n, _ in model.named_parameters() if n not in by_opt["muon"])
    assert [g["optimizer"] for g in groups][0] == "muon"  # Muon's first, as MuonWithAdamW keeps them
    muon_groups = [g for g in groups if g["optimizer"] == "muon"]
    assert all(g["adjust_lr_fn"] == "match_rms_adamw" for g in muon_groups)
    # a user's own pair from these groups is a working torch.optim.Muon
    torch.optim.Muon(muon_groups)
    opt = wdscale.optimizer(model, "muon", rule="decoupled", lr=0.02, weight_decay=0.1)
    assert opt.param_groups[: len(opt.muon.param_groups)] == opt.muon.param_groups


def test_timescale_under_muon_holds_tau_at_the_groups_lr_and_a_zero_gradient_step_only_decays():
    """τ = 1/(η_g λ_g) steps = τ_epoch·N/B in every group, Muon's included; torch's Muon decays with the
    group's lr (not the adjusted one), so a step with a zero gradient shrinks each weight by 1 − η_g λ_g."""
    data = DataFacts(n_samples=1000, batch_size=50, epochs=10)
    model = DeepMLP(32)
    opt = wdscale.optimizer(model, "muon", rule="timescale", lr=0.01, tau=2.0, data=data, base=DeepMLP(8))
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    assert {g["optimizer"] for g in decayed} == {"muon", "adamw"}
    for g in decayed:
        assert 1 / (g["lr"] * g["weight_decay"]) == pytest.approx(2.0 * 1000 / 50)
    muon_lr = next(g["lr"] for g in opt.param_groups if g["optimizer"] == "muon")
    assert muon_lr == pytest.approx(0.01 / 2)  # match_rms_adamw: 1/√m at m = 4
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for g in opt.param_groups:
        for name, p in zip(g["names"], g["params"]):
            assert torch.allclose(p, before[name] * (1 - g["lr"] * g["weight_decay"]), rtol=0, atol=1e-7), name


def test_independent_under_muon_gives_every_group_the_same_per_step_decay():
    opt = wdscale.optimizer(DeepMLP(32), "muon", rule="independent", lr=0.01, weight_decay=1e-3)
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    assert any(g["optimizer"] == "muon" for g in decayed)
    assert all(g["lr"] * g["weight_decay"] == pytest.approx(1e-3) for g in decayed)


def test_spectral_lr_of_a_muon_matrix_follows_its_shape():
    """(√(fo/fi)/s(A,B)) / (√(fo₀/fi₀)/s(A₀,B₀)) worked by hand for a square and a tall matrix."""
    for adjust, expected in (("match_rms_adamw", {"sq": 1 / 2, "tall": 1 / 2}), ("original", {"sq": 1, "tall": 1})):
        groups = wdscale.param_groups(
            DeepMLP(64), rule="mup", lr=1.0, weight_decay=0.1, base=DeepMLP(16), optimizer="muon", adjust_lr=adjust
        )
        lrs = {n.split(".")[0]: g["lr"] for g in groups for n in g["names"] if g["optimizer"] == "muon"}
        assert lrs == pytest.approx(expected), adjust


def test_per_group_lr_ratios_survive_lambdalr_and_wdscale_lr_scheduler():
    model = DeepMLP(32)
    for make in (
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 0.5 ** (s + 1)),
        lambda o: wdscale.lr_scheduler(o, wdscale.Schedule("cosine", warmup=0.2), total_steps=10),
    ):
        opt = wdscale.optimizer(model, "muon", rule="mup", lr=0.01, weight_decay=0.1, base=DeepMLP(8))
        initial = [g["lr"] for g in opt.param_groups]
        assert len(set(initial)) > 2  # the rule gave different lrs
        sched = make(opt)
        for _ in range(3):
            loss_of(model, 0).backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        ratios = [g["lr"] / lr0 for g, lr0 in zip(opt.param_groups, initial)]
        assert max(ratios) == pytest.approx(min(ratios)) and ratios[0] != pytest.approx(1.0)
        # the inner optimizers see the scheduled lrs: they hold the same group dicts
        inner = opt.muon.param_groups + opt.adamw.param_groups
        assert [g["lr"] for g in inner] == [g["lr"] for g in opt.param_groups]


def test_state_dict_round_trip_continues_exactly():
    torch.manual_seed(1)
    model = DeepMLP(16)
    opt = wdscale.optimizer(model, "muon", rule="decoupled", lr=0.02, weight_decay=0.1, betas=(0.8, 0.95))
    for s in range(2):
        opt.zero_grad()
        loss_of(model, s).backward()
        opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    twin = copy.deepcopy(model)
    twin_opt = wdscale.optimizer(twin, "muon", rule="decoupled", lr=0.02, weight_decay=0.1, betas=(0.8, 0.95))
    buf.seek(0)
    twin_opt.load_state_dict(torch.load(buf))
    assert set(twin_opt.state_dict()["state"]) == set(range(len(list(model.parameters()))))
    assert twin_opt.muon.state is twin_opt.state and twin_opt.adamw.state is twin_opt.state
    assert twin_opt.muon.param_groups[0] is twin_opt.param_groups[0]
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        loss_of(m, 5).backward()
        o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)  # same process, same ops: the loaded momentum and moments carried on
    # a fresh optimizer that did not load diverges from it (the state mattered)
    fresh = copy.deepcopy(twin)
    fresh_opt = wdscale.optimizer(fresh, "muon", rule="decoupled", lr=0.02, weight_decay=0.1)
    loss_of(fresh, 6).backward()
    fresh_opt.step()
    twin_opt.zero_grad()
    loss_of(twin, 6).backward()
    twin_opt.step()
    assert not torch.equal(fresh.sq.weight, twin.sq.weight)


def test_step_hooks_zero_grad_closure_and_copy():
    model = DeepMLP(8)
    opt = wdscale.optimizer(model, "muon", rule="decoupled", lr=0.02, weight_decay=0.1)
    steps = []
    opt.register_step_post_hook(lambda o, args, kwargs: steps.append(1))
    loss = opt.step(lambda: loss_of(model, 0).backward() or loss_of(model, 0))
    assert len(steps) == 1 and loss is not None
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    clone = copy.deepcopy(opt)
    assert clone.muon.param_groups[0] is clone.param_groups[0] and clone.muon.state is clone.state
    with pytest.raises(WdscaleError, match="cannot add a parameter group"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, 2))], "optimizer": "muon"})


@pytest.mark.parametrize(
    "model,kwargs,match",
    [
        (DeepMLP(16), dict(rule="sum", weight_decay=0.1), r"rule 'sum' has no meaning for optimizer 'muon': it is "),
        (DeepMLP(16), dict(rule="mean", weight_decay=0.1), r"rule 'mean' has no meaning .*rules for 'muon': decoupled"),
        (
            DeepMLP(16),
            dict(rule="sqrt_width", weight_decay=0.1, base=DeepMLP(8)),
            r"rule 'sqrt_width' has no meaning for optimizer 'muon'",
        ),
        (
            nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)),
            dict(rule="decoupled", weight_decay=0.1),
            r"'muon' needs at least one 2-D hidden matrix .* and the model has none",
        ),
        (DeepMLP(16), dict(rule="decoupled", weight_decay=0.1, adjust_lr="rms"), r"unknown adjust_lr 'rms'"),
    ],
)
def test_bad_input_is_one_clear_error(model, kwargs, match):
    with pytest.raises(WdscaleError, match=match):
        wdscale.optimizer(model, "muon", lr=0.01, **kwargs)


def test_adjust_lr_without_muon_and_bad_groups_are_refused():
    with pytest.raises(
        WdscaleError, match=r"adjust_lr='original' is Muon's lr adjustment, but the optimizer is 'adamw'"
    ):
        wdscale.param_groups(TinyMLP(8), rule="decoupled", lr=0.01, weight_decay=0.1, adjust_lr="original")
    with pytest.raises(WdscaleError, match=r"parameter group 0 has 'optimizer': None"):
        MuonWithAdamW([{"params": [nn.Parameter(torch.zeros(2, 2))]}])
    with pytest.raises(WdscaleError, match=r"marked 'muon' but holds a tensor of shape \(2, 2, 2\)"):
        MuonWithAdamW([{"params": [nn.Parameter(torch.zeros(2, 2, 2))], "optimizer": "muon"}])
    with pytest.raises(WdscaleError, match="no parameter group is marked 'muon'"):
        MuonWithAdamW([{"params": [nn.Parameter(torch.zeros(2))], "optimizer": "adamw"}])
    with pytest.raises(TypeError, match=r"does not take 'dampening'"):
        wdscale.optimizer(TinyMLP(8), "muon", rule="decoupled", lr=0.01, weight_decay=0.1, dampening=0.1)


def test_explain_shows_every_group_with_its_optimizer_and_muons_update_lr(capsys):
    table = wdscale.explain(DeepMLP(16), rule="decoupled", lr=0.02, weight_decay=0.1, optimizer="muon")
    rows = {r.name: r for r in table.rows}
    assert rows["sq.weight"].trained_by == "muon" and rows["inp.weight"].trained_by == "adamw"
    assert rows["tall.weight"].update_lr == pytest.approx(0.02 * 0.2 * math.sqrt(32))  # 0.2·√max(32, 16)
    assert rows["inp.weight"].update_lr is None
    assert rows["sq.weight"].tau_steps == pytest.approx(1 / (0.02 * 0.1))  # the decay's lr, unadjusted
    text = str(table)
    assert "'match_rms_adamw'" in text and "update lr" in text
    groups = wdscale.param_groups(DeepMLP(16), rule="decoupled", lr=0.02, weight_decay=0.1, optimizer="muon")
    assert {r.group for r in table.rows} == set(range(len(groups)))
    for r in table.rows:
        assert r.name in groups[r.group]["names"]
    code = main(
        "explain --model mnist1d_mlp --width 32 --rule decoupled --lr 0.01 "
        "--weight-decay 0.1 --optimizer muon --adjust-lr original".split()
    )
    out = capsys.readouterr().out
    assert code == 0 and "'original'" in out and "muon" in out
    assert (
        main("explain --model mnist1d_mlp --width 32 --rule sum --lr 0.01 --weight-decay 0.1 --optimizer muon".split())
        == 2
    )
    assert "rule 'sum' has no meaning for optimizer 'muon'" in capsys.readouterr().err


def test_hf_trainer_steps_muon_with_its_scheduler(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments, get_cosine_schedule_with_warmup

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = DeepMLP(16)

        def forward(self, x, labels):
            return {"loss": nn.functional.cross_entropy(self.net(x), labels)}

    torch.manual_seed(0)
    model = Wrapped()
    g = torch.Generator().manual_seed(0)
    data = [{"x": torch.randn(8, generator=g), "labels": torch.tensor(i % 3)} for i in range(32)]
    opt = wdscale.optimizer(model, "muon", rule="mup", lr=0.01, weight_decay=0.1, base=Wrapped())
    initial = [grp["lr"] for grp in opt.param_groups]
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=8)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    before = model.net.sq.weight.detach().clone()
    Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, sched)).train()
    ratios = [grp["lr"] / lr0 for grp, lr0 in zip(opt.param_groups, initial)]
    assert max(ratios) == pytest.approx(min(ratios)) and 0 < ratios[0] < 1
    assert not torch.equal(before, model.net.sq.weight)  # Muon's matrices trained


def test_rules_command_says_which_rules_take_muon(capsys):
    assert main(["rules"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line and not line[0].isspace()}
    assert "sgd, adam, adamw, muon]" in lines["decoupled"] and "sgd, adam, adamw, muon]" in lines["mup"]
    assert "muon" not in lines["sum"] and "muon" not in lines["sqrt_width"]
