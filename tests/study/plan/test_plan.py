import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
from torch import nn

from wdscale.errors import WdscaleError
from wdscale.study.plan.study_plan import StudyPlan, load_plan_file, make_runs, preset, resolve
from wdscale.study.plan.tasks import get_task

FINDINGS = Path(__file__).parents[3] / "docs" / "findings"

TASK = get_task("mnist1d_mlp")


def test_quick_preset_meets_the_study_requirements():
    runs = make_runs(preset("quick"), TASK)
    sizes = sorted({c.size for c in runs})
    assert sizes[-1] / sizes[0] >= 16
    assert len({c.seed for c in runs}) >= 3
    for rule in {c.rule for c in runs}:
        grid = sorted({c.setting for c in runs if c.rule == rule})
        per_decade = (len(grid) - 1) / math.log10(grid[-1] / grid[0])
        assert per_decade >= 3.9, (rule, grid)
    assert len({c.run_id for c in runs}) == len(runs)  # every run has its own key


def test_grids_are_placed_on_the_same_effective_decay():
    """sum's λ and mean's λ/P and timescale's τ all map to the same hidden decay at the base size."""
    plan = StudyPlan(sizes=[32, 512], rules=["sum", "mean", "decoupled", "timescale"], optimizer="sgd", epochs=10)
    runs = make_runs(plan, TASK)
    grid = {r: sorted({c.setting for c in runs if c.rule == r}) for r in plan.rules}
    # the weak ends (the strong ends stop short of zero shrink, which differs by rule's groups)
    mid = {r: g[-1] if r == "timescale" else g[0] for r, g in grid.items()}
    assert mid["sum"] == pytest.approx(mid["decoupled"], rel=1e-3)
    model = TASK.make_model(32)
    p = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert mid["mean"] == pytest.approx(mid["sum"] * p, rel=1e-3)
    r = resolve(plan, TASK)
    steps_per_epoch = r.n_train / r.batch_size
    assert mid["timescale"] == pytest.approx(1 / (r.lr * mid["sum"] * steps_per_epoch), rel=1e-3)


def test_default_grids_are_placed_for_the_run_from_too_weak_to_too_strong():
    """τ = 1/(η·λ) of the hidden weights from 100× the run to a thirtieth of it (never under 2
    steps), whatever the run's length: a 4-step run and a 400-step one."""
    for epochs, n_train in ((1, 200), (10, 2000)):
        plan = StudyPlan(sizes=[32, 64], rules=["decoupled", "timescale"], epochs=epochs, n_train=n_train, lr=0.01)
        r = resolve(plan, TASK)
        steps = epochs * math.ceil(n_train / r.batch_size)
        runs = make_runs(plan, TASK)
        lam = sorted({c.setting for c in runs if c.rule == "decoupled"})
        tau = sorted({c.setting for c in runs if c.rule == "timescale"})
        # decoupled: every group at lr with weight_decay λ, so τ in steps = 1/(lr·λ)
        assert 1 / (0.01 * lam[0]) == pytest.approx(100 * steps, rel=1e-3)
        assert 1 / (0.01 * lam[-1]) <= max(steps / 30, 2 * 10**0.25)
        assert 1 / (0.01 * lam[-1]) >= 2
        assert len(lam) == len(tau) and len(lam) >= 9


def test_committed_and_centred_plans_keep_their_grids():
    """A plan that gives anchor_total_decay (every stored and preset plan) is centred there, as before."""
    plan = StudyPlan(sizes=[32, 64], rules=["decoupled"], epochs=2, lr=0.01, anchor_total_decay=3.0, decades=2.0)
    r = resolve(plan, TASK)
    steps = 2 * math.ceil(r.n_train / r.batch_size)
    lam = sorted({c.setting for c in make_runs(plan, TASK)})
    assert len(lam) == 9 and lam[4] == pytest.approx(3 / (0.01 * steps), rel=1e-3)
    stored = json.loads((Path(__file__).parents[3] / "docs/findings/full/plan.json").read_text())
    assert not StudyPlan.from_stored(stored).placed_for_run and not preset("quick").placed_for_run


def test_extend_adds_decades_of_stronger_decay_at_one_end():
    """+1 decade on mean adds 4 larger λ; on timescale it adds 4 smaller τ (stronger decay too)."""
    base = StudyPlan(sizes=[32, 64], rules=["mean", "timescale", "sum"], epochs=2, decades=2.0, shrink_cap=False)
    wide = StudyPlan(
        sizes=[32, 64],
        rules=["mean", "timescale", "sum"],
        epochs=2,
        decades=2.0,
        shrink_cap=False,
        extend={"mean": 1.0, "timescale": 1.0, "sum": -0.5},
    )
    grids = [{r: sorted({c.setting for c in make_runs(p, TASK) if c.rule == r}) for r in p.rules} for p in (base, wide)]
    old, new = grids
    assert new["mean"][: len(old["mean"])] == old["mean"]
    assert len(new["mean"]) == len(old["mean"]) + 4
    assert new["mean"][-1] == pytest.approx(old["mean"][-1] * 10, rel=1e-3)
    assert new["timescale"][-len(old["timescale"]) :] == old["timescale"]
    assert new["timescale"][0] == pytest.approx(old["timescale"][0] / 10, rel=1e-3)
    assert new["sum"][0] == pytest.approx(old["sum"][0] / 10**0.5, rel=1e-3)
    assert new["sum"][-1] == old["sum"][-1]


def test_size_axes_set_the_right_knob():
    runs = make_runs(StudyPlan(size_axis="n_train", sizes=[250, 4000], rules=["sum"], seeds=1, width=64), TASK)
    assert {(c.n_train, c.width, c.base_width) for c in runs} == {(250, 64, 64), (4000, 64, 64)}
    runs = make_runs(StudyPlan(size_axis="depth", sizes=[1, 4], rules=["completep"], seeds=1), TASK)
    assert {(c.depth, c.base_depth) for c in runs} == {(1, 1), (4, 1)}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rules=[]), "no rules: the grid is empty"),
        (dict(rules=["sum", "nope"]), "unknown rule 'nope'"),
        (dict(task="nope"), "unknown task 'nope'"),
        (dict(optimizer="lion"), "unsupported optimizer 'lion'"),
        (dict(sizes=[32, -64]), "sizes=-64 is not allowed: sizes must be a positive integer"),
        (dict(sizes=[32, 0]), "sizes=0 is not allowed"),
        (dict(sizes=[64]), "at least two sizes"),
        (dict(sizes=[]), "give sizes"),
        (dict(size_axis="height"), "unknown size axis 'height'"),
        (dict(settings={"sum": [0.1, -1.0, 1.0]}), r"settings\['sum'\]=-1.0 is not allowed"),
        (dict(settings={"sum": [0.1, 0.0, 1.0]}), r"settings\['sum'\]=0.0 is not allowed"),
        (dict(settings={"sum": [0.1, 1.0]}), "at least 3 values"),
        (dict(settings={"mean": [0.1, 0.2, 1.0]}, rules=["sum"]), "rule\\(s\\) not in the plan: mean"),
        (dict(seeds=0), "seeds must be a positive integer"),
        (dict(extend={"per_sample": 2.0}), "extend names rule 'per_sample', which is not in the plan"),
        (dict(extend={"mean": 0}), r"extend\['mean'\] must be a non-zero number of decades, got 0"),
        (dict(lr=-1.0), "lr must be a finite number > 0"),
        (dict(rules=["sqrt_width"], optimizer="sgd"), "'sqrt_width' is defined for adam, adamw"),
    ],
)
def test_bad_plans_fail_before_any_run(kwargs, match):
    task = TASK
    if "task" in kwargs:
        with pytest.raises(ValueError, match=match):
            get_task(kwargs["task"])
        return
    with pytest.raises(ValueError, match=match):
        make_runs(StudyPlan(**kwargs), task)


def test_model_fn_failing_at_some_width_is_named():
    def model_fn(width, depth):
        if width > 100:
            raise RuntimeError("out of memory")
        return nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, 10))

    with pytest.raises(ValueError, match=r"model factory failed at width=128: RuntimeError: out of memory"):
        make_runs(StudyPlan(sizes=[32, 128], rules=["sum"]), TASK, model_fn)


def test_wrong_setups_are_refused_before_any_run():
    mlp = lambda width, depth: nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, 10))  # noqa: E731
    # a model_fn that ignores its width: every size the same model
    with pytest.raises(
        WdscaleError, match=r"ignores its width: the model has 3,274 parameters at every width \[32, 128\]"
    ):
        make_runs(StudyPlan(sizes=[32, 128], rules=["sum"]), TASK, lambda width, depth: mlp(64, depth))
    # a base larger than the model, named with both; a base equal to the smallest size is the base
    with pytest.raises(WdscaleError, match=r"base_size=64 is larger than the model at width 32"):
        make_runs(StudyPlan(sizes=[32, 128], rules=["sum"], base_size=64), TASK, mlp)
    assert make_runs(StudyPlan(sizes=[32, 128], rules=["sum"], base_size=32), TASK, mlp)


def test_plan_files_toml_and_yaml(tmp_path):
    (tmp_path / "p.toml").write_text('task = "digits_mlp"\nsizes = [32, 512]\nrules = ["sum", "mup"]\nseeds = 2\n')
    (tmp_path / "p.yaml").write_text("task: digits_mlp\nsizes: [32, 512]\nrules: [sum, mup]\nseeds: 2\n")
    assert load_plan_file(tmp_path / "p.toml") == load_plan_file(tmp_path / "p.yaml")
    (tmp_path / "bad.toml").write_text("sizez = [1, 2]\n")
    with pytest.raises(ValueError, match="unknown plan key\\(s\\) 'sizez'"):
        StudyPlan.from_dict(load_plan_file(tmp_path / "bad.toml"))
    with pytest.raises(ValueError, match="does not exist"):
        load_plan_file(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", sorted(__import__("wdscale.study.plan.study_plan", fromlist=["PRESETS"]).PRESETS))
def test_every_preset_plans_a_valid_grid(name):
    plan = preset(name)
    runs = make_runs(plan, get_task(plan.task))
    sizes = sorted({c.size for c in runs})
    # a joint preset's coarse lr × setting grid has 2 seeds; `refine` adds them where it matters
    joint = len({c.lr for c in runs}) > 1
    assert sizes[-1] / sizes[0] >= 4 and len({c.seed for c in runs}) >= (2 if joint else 3)
    # a one-pass width study spans what the text allows at its budget (4x: docs/findings.md §9)
    if plan.size_axis in ("width", "n_train", "batch_size") and plan.tokens_per_param is None:
        assert sizes[-1] / sizes[0] >= (8 if joint else 16)
    if joint:
        assert len({c.lr for c in runs}) >= 3 and resolve(plan, get_task(plan.task)).lr in {c.lr for c in runs}


def test_planning_leaves_cached_task_data_usable():
    """Planning builds every model; a model_fn that loads and caches data while it builds (the
    char transformer reads its vocabulary) must leave real tensors in the cache, not meta ones."""
    from wdscale.study.plan import tasks

    tasks._DATA_CACHE.clear()
    for fn in (tasks._shakespeare_corpus, tasks.shakespeare_vocab):
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
    make_runs(preset("shakespeare_width"), get_task("shakespeare_char"))
    data = get_task("shakespeare_char").load(0)
    assert data.x_train.device.type == "cpu" and int(data.x_train[:2].sum()) >= 0


def test_cli_extend_flag_adds_to_the_presets_extension(capsys):
    from wdscale.cli import build_parser
    from wdscale.study.cli import build_plan

    args = build_parser().parse_args(["study", "run", "--out", "x", "--preset", "full", "--extend", "sum=-1, mean=2"])
    assert build_plan(args).extend == {"mean": 2.0, "sum": -1.0}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["study", "run", "--out", "x", "--extend", "mean:2"])
    err = capsys.readouterr().err
    assert "expected RULE=DECADES" in err and "'mean:2'" in err


def test_refined_points_add_settings_and_seeds_and_are_checked():
    plan = StudyPlan(sizes=[32, 64], rules=["sum"], seeds=2, epochs=2, settings={"sum": [0.01, 0.1, 1.0]})
    base = make_runs(plan, TASK)
    plan.refined = {"sum@64": [[0.1, 4], [0.2154, 2]], "sum@32": [[0.1, 1]]}
    runs = make_runs(plan, TASK)
    assert {c.run_id for c in base} <= {c.run_id for c in runs}  # a refined plan only grows
    at: dict = {}
    for c in runs:
        at.setdefault((c.size, c.setting), []).append(c.seed)
    assert at[(64, 0.1)] == [0, 1, 2, 3] and at[(64, 0.2154)] == [0, 1] and at[(32, 0.1)] == [0, 1]
    assert (32, 0.2154) not in at
    sixty_four = [c.setting for c in runs if c.size == 64 and c.seed == 0]
    assert sixty_four == sorted(sixty_four)  # settings in order, fine points among the coarse ones
    for refined, match in [
        ({"mean@64": [[0.1, 2]]}, "refined names 'mean@64'"),
        ({"sum@128": [[0.1, 2]]}, "refined names 'sum@128'"),
        ({"sum@64": [[0.1]]}, r"each point is \[setting, seeds\]"),
        ({"sum@64": [[-0.1, 2]]}, "setting=-0.1 is not allowed"),
        ({"sum@64": [[0.1, 0]]}, "seeds=0 is not allowed"),
    ]:
        plan.refined = refined
        with pytest.raises(ValueError, match=match):
            make_runs(plan, TASK)


def test_the_fixed_lr_has_one_definition_for_plans_and_stored_runs():
    from wdscale.study.plan.study_plan import fixed_lr, resolve

    assert fixed_lr([0.1, 0.01, 0.001], 0.02) == 0.01  # nearest in log, not in value
    assert fixed_lr([0.1, 0.01, 0.001]) == 0.01  # no base lr known: the centre
    assert fixed_lr([0.1, 0.01, 0.001, 0.0001]) == 0.001  # the lower of two middles
    plan = StudyPlan(task="digits_mlp", sizes=[8, 16], rules=["sum"], lr=0.01, lr_decades=2, lr_points_per_decade=1)
    r = resolve(plan, get_task("digits_mlp"))
    assert fixed_lr(r.lrs, r.lr) == 0.01


@pytest.mark.parametrize(
    "change",
    [{"seeds": 10**9}, {"points_per_decade": 10**7}, {"decades": 1e8}, {"lr_decades": 1e7}, {"extend": {"sum": 1e9}}],
    ids=["seeds", "points_per_decade", "decades", "lr_decades", "extend"],
)
def test_a_grid_of_billions_is_refused_before_it_is_built(change):
    """Issue 21, item 5: these used to build billions of configs (a MemoryError after a minute).
    `resolve` refuses them: it checks the plan and builds no grid, so the count comes from the
    plan's dimensions alone (a grid of more than 30 decades is refused before it is counted)."""
    plan = StudyPlan(task="digits_mlp", sizes=[8, 16], rules=["sum"], **change)
    with pytest.raises(WdscaleError, match=r"more than max_runs=200,000|a grid spans at most 30 decades"):
        resolve(plan, get_task("digits_mlp"))


def test_max_runs_lets_a_large_plan_through_when_asked():
    plan = StudyPlan(task="digits_mlp", sizes=[8, 16], rules=["sum"], seeds=3, decades=1, points_per_decade=2)
    with pytest.raises(WdscaleError, match="about 18 runs"):
        make_runs(dataclasses.replace(plan, max_runs=10), get_task("digits_mlp"))
    assert len(make_runs(plan, get_task("digits_mlp"))) == 18


def test_tokens_per_param_gives_each_size_its_one_pass_budget():
    # the budget worked by hand: n_train = TPP × P / tokens per sample, P counted here independently
    task = get_task("shakespeare_char")
    plan = StudyPlan(task="shakespeare_char", sizes=[8, 16], rules=["mup"], tokens_per_param=20.0, seeds=1)
    runs = make_runs(plan, task)
    for width in (8, 16):
        n_params = sum(p.numel() for p in task.make_model(width).parameters())
        n_train = {c.n_train for c in runs if c.size == width}
        assert n_train == {round(20.0 * n_params / 64)}
    assert {c.epochs for c in runs} == {1}
    # the centred grid is placed at the base size's budget: a larger budget gives a smaller λ
    wider = make_runs(dataclasses.replace(plan, tokens_per_param=80.0), task)
    assert min(c.setting for c in wider) < min(c.setting for c in runs)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(epochs=3), "epochs must be 1"),
        (dict(tokens_per_param=0.0), "tokens_per_param"),
        (dict(size_axis="n_train", sizes=[500, 1000], width=16), "size axis cannot be n_train"),
    ],
)
def test_a_bad_token_budget_is_refused_naming_it(change, match):
    plan = StudyPlan(task="shakespeare_char", sizes=[8, 16], rules=["mup"], tokens_per_param=20.0, seeds=1)
    with pytest.raises(WdscaleError, match=match):
        make_runs(dataclasses.replace(plan, **change), get_task("shakespeare_char"))


def test_a_budget_beyond_the_data_is_refused_naming_the_size(tmp_path):
    from wdscale.study.run.runner import run_study

    plan = StudyPlan(task="shakespeare_char", sizes=[8, 48], rules=["mup"], tokens_per_param=20.0, seeds=1)
    with pytest.raises(WdscaleError, match=r"n_train=20691 at width=48 \(tokens_per_param=20\) is more than the 16287"):
        run_study(plan, tmp_path / "s")
    assert not (tmp_path / "s" / "runs.sqlite").exists()


def test_the_centred_grid_stops_where_the_per_step_shrink_factor_reaches_zero():
    # a short run (1 epoch of 4 steps): the grid centred on a total decay of 3 reaches lr·λ ≥ 1
    task = get_task("mnist1d_mlp")
    plan = StudyPlan(
        sizes=[16, 64], rules=["decoupled", "timescale"], epochs=1, n_train=512, batch_size=128, seeds=1,
        anchor_total_decay=3.0,
    )  # fmt: skip
    capped = {c.setting for c in make_runs(plan, task) if c.rule == "decoupled"}
    full = {c.setting for c in make_runs(dataclasses.replace(plan, shrink_cap=False), task) if c.rule == "decoupled"}
    lr = resolve(plan, task).lr
    assert capped == {s for s in full if lr * s < 1} and len(capped) < len(full)  # decoupled: η_g λ_g = lr·λ
    taus = {c.setting for c in make_runs(plan, task) if c.rule == "timescale"}
    assert min(taus) > 1 / 4  # timescale: η_g λ_g = 1 / (τ · steps per epoch) < 1


def test_a_stored_plan_keeps_the_grid_it_was_run_with():
    # plans stored before the cap read shrink_cap False, and so do the committed studies' presets
    stored = json.loads((Path(__file__).parents[3] / "docs/findings/full/plan.json").read_text())
    assert "shrink_cap" not in stored and StudyPlan.from_stored(stored).shrink_cap is False
    assert StudyPlan.from_dict(stored).shrink_cap is True  # a new plan: the cap's default
    assert preset("full").shrink_cap is False and preset("quick").shrink_cap is True


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(momentum=0.5), "applies to optimizer 'sgd' only"),
        (dict(lr_points_per_decade=3), "this plan has none"),
    ],
)
def test_a_knob_the_plan_would_ignore_is_refused(change, match):
    with pytest.raises(WdscaleError, match=match):
        make_runs(StudyPlan(sizes=[16, 32], rules=["sum"], seeds=1, **change), TASK)


def test_export_into_a_missing_directory_is_one_clear_error(tmp_path, capsys):
    from wdscale.cli import main

    assert main(["study", "export", str(Path(__file__).parents[3] / "docs/findings/full"), "--to",
                 str(tmp_path / "missing" / "x.csv")]) != 0  # fmt: skip
    assert "does not exist; create it first" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, match",
    [
        ("rules = 5", "plan key 'rules' must be a list of rule names"),
        ("settings = [1, 2, 3]", "plan key 'settings' must be a table of rule"),
        ('extend = "mean"', "plan key 'extend' must be a table"),
        ("task_options = {bogus = 1}", "task_options 'bogus' are not options of task 'mnist1d_mlp'; it takes: n_pool"),
        # issue 31: stored as given, a string where a switch or a number belongs
        ('decay_vectors = "yes"', "plan key 'decay_vectors' must be true or false, got 'yes'"),
        ('lr = "0.01"', "plan key 'lr' must be a number"),
        ("seeds = 2.5", "plan key 'seeds' must be a whole number, got 2.5"),
        ('extend = {mean = "3"}', "plan key 'extend' must be a table of rule → decades"),
    ],
)
def test_a_config_key_of_the_wrong_shape_is_one_clear_error(tmp_path, text, match):
    path = tmp_path / "plan.toml"
    path.write_text(f"sizes = [16, 32]\n{text}\n")
    with pytest.raises(WdscaleError, match=match):
        make_runs(StudyPlan.from_dict(load_plan_file(path)), TASK)


@pytest.mark.parametrize("text", ["[1, 2]", '"width"', "{not json", "null"])
def test_a_plan_json_that_is_not_a_plan_is_one_clear_line(tmp_path, capsys, text):
    from wdscale.cli import main

    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(FINDINGS / "digits_width" / "runs.parquet", study)
    (study / "plan.json").write_text(text)
    for command in (["study", "report", str(study), "--to", str(tmp_path / "r")], ["study", "refine", str(study)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "plan.json" in err and err.count("\n") == 1, err
    assert not (study / "runs.sqlite").exists()


def test_refine_refuses_a_points_count_that_would_plan_billions(tmp_path, capsys):
    from wdscale.cli import main

    study = tmp_path / "study"
    study.mkdir()
    assert main(["study", "refine", str(study), "--points", "1000000000"]) != 0
    assert "from 2 to 12" in capsys.readouterr().err and not (study / "runs.sqlite").exists()


@pytest.mark.parametrize("change", [dict(depth=2_000, sizes=[16, 1024]), dict(sizes=[16, 100_000_000])])
def test_a_built_in_model_too_large_to_build_is_refused_at_once(change):
    plan = StudyPlan(**{**dict(sizes=[16, 64], rules=["sum"], seeds=1), **change})
    with pytest.raises(WdscaleError, match=r"makes a mnist1d_mlp model of [\d,]+ parameters, more than"):
        make_runs(plan, TASK)


def test_dry_run_previews_the_grids_as_lambda_and_tau_and_trains_nothing(tmp_path, capsys):
    from wdscale.cli import main

    args = ["study", "run", "--out", str(tmp_path / "s"), "--sizes", "16,64", "--rules", "decoupled,sum"]
    assert main([*args, "--epochs", "2", "--n-train", "500", "--seeds", "2", "--dry-run"]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("88 runs: task mnist1d_mlp") and "T = 8 steps" in out
    # decoupled: τ/T from 100 (too weak to matter) down to a fraction of the run
    taus = [float(v) for v in out.split("\n  decoupled")[1].split("τ/T: ")[1].split("\n")[0].split(", ")]
    assert taus[0] == 100 and taus[-1] < 1
    assert "parameters × samples over 88 runs" in out and not (tmp_path / "s").exists()


def test_settings_takes_a_grid_per_rule_and_keeps_the_one_rule_form(tmp_path, capsys):
    from wdscale.cli import main

    args = ["study", "run", "--out", str(tmp_path / "s"), "--sizes", "16,64", "--epochs", "2", "--n-train", "500",
            "--seeds", "1", "--dry-run"]  # fmt: skip
    # several rules, each its own grid; the rules are the ones named
    assert main([*args, "--settings", "decoupled=0.01,0.1,1;mup=0.1,1,10,100"]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("14 runs: task mnist1d_mlp")  # (3 + 4) settings × 2 sizes × 1 seed
    assert "\n  decoupled" in out and "\n  mup" in out and "\n  sum" not in out
    # the one-rule form still works with one --rules entry
    assert main([*args, "--rules", "sum", "--settings", "0.01,0.1,1"]) in (0, None)
    assert capsys.readouterr().out.startswith("6 runs: task mnist1d_mlp")
    # a grid for a rule --rules does not name, a one-grid form with two rules, bad text: one clear line each
    assert main([*args, "--rules", "sum", "--settings", "decoupled=0.1,1,10"]) == 2
    assert "--settings gives a grid for 'decoupled', not among the rules sum" in capsys.readouterr().err
    assert main([*args, "--rules", "sum,mup", "--settings", "0.1,1,10"]) == 2
    assert "name each rule's grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--settings", "decoupled=0.1;=1"])
    assert "expected RULE=numbers" in capsys.readouterr().err


def test_first_seed_starts_every_points_seeds_and_a_plan_from_zero_reads_as_before():
    plan = StudyPlan(sizes=[32, 64], rules=["sum"], seeds=2, points_per_decade=1, decades=1.0)
    base = make_runs(plan, TASK)
    fresh = make_runs(dataclasses.replace(plan, first_seed=1000), TASK)
    assert sorted({c.seed for c in base}) == [0, 1] and sorted({c.seed for c in fresh}) == [1000, 1001]
    assert len(fresh) == len(base) and not {c.run_id for c in fresh} & {c.run_id for c in base}
    # a plan from seed 0 writes no first_seed: every stored plan and tune argument reads as it did
    assert "first_seed" not in plan.to_dict() and StudyPlan.from_dict(plan.to_dict()) == plan
    moved = dataclasses.replace(plan, first_seed=1000)
    assert moved.to_dict()["first_seed"] == 1000 and StudyPlan.from_dict(moved.to_dict()) == moved
    with pytest.raises(WdscaleError, match="first_seed=-1 is not allowed: a whole number from 0 to"):
        make_runs(dataclasses.replace(plan, first_seed=-1), TASK)


def test_more_evaluations_than_an_epoch_has_steps_are_refused_when_planned():
    plan = StudyPlan(sizes=[16, 64], rules=["sum"], seeds=1, evals_per_epoch=10**6)
    with pytest.raises(WdscaleError, match=r"evals_per_epoch=1000000 is not allowed: a whole number from 1"):
        make_runs(plan, TASK)
    assert {c.evals_per_epoch for c in make_runs(dataclasses.replace(plan, evals_per_epoch=3), TASK)} == {3}
