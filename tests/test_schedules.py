"""wdscale.schedules: hand-worked multipliers, equivalence with torch's LambdaLR, per-group lr ratios."""

import math

import pytest
import torch
from torch import nn

import wdscale
from conftest import TinyMLP
from wdscale.errors import WdscaleError
from wdscale.schedules import SCHEDULE_NAMES, Schedule, check_keeps_ratios, lr_scheduler

LRS, DECAYS = (1e-2, 4e-3), (0.1, 0.5)
CASES = [
    Schedule("constant", warmup=0.25),
    Schedule("cosine", warmup=0.1, final_lr=0.1),
    Schedule("linear", warmup=0.2),
    Schedule("wsd", warmup=0.1, final_lr=0.05, decay_fraction=0.3),
]


def two_group_adamw(seed: int = 0) -> tuple[nn.Linear, torch.optim.AdamW]:
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    groups = [
        {"params": [model.weight], "lr": LRS[0], "weight_decay": DECAYS[0]},
        {"params": [model.bias], "lr": LRS[1], "weight_decay": DECAYS[1]},
    ]
    return model, torch.optim.AdamW(groups)


def test_hand_worked_multipliers():
    cos = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]  # cosine to 0 over T − W = 8 steps
    assert Schedule("cosine", warmup=0.2).multipliers(10) == pytest.approx([1 / 3, 2 / 3, *cos], abs=1e-15)
    floor = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert Schedule("cosine", final_lr=0.1).multipliers(4) == pytest.approx(floor, abs=1e-15)
    assert Schedule("linear").multipliers(5) == pytest.approx([1, 0.8, 0.6, 0.4, 0.2], abs=1e-15)
    assert Schedule("linear", warmup=0.25).multipliers(8) == pytest.approx(
        [1 / 3, 2 / 3, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
    )
    assert Schedule("constant").multipliers(3) == [1.0, 1.0, 1.0]
    assert Schedule("constant", warmup=0.3).multipliers(10) == pytest.approx([1 / 4, 2 / 4, 3 / 4] + [1.0] * 7)
    # W = 2, D = 3: stable until step 7 (the decay's first step is still at the peak), then toward 0.1
    wsd = Schedule("wsd", warmup=0.2, final_lr=0.1, decay_fraction=0.3)
    assert wsd.multipliers(10) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1, 0.7, 0.4])
    # wsd with one decay phase over the whole run is the linear schedule
    assert Schedule("wsd", decay_fraction=1).multipliers(7) == Schedule("linear").multipliers(7)


def test_edge_steps():
    s = Schedule("cosine", warmup=0.5)
    assert s.multipliers(1) == [1.0]  # T = 1: no warmup step fits
    assert s.multipliers(2) == [0.5, 1.0]  # W = 1: half the peak, then cosine's first step
    assert Schedule("linear", warmup=0.01).multipliers(10)[:2] == [0.5, 1.0]  # warmup > 0 gives W >= 1
    assert Schedule("linear", warmup=0.999).multipliers(4) == pytest.approx([1 / 4, 2 / 4, 3 / 4, 1])  # W < T
    # past the end: the last step's value, not an error
    assert s.multiplier(10, 10) == s.multiplier(9, 10) == s.multiplier(50, 10)
    assert s.lr_lambda(10)(11) == s.multiplier(9, 10)
    for case in CASES:
        after = case.multipliers(40)[round(case.warmup * 40) :]
        assert all(a >= b for a, b in zip(after, after[1:])), case  # non-increasing after warmup
        assert min(after) > 0 and max(case.multipliers(40)) == 1.0


@pytest.mark.parametrize("schedule", CASES, ids=[c.name for c in CASES])
def test_lambda_lr_equals_a_manual_loop(schedule):
    total = 12
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    model_a, opt_a = two_group_adamw()
    sched = torch.optim.lr_scheduler.LambdaLR(opt_a, schedule.lr_lambda(total))
    model_b, opt_b = two_group_adamw()
    for t in range(total):
        for g, base in zip(opt_b.param_groups, LRS):
            g["lr"] = base * schedule.multiplier(t, total)
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        sched.step()
        for a, b in zip(model_a.parameters(), model_b.parameters()):
            assert torch.allclose(a, b)
    assert [g["lr"] for g in opt_a.param_groups] == [base * schedule.multiplier(total, total) for base in LRS]


@pytest.mark.parametrize("schedule", CASES, ids=[c.name for c in CASES])
def test_decoupled_decay_follows_the_scheduled_lr(schedule):
    total = 10
    model, opt = two_group_adamw()
    start = [p.detach().clone() for p in (model.weight, model.bias)]
    sched = lr_scheduler(opt, schedule, total)
    for _ in range(total):
        opt.zero_grad()
        (0 * sum(p.sum() for p in model.parameters())).backward()  # zero gradients: AdamW only shrinks
        opt.step()
        sched.step()
    for p, p0, lr, wd in zip((model.weight, model.bias), start, LRS, DECAYS):
        shrink = math.prod(1 - lr * m * wd for m in schedule.multipliers(total))
        assert shrink < 1 - 1e-3
        assert torch.allclose(p, p0 * shrink, rtol=1e-5, atol=0)


def test_lr_scheduler_keeps_group_ratios():
    total = 20
    model, opt = two_group_adamw()
    sched = lr_scheduler(opt, "cosine", total, warmup=0.1)
    schedule = Schedule("cosine", warmup=0.1)
    for t in range(total):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] / lrs[1] == pytest.approx(LRS[0] / LRS[1], rel=1e-12, abs=0)
        assert lrs == pytest.approx([base * schedule.multiplier(t, total) for base in LRS], rel=1e-15)
        check_keeps_ratios(opt, sched)
        check_keeps_ratios(opt, sched, base_lrs=LRS)
        opt.step()
        sched.step()


def test_one_cycle_with_one_max_lr_is_caught():
    total = 10
    _, opt = two_group_adamw()
    flat = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=total)
    with pytest.raises(WdscaleError, match=r"OneCycleLR moved the lr ratios.*group 1"):
        check_keeps_ratios(opt, flat, base_lrs=LRS)
    _, opt = two_group_adamw()
    per_group = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=list(LRS), total_steps=total)
    for _ in range(total):
        check_keeps_ratios(opt, per_group, base_lrs=LRS)
        check_keeps_ratios(opt, per_group)
        opt.step()
        per_group.step()


def test_check_keeps_ratios_reads_initial_lr_and_writes_nothing():
    _, opt = two_group_adamw()
    with pytest.raises(WdscaleError, match="initial_lr"):
        check_keeps_ratios(opt)  # no scheduler built yet: nothing to compare with
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [lambda t: 1.0, lambda t: 0.5 ** (t + 1)])
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    with pytest.raises(WdscaleError, match=r"LambdaLR .* 1 in group 0 but 0\.5 in group 1"):
        check_keeps_ratios(opt, sched)
    assert before == [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    with pytest.raises(WdscaleError, match="base_lrs has 1 values"):
        check_keeps_ratios(opt, base_lrs=[0.1])


def test_mean_multiplier():
    for case in [*CASES, Schedule("cosine"), Schedule("linear")]:
        values = case.multipliers(37)
        assert case.mean_multiplier(37) == pytest.approx(sum(values) / len(values), rel=1e-14)
    assert Schedule().mean_multiplier(1000) == 1.0
    assert Schedule("linear").mean_multiplier(10_000) == pytest.approx(0.5 + 1 / 20_000, rel=1e-12)
    assert Schedule("cosine", final_lr=0.2).mean_multiplier(10_000) == pytest.approx(0.6, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs,bad",
    [
        ({"name": "cosin"}, "'cosin'"),
        ({"warmup": 1.0}, "warmup=1.0"),
        ({"warmup": -0.1}, "warmup=-0.1"),
        ({"name": "cosine", "final_lr": 2}, "final_lr=2"),
        ({"name": "linear", "final_lr": 0.1}, "final_lr=0.1"),
        ({"final_lr": 0.1}, "final_lr=0.1"),
        ({"name": "wsd", "decay_fraction": 0}, "decay_fraction=0"),
        ({"name": "cosine", "decay_fraction": 0.5}, "decay_fraction=0.5"),
        ({"name": "wsd", "warmup": 0.5, "decay_fraction": 0.6}, "decay_fraction=0.6"),
        ({"warmup": "a"}, "'a'"),
        ({"warmup": True}, "True"),
        ({"name": "wsd", "final_lr": math.nan}, "nan"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(kwargs, bad):
    with pytest.raises(WdscaleError, match=bad.replace(".", r"\.")):
        Schedule(**kwargs)


def test_bad_steps_are_refused():
    s = Schedule("linear")
    for total in (0, -3, True, 2.5):
        with pytest.raises(WdscaleError, match=f"total_steps.*{total}"):
            s.multiplier(0, total)
        with pytest.raises(WdscaleError, match=f"total_steps.*{total}"):
            lr_scheduler(two_group_adamw()[1], "linear", total)
    for step in (-1, 1.5, "3", False):
        with pytest.raises(WdscaleError, match=f"step.*{step}"):
            s.multiplier(step, 10)
    with pytest.raises(WdscaleError, match="step=-1"):
        s.lr_lambda(10)(-1)
    with pytest.raises(WdscaleError, match="warmpu"):
        lr_scheduler(two_group_adamw()[1], "linear", 10, warmpu=0.1)
    with pytest.raises(WdscaleError, match="warmup"):
        lr_scheduler(two_group_adamw()[1], Schedule("linear"), 10, warmup=0.1)
    with pytest.raises(WdscaleError, match="optimizer"):
        lr_scheduler(nn.Linear(2, 2), "linear", 10)


def test_settings_are_plain_floats_and_describe_reads_well():
    s = Schedule("wsd", warmup=0, final_lr=1, decay_fraction=1)
    assert (type(s.warmup), type(s.final_lr), type(s.decay_fraction)) == (float, float, float)
    assert Schedule().is_constant and not Schedule(warmup=0.1).is_constant and not Schedule("linear").is_constant
    assert Schedule().describe() == "constant"
    assert Schedule(warmup=0.05).describe() == "constant after 5 % warmup"
    assert Schedule("cosine", warmup=0.05, final_lr=0.1).describe() == "cosine to 10 % after 5 % warmup"
    assert Schedule("linear", warmup=0.1).describe() == "linear to 0 after 10 % warmup"
    assert Schedule("wsd", warmup=0.05).describe() == "wsd: 5 % warmup, decay over the last 20 % to 0"
    assert Schedule("wsd", final_lr=0.01, decay_fraction=0.1).describe() == "wsd: decay over the last 10 % to 1 %"
    assert Schedule("cosine", 0.1, 0.1).as_dict() == {
        "schedule": "cosine",
        "warmup": 0.1,
        "final_lr": 0.1,
        "decay_fraction": 0.2,
    }
    assert {Schedule(name).describe().split()[0].rstrip(":") for name in SCHEDULE_NAMES} == set(SCHEDULE_NAMES)


def test_lr_scale_keeps_the_rules_ratios_in_a_loop_that_sets_lrs_and_is_checked_after_a_step():
    torch.manual_seed(0)
    model, base = TinyMLP(32), TinyMLP(8)
    opt = wdscale.optimizer(model, "adamw", rule="mup", lr=1e-2, weight_decay=0.1, base=base)
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert scales[0] == pytest.approx(0.25) and scales[-1] == 1.0  # hidden η / (32/8); vectors the base lr
    assert all(g["lr"] == pytest.approx(1e-2 * g["lr_scale"]) for g in opt.param_groups)

    def step(set_lr):
        for g in opt.param_groups:
            g["lr"] = set_lr(g)
        opt.zero_grad()
        model(torch.randn(5, 8)).pow(2).mean().backward()
        opt.step()

    step(lambda g: 3e-3 * g["lr_scale"])  # timm's convention: the ratios hold
    check_keeps_ratios(opt)
    # a state_dict round trip carries lr_scale into a fresh optimizer
    fresh = wdscale.optimizer(model, "adamw", rule="mup", lr=1e-2, weight_decay=0.1, base=base)
    fresh.load_state_dict(opt.state_dict())
    assert [g["lr_scale"] for g in fresh.param_groups] == [g["lr_scale"] for g in opt.param_groups]
    step(lambda g: 3e-3)  # nanoGPT's loop: every group the same lr
    with pytest.raises(WdscaleError, match=r'moved the lr ratios.*g\["lr"\] = lr \* g\["lr_scale"\]'):
        check_keeps_ratios(opt)
