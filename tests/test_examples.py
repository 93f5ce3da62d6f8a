"""The examples under examples/ run on tiny configs and do what they say."""

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
import wdscale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_name(groups, names_of):
    return {names_of[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_hf_trainer_trains_with_wdscales_groups(tmp_path):
    pytest.importorskip("accelerate")
    example = load("hf_trainer")
    trainer = example.main(steps=6, out_dir=str(tmp_path))
    model = trainer.model
    names_of = {id(p): n for n, p in model.named_parameters()}
    expected = wdscale.param_groups(model, rule="mup", lr=3e-3, weight_decay=0.1, base=example.gpt2(32))
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert by_name(opt.param_groups, names_of) == by_name(expected, names_of)
    hidden = next(g for g in opt.param_groups if g["kind"] == "hidden")
    assert hidden["lr"] == pytest.approx(3e-3 / 2) and hidden["weight_decay"] == pytest.approx(0.2)  # m = 64/32
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 6 and losses[-1] < 0.95 * losses[0]


def test_lightning_style_configure_optimizers_holds_tau_in_every_group():
    example = load("lightning_style")
    module, losses = example.main(width=64, base_width=32, epochs=3)
    opt = module.configure_optimizers()
    steps_per_epoch = 32 / 8
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    assert decayed and type(opt).__name__ == "AdamW"
    for g in decayed:  # τ in epochs = 1 / (η_g λ_g) / (N / B), the rule's promise
        assert 1 / (g["lr"] * g["weight_decay"]) / steps_per_epoch == pytest.approx(5.0)
    hidden = [g["lr"] for g in opt.param_groups if g["kind"] == "hidden"]
    assert hidden and all(lr == pytest.approx(3e-3 / 2) for lr in hidden)  # μP lr at m = 64/32
    per_epoch = [sum(losses[i : i + 4]) / 4 for i in range(0, 12, 4)]
    assert per_epoch[-1] < per_epoch[0]


def test_docs_explain_output_is_what_the_command_prints(monkeypatch, capsys):
    """docs/real-models.md shows `wdscale explain` output; it must be what that command prints now."""
    from wdscale.cli import main

    text = (ROOT / "docs" / "real-models.md").read_text()
    blocks = re.findall(r"```\n\$ (wdscale explain [^\n]+)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(ROOT)  # the commands are run from the repository root
    for command, shown in blocks:
        assert main(command.split()[1:]) == 0, command
        assert capsys.readouterr().out.strip() == shown.strip(), command
