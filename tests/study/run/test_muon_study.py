"""Studies and tunes under optimizer "muon": Muon's runs take the sequential loop, by rule."""

import pytest
import torch

from wdscale.cli import main
from wdscale.study import StudyPlan, make_runs, run_study
from wdscale.study.plan.tasks import get_task
from wdscale.study.run.execution import Execution
from wdscale.study.run.store import Store
from wdscale.study.train.engine import choose_path

# digits MLP 64 → w → w → 10 (depth 2: one hidden w×w matrix for Muon), one pass over 320 samples
TINY_MUON = dict(
    task="digits_mlp", sizes=[8, 16], rules=["decoupled", "mup"], optimizer="muon", seeds=1, decades=1.0,
    points_per_decade=2, epochs=1, depth=2, n_train=320, batch_size=64,
)  # fmt: skip


def test_a_muon_study_trains_every_run_sequentially_with_the_rules_groups(tmp_path):
    plan = StudyPlan(**TINY_MUON)
    planned = make_runs(plan, get_task("digits_mlp"))
    summary = run_study(plan, tmp_path, execution=Execution(workers=1, batch=True, progress=False))
    assert summary.ran == len(planned) and set(summary.statuses) <= {"ok", "not_learned"}
    assert all(
        "sequential (the batched engine re-does sgd, adam, adamw steps only, not muon)" in n for n in summary.notes
    )
    df = Store(tmp_path / "runs.sqlite").frame()
    assert sorted(df.run_id) == sorted(c.run_id for c in planned) and (df.path == "sequential").all()
    assert (df.steps == 5).all()  # 320 / 64
    loss = df.set_index(["rule", "size", "setting"]).val_loss
    # at the base width mup's multipliers are 1: the same groups as decoupled, the same run
    for setting in df[df["size"] == 8].setting.unique():
        assert loss["mup", 8, setting] == pytest.approx(loss["decoupled", 8, setting], rel=1e-6)
    # at width 16 mup's Muon matrix takes lr/√2 (match_rms_adamw) and its readout lr/2: another run
    assert any(
        loss["mup", 16, s] != pytest.approx(loss["decoupled", 16, s], rel=1e-4) for s in df[df["size"] == 16].setting
    )


def test_choose_path_sends_muon_to_the_sequential_loop_and_adamw_is_unchanged():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    assert choose_path(model, "cpu", "muon")[0] == "sequential"
    assert choose_path(model, "cpu", "adamw")[0] != "sequential"


def test_a_muon_plan_with_a_coupled_rule_is_refused_by_name():
    with pytest.raises(ValueError, match=r"rule 'sum' is defined for sgd, adam, adamw, not optimizer 'muon' \(Muon"):
        make_runs(StudyPlan(**{**TINY_MUON, "rules": ["sum", "decoupled"]}), get_task("digits_mlp"))
    # no hidden matrix for Muon (depth 1: input and readout only): refused before any run
    with pytest.raises(ValueError, match=r"'muon' needs at least one 2-D hidden matrix"):
        make_runs(StudyPlan(**{**TINY_MUON, "depth": 1}), get_task("digits_mlp"))


def test_wdscale_tune_with_optimizer_muon(tmp_path, capsys):
    argv = (
        "tune --task digits_mlp --optimizer muon --target-width 64 --rules decoupled --decades 2 "
        "--points-per-decade 1 --lr-decades 1 --epochs 2 --depth 2 --budget 0.25 --workers 1 "
        f"--no-progress --out {tmp_path / 'tune'}"
    ).split()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recommended:" in out and 'wdscale.optimizer(model, "muon", rule="decoupled"' in out
