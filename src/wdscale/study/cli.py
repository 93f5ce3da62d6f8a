"""`wdscale study run | refine | report | export | status | advise | import`."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

from ..checks import check_positive_int
from ..errors import WdscaleError
from ..loading import load_object
from ..schedules import SCHEDULE_NAMES
from .analysis.advise import advise, advise_joint, holdout, render_holdout
from .analysis.joint import fixed_lr_slice, is_joint
from .api import Study
from .plan.study_plan import PRESET_HELP, PRESETS, StudyPlan, load_plan_file, make_runs, preview, read_plan_json
from .plan.tasks import TASKS, get_task
from .report.study_report import write_report
from .run.execution import Execution
from .run.external import Fixed, import_runs
from .run.relabel import relabel_study
from .run.runner import run_study
from .run.store import Store, load_runs, write_export
from .search.optuna_search import SEARCHES, optuna_search
from .search.refine import PRUNING_NOTE, SEEDS_AT, SEEDS_AT_NOTE, check_refine_args, refine_study, stored_plan
from .search.tune import (
    DEFAULT_BUDGET,
    MAX_RESCORE_SEEDS,
    METHODS,
    RESCORE_FIRST_SEED,
    check_rescore_seeds,
    ladder,
    tune_study,
)


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _budget(s: str) -> Optional[float]:
    if s.strip().lower() == "none":
        return None
    try:
        b = float(s)
    except ValueError:
        b = 0.0
    if not b > 0 or not math.isfinite(b):
        raise argparse.ArgumentTypeError(f"expected a fraction > 0 of one recipe's sweep, or 'none', got {s!r}")
    return b


def _rescore_seeds(s: str) -> int:
    try:
        return check_rescore_seeds(int(s))
    except (ValueError, WdscaleError):
        raise argparse.ArgumentTypeError(
            f"expected a whole number of fresh seeds from 0 to {MAX_RESCORE_SEEDS}, got {s!r}"
        ) from None


def _positive(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {s!r}")
    return n


def _strs(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _extend(s: str) -> dict[str, float]:
    out = {}
    for item in _strs(s):
        rule, sep, dec = item.partition("=")
        try:
            out[rule.strip()] = float(dec if sep else "not a number")
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected RULE=DECADES[,RULE=DECADES...], e.g. mean=3, got {item!r}"
            ) from None
    return out


def _floats(s: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _settings(s: str) -> Union[list[float], dict[str, list[float]]]:
    """--settings: one rule's grid ("0.01,0.1,1") or several rules' ("decoupled=0.01,0.1,1;mup=0.1,1")."""
    if "=" not in s:
        return _floats(s)
    grids: dict[str, list[float]] = {}
    for part in (p.strip() for p in s.split(";") if p.strip()):
        rule, eq, values = part.partition("=")
        if not eq or not rule.strip():
            raise argparse.ArgumentTypeError(
                f"expected RULE=numbers for each rule, separated by ';' (e.g. 'decoupled=0.01,0.1;mup=0.1,1'), "
                f"got {part!r}"
            )
        if rule.strip() in grids:
            raise argparse.ArgumentTypeError(f"rule {rule.strip()!r} is given twice in --settings")
        grids[rule.strip()] = _floats(values)
    return grids


# plan fields a flag sets by the same name; these three are combined with the preset and config
# file by hand (a rule's grid, decades added to a grid, a switch), and some have no flag (a config file sets them)
_COMBINED_FLAGS = ("settings", "extend", "decay_vectors")
_NO_FLAG = ("anchor_total_decay", "task_options", "refined", "grid_sizes", "shrink_cap", "first_seed")


def build_plan(args: argparse.Namespace) -> StudyPlan:
    d: dict[str, Any] = {}
    if args.preset:
        d.update(PRESETS[args.preset])
    if args.config:
        d.update(load_plan_file(args.config))
    for f in dataclasses.fields(StudyPlan):
        if f.name not in _COMBINED_FLAGS + _NO_FLAG and getattr(args, f.name) is not None:
            d[f.name] = getattr(args, f.name)
    if isinstance(args.settings, dict):  # RULE=grid;RULE=grid: the rules named, unless --rules names them
        rules = d.setdefault("rules", list(args.settings))
        extra = [r for r in args.settings if r not in rules]
        if extra:
            raise WdscaleError(
                f"--settings gives a grid for {', '.join(map(repr, extra))}, not among the rules "
                f"{', '.join(rules)}: add it to --rules, or drop its grid"
            )
        d["settings"] = {**(d.get("settings") or {}), **args.settings}
    elif args.settings:
        if len(d.get("rules", [])) != 1:
            raise WdscaleError(
                "--settings with one grid sets one rule's: use it with exactly one --rules entry, or name each "
                "rule's grid (--settings 'decoupled=0.01,0.1,1;mup=0.1,1')"
            )
        d["settings"] = {d["rules"][0]: args.settings}
    if args.extend:
        d["extend"] = {**d.get("extend", {}), **args.extend}
    if args.decay_vectors:
        d["decay_vectors"] = True
    return StudyPlan.from_dict(d)


def _execution(args: argparse.Namespace) -> Execution:
    """How the runs of `study run` or `tune` execute, from their shared flags."""
    return Execution(
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        device=args.device,
        batch=not args.no_batch,
        threads=args.threads,
        progress=not args.no_progress,
        gpus_per_run=args.gpus_per_run,
        gpus=args.gpus,
        run_timeout=args.run_timeout,
    )


def _own(args: argparse.Namespace) -> bool:
    """The study trains the user's model: with their data, training function or command."""
    return bool(args.model or args.data or args.train) or args.command is not None


def cmd_run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    plan = build_plan(args)
    execution = _execution(args)
    if args.dry_run:  # the plan, nothing trained
        study = _own_study(args, plan, out, execution, args.task or "custom") if _own(args) else None
        print(study.preview() if study is not None else preview(plan, get_task(plan.task)))
        return
    if _own(args):
        _own_study(args, plan, out, execution, args.task or "custom").run(retry_failed=args.retry_failed)
        return
    run_study(plan, out, execution=execution, retry_failed=args.retry_failed)


def _own_study(args: argparse.Namespace, plan: StudyPlan, out: Path, execution: Execution, name: str) -> Study:
    """A study of the user's model family with their data (`--data`), their training function
    (`--train`) or their script (`--command`)."""
    if not args.model:
        raise WdscaleError("give --model module:factory (your model family) with --data, --train or --command")
    if bool(args.data) + bool(args.train) + (args.command is not None) != 1:
        raise WdscaleError(
            "give --data module:loader (wdscale's loop on your data), --train module:function (your own "
            "training) or --command 'python train.py ...' (your script), one of the three, with --model"
        )
    return Study(
        load_object(args.model, "--model"),
        load_object(args.data, "--data") if args.data else None,
        train_fn=load_object(args.train, "--train") if args.train else None,
        command=args.command,
        out=out,
        name=name,
        execution=execution,
        **{k: v for k, v in plan.to_dict().items() if k != "task"},
    )


def _check_writable(directory: Path, flag: str) -> None:
    if directory.exists() and not (directory.is_dir() and os.access(directory, os.W_OK)):
        raise WdscaleError(f"cannot write into {str(directory)!r} (not a writable directory): give {flag} elsewhere")


def _plan_json(out: Path) -> Optional[StudyPlan]:
    """A study directory's plan.json, checked (one error if it is not a plan); None if it has none."""
    return read_plan_json(out / "plan.json") if (out / "plan.json").is_file() else None


def _base_lr(out: Path) -> Optional[float]:
    """A study's base lr (a joint study's fixed lr): its plan's lr, else its built-in task's default."""
    plan = _plan_json(out)
    if plan is None:
        return None  # no plan: the λ-only view takes the middle coarse lr
    if plan.lr is not None:
        return float(plan.lr)
    return TASKS[plan.task].default_lr.get(plan.optimizer) if plan.task in TASKS else None


def cmd_report(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    df = load_runs(out)
    if df.empty:
        raise WdscaleError(f"the study in {str(out)!r} has no finished runs yet")
    plan = _plan_json(out)
    if plan is not None and plan.grid_sizes:
        raise WdscaleError(
            f"{str(out)!r} holds a tune (a grid at its bottom rung only), not a study: `wdscale tune` with the "
            "same flags prints its result again without training anything"
        )
    dest = Path(args.to) if args.to else out
    _check_writable(dest, "--to DIR")
    base_lr = _base_lr(out)
    paths = write_report(
        df,
        dest,
        title=args.title or f"wdscale study: {', '.join(sorted(df['task'].unique()))}",
        metric=args.metric,
        base_lr=base_lr,
    )
    for key in ("md", "html"):
        if key in paths:
            print(paths[key])


def cmd_export(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    df = load_runs(out)
    if df.empty:
        raise WdscaleError(f"the study in {str(out)!r} has no finished runs yet: nothing to export")
    path = Path(args.to) if args.to else out / f"runs.{args.format}"
    if not path.parent.is_dir():
        raise WdscaleError(f"--to {str(path)!r}: the directory {str(path.parent)!r} does not exist; create it first")
    _check_writable(path.parent, "--to FILE")
    write_export(df, path, args.format)
    print(path)


def cmd_relabel(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    done = relabel_study(out)
    print(
        f"of {done.checked} ok and not_learned runs, {len(done.not_learned)} relabelled not_learned (they never "
        f"left chance) and {len(done.learned)} relabelled ok (they ended below chance)"
    )


# the fixed knobs an imported table does not carry (the size axis's own comes from its rows)
IMPORT_KNOBS = ("width", "depth", "n_train", "batch_size", "epochs")


def cmd_import(args: argparse.Namespace) -> None:
    knobs: dict[str, Any] = {k: _whole(f"--{k.replace('_', '-')}", getattr(args, k), 0) for k in IMPORT_KNOBS}
    fixed = Fixed(
        rule=args.rule,
        size_axis=args.size_axis,
        optimizer=args.optimizer,
        task=args.name,
        base_size=_whole("--base-size", args.base_size, None),
        **knobs,
    )
    print(import_runs(args.dir, args.table, fixed))


def _import_parser(ssub: Any) -> None:
    p = ssub.add_parser(
        "import",
        help="bring a sweep trained elsewhere (a CSV or Parquet table of runs) into a study directory",
        description="Store runs trained elsewhere — a W&B export, a shell loop's log — as runs of a declared "
        "rule, so `study report`, `study advise` and `study export` read the directory as a study. The table "
        "has one run per row: size, lr, setting (or weight_decay), seed, val_loss (nan or inf: the run "
        "diverged), and optionally steps and schedule. Every row is checked first: bad rows are refused with "
        "their line numbers (the header is line 1) and nothing is imported. Importing the same table again "
        "adds nothing.",
    )
    p.add_argument("dir", help="the study directory (made if missing)")
    p.add_argument("table", help="the runs: a .csv or .parquet file")
    p.add_argument("--rule", required=True, help="the decay rule the runs' setting is of (see `wdscale rules`)")
    p.add_argument("--size-axis", dest="size_axis", default="width", help="what `size` is (default width)")
    p.add_argument("--optimizer", default="adamw", help="the optimizer the runs trained with (default adamw)")
    p.add_argument("--name", default="external", help="the task's name in the report (default external)")
    for knob in IMPORT_KNOBS:
        p.add_argument(
            f"--{knob.replace('_', '-')}", dest=knob, help=f"the runs' {knob.replace('_', ' ')} (default: not known)"
        )
    p.add_argument("--base-size", dest="base_size", help="where the setting is tuned (default: the smallest size)")
    p.set_defaults(func=cmd_import)


def cmd_status(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    df = load_runs(out)
    planned = "?"
    stored_total: Optional[int] = None
    try:
        plan = None
        if (out / "runs.sqlite").exists():
            with Store(out / "runs.sqlite", readonly=True) as store:
                stored, stored_total = store.plan(), store.planned_runs()
            plan = StudyPlan.from_stored(stored) if stored is not None else None
        if stored_total is not None:  # counted when it was planned: a study of your model or script too
            planned = str(stored_total)
        else:
            plan = plan or _plan_json(out)
            if plan is not None and plan.task in TASKS:
                planned = str(len(make_runs(plan, TASKS[plan.task])))
    except (ValueError, TypeError):
        planned = "? (its plan no longer checks)"
    counts = df["status"].value_counts().to_dict() if not df.empty else {}
    print(
        f"{len(df)} of {planned} runs stored"
        + (": " if counts else "")
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


def _whole(flag: str, text: Optional[str], default: Optional[int]) -> Optional[int]:
    """A flag's whole number ≥ 1, or one clear error (argparse would add its usage line)."""
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise WdscaleError(f"{flag}={text!r} is not allowed: {flag} must be a positive integer") from None
    return check_positive_int(flag, value)


def cmd_refine(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    points = _whole("--points", args.points, 3)
    max_seeds = _whole("--max-seeds", args.max_seeds, 6)
    workers = _whole("--workers", args.workers, None)
    threads = _whole("--threads", args.threads, 1)
    assert points is not None and max_seeds is not None and threads is not None  # defaults above
    check_refine_args(points, max_seeds)  # before stored_plan makes a store from an export
    execution = Execution(
        workers=workers,
        threads=threads,
        progress=not args.no_progress,
        gpus_per_run=args.gpus_per_run,
        gpus=args.gpus,
        run_timeout=args.run_timeout,
    )
    plan = stored_plan(out)
    if _own(args):
        study = _own_study(args, plan, out, execution, plan.task)
        study.refine(points=points, max_seeds=max_seeds, seeds_at=args.seeds_at)
        return
    if plan.task not in TASKS:
        raise WdscaleError(
            f"the study in {str(out)!r} runs your own model ({plan.task!r}): give the same --model and --data "
            "(or --train, or --command) it was run with"
        )
    refine_study(plan, out, points=points, max_seeds=max_seeds, seeds_at=args.seeds_at, execution=execution)


def cmd_advise(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    given = [(axis, getattr(args, f"target_{axis}")) for axis in ("width", "depth", "n_train", "batch_size")]
    given = [(axis, v) for axis, v in given if v is not None]
    if len(given) > 1:
        raise WdscaleError("give one target: --target-width, --target-depth, --target-n-train or --target-batch-size")
    if not given and not args.holdout:
        raise WdscaleError(
            "give a target (--target-width, --target-depth, --target-n-train or --target-batch-size) or --holdout"
        )
    df = load_runs(out)
    if df.empty:
        raise WdscaleError(f"the study in {str(out)!r} has no finished runs yet: nothing to advise from")
    if given:
        axis, text = given[0]
        target = _whole(f"--target-{axis.replace('_', '-')}", text, None)
        assert target is not None
        if is_joint(df):
            if axis != df["size_axis"].iloc[0]:
                raise WdscaleError(
                    f"the target is a {axis} but this study varies {df['size_axis'].iloc[0]}: "
                    f"give --target-{str(df['size_axis'].iloc[0]).replace('_', '-')}"
                )
            print(advise_joint(df, target, metric=args.metric))
        else:
            tasks = set(df["task"])
            factory = get_task(next(iter(tasks))).make_model if len(tasks) == 1 and tasks <= set(TASKS) else None
            print(advise(df, target, axis=axis, model_factory=factory if args.table else None, metric=args.metric))
    if args.holdout:
        print(render_holdout(holdout(fixed_lr_slice(df, _base_lr(out)) if is_joint(df) else df, metric=args.metric)))


def _advise_parser(sub: Any) -> None:
    p = sub.add_parser(
        "advise",
        help="predict each rule's optimum at a size you have not trained, and recommend a rule",
        description="From a finished study: per rule, fit log(setting*) against log(size), predict the optimum "
        "at the target size with a 90%% interval (labelled predictions), warn beyond 4× the largest measured "
        "size or where a straight line in log-log is not supported, and recommend the rule with the smallest "
        "measured transfer regret. --holdout refits without the largest size and checks the prediction "
        "against the runs trained there.",
    )
    p.add_argument("dir", help="the study directory (its runs.sqlite, or runs.parquet)")
    p.add_argument("--target-width", dest="target_width", help="the width to advise for (a width study)")
    p.add_argument("--target-depth", dest="target_depth", help="the depth to advise for (a depth study)")
    p.add_argument("--target-n-train", dest="target_n_train", help="training samples to advise for (an n_train study)")
    p.add_argument(
        "--target-batch-size", dest="target_batch_size", help="batch size to advise for (a batch_size study)"
    )
    p.add_argument(
        "--holdout",
        action="store_true",
        help="refit without the largest size and compare the prediction with what was measured there",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="also print the per-parameter settings table of the recommended rule (built-in tasks only)",
    )
    p.add_argument("--metric", default="val_loss", help="val_loss (default), best_val_loss, train_loss")
    p.set_defaults(func=cmd_advise)


def _plan_arguments(p: argparse.ArgumentParser, presets: str) -> None:
    """The plan and execution flags `study run` and `tune` share."""
    # "-8,16" is a value (rejected by the plan's checks with a clear message), not an unknown flag
    p._negative_number_matcher = re.compile(r"^-\d[\d.,eE+-]*$")
    p.add_argument("--out", required=True, help="directory for the store (runs.sqlite), plan and report")
    p.add_argument("--preset", choices=list(PRESETS), metavar="PRESET", help=f"a ready plan — {presets}")
    p.add_argument("--config", help="TOML or YAML file of plan keys (overrides the preset)")
    p.add_argument(
        "--task",
        help=f"built-in task: {', '.join(TASKS)} (default mnist1d_mlp); with --model, the study's name",
    )
    p.add_argument("--size-axis", dest="size_axis", help="width | depth | n_train | batch_size (default width)")
    p.add_argument("--sizes", type=_ints, help="comma-separated, e.g. 32,128,512 (default: the task's widths)")
    p.add_argument(
        "--rules",
        type=_strs,
        help="comma-separated rule names, see `wdscale rules` (default sum,mean,decoupled,timescale,mup)",
    )
    p.add_argument(
        "--settings",
        type=_settings,
        help="explicit grids of λ (or τ): 'decoupled=0.01,0.1,1;mup=0.1,1' per rule, or '0.01,0.1,1' with one --rules",
    )
    p.add_argument(
        "--optimizer",
        help="sgd | adam | adamw | muon (default adamw; muon: Muon for the 2-D hidden matrices, AdamW for the rest)",
    )
    p.add_argument("--seeds", type=int, help="seeds per setting (default 3)")
    p.add_argument(
        "--points-per-decade", dest="points_per_decade", type=int, help="grid points per decade of decay (default 4)"
    )
    p.add_argument(
        "--decades",
        type=float,
        help="centre the decay grid (η·λ·T = 3) this many decades wide; default: placed for the run, "
        "τ = 1/(η·λ) from 100× the run's steps to a thirtieth of them",
    )
    p.add_argument(
        "--extend", type=_extend, help="add decades of stronger (+) or weaker (-) decay to a rule's grid, e.g. mean=3"
    )
    p.add_argument("--lr", type=float, help="learning rate at the base size (default: the task's)")
    p.add_argument(
        "--lrs",
        type=_floats,
        help="a joint study: comma-separated base lrs swept with the decay setting, e.g. 0.003,0.01,0.03",
    )
    p.add_argument(
        "--lr-decades",
        dest="lr_decades",
        type=float,
        help="a joint study: an lr grid this many decades wide centred on --lr (default 0: lr fixed)",
    )
    p.add_argument(
        "--lr-points-per-decade",
        dest="lr_points_per_decade",
        type=int,
        help="lr grid points per decade with --lr-decades (default 2)",
    )
    p.add_argument("--momentum", type=float, help="SGD momentum, in [0, 1) (default 0.9)")
    p.add_argument(
        "--max-runs",
        dest="max_runs",
        type=int,
        help="refuse a plan of more runs than this (default 200000: a typo in --seeds or --decades is caught)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="the lr schedule of every run: one multiplier of every group's lr per step, so the rules' "
        "per-group ratios hold (default constant)",
    )
    p.add_argument("--warmup", type=float, help="linear warmup, as a fraction of a run's steps (default 0)")
    p.add_argument(
        "--evals-per-epoch",
        dest="evals_per_epoch",
        type=int,
        help="validation evaluations per epoch, evenly spaced by steps (default 1: at its end); the ones "
        "within an epoch read the first 1/N of the validation set: a one-pass run's curve",
    )
    p.add_argument(
        "--final-lr",
        dest="final_lr",
        type=float,
        help="cosine, wsd: the lr at the end as a fraction of the peak (default 0)",
    )
    p.add_argument(
        "--decay-fraction",
        dest="decay_fraction",
        type=float,
        help="wsd: the fraction of a run's steps in the final decay (default 0.2)",
    )
    p.add_argument("--epochs", type=int, help="epochs per run (default: the task's)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="samples per step (default: the task's)")
    p.add_argument("--n-train", dest="n_train", type=int, help="training samples used (default: the task's)")
    p.add_argument(
        "--tokens-per-param",
        dest="tokens_per_param",
        type=float,
        help="one pass over a token budget: n_train at each size = this × the model's parameters / the task's "
        "tokens per sample (its context for a language model), epochs 1",
    )
    p.add_argument("--width", type=int, help="fixed width when the size axis is not width (default: the task's)")
    p.add_argument("--depth", type=int, help="fixed depth when the size axis is not depth (default: the task's)")
    p.add_argument("--base-size", dest="base_size", type=int, help="size where the setting is tuned (default smallest)")
    p.add_argument("--decay-vectors", action="store_true", help="decay biases and norm gains too")
    p.add_argument("--model", help="your own model family: module:factory, called with the size")
    p.add_argument("--data", help="your own data: module:loader returning (x_train, y_train, x_val, y_val)")
    p.add_argument(
        "--train",
        help="your own training: module:function, called as function(run) for every run, returning its final "
        "validation loss (docs/your-training.md); give --n-train, --batch-size, --epochs and --lr with it",
    )
    p.add_argument(
        "--command",
        help="your training script, run once per run: 'torchrun --nproc-per-node 2 train.py --epochs 3' (the "
        "script calls wdscale.current_run()) or 'python train.py --width {width} --lr {lr} --wd {setting}' (fields "
        "filled per run; the script prints a last line val_loss=<float>); give --model, --n-train, --batch-size, "
        "--epochs and --lr with it (docs/your-training.md, 'Your script')",
    )
    _placement_arguments(p)
    p.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local worker processes, or a Ray cluster (default local)",
    )
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--workers", type=_positive, help="worker processes (default: cores / --threads)")
    p.add_argument(
        "--threads",
        type=_positive,
        default=1,
        help="torch intra-op threads per run, the same in every backend; recorded with each run, "
        "since a run's last bits depend on it (default 1)",
    )
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument(
        "--no-batch",
        action="store_true",
        help="train every run on its own (sequential torch.optim) instead of the batched engine",
    )
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _placement_arguments(p: argparse.ArgumentParser) -> None:
    """Where runs go on GPUs, and how long one may take."""
    p.add_argument(
        "--gpus-per-run",
        dest="gpus_per_run",
        type=float,
        help="GPUs each run gets (default 1 on a GPU study; 2 for a 2-GPU torchrun; 0.5: two runs share a GPU); "
        "each run's processes see only their share (CUDA_VISIBLE_DEVICES)",
    )
    p.add_argument("--gpus", help="the GPUs to use, e.g. 0,1,2 (default: every visible one)")
    p.add_argument(
        "--run-timeout",
        dest="run_timeout",
        type=float,
        help="seconds one run may take; past it its processes are killed and the run is stored failed (default: none)",
    )


# the flags of `study run` and `tune` that a tune replaces or does not read, per search: each
# given one is refused (`tune --seeds 0` or `1e9` was once accepted and ignored)
_TUNE_UNUSED = {
    "seeds": "the ladder's seeds are --bottom-seeds, --target-seeds and --max-seeds",
    "sizes": "the sizes climbed are --rungs (default target/16, target/4, target)",
    "base_size": "the base is the ladder's bottom rung (--rungs)",
    "retry_failed": "a tune trains what is missing; a failed run is a measured point",
}
# each search's own flags, and why another search does not use them
_ONLY = {
    "target_seeds": (("ladder",), "it sets the ladder's seeds at the target"),
    "max_seeds": (("ladder",), "it sets the ladder's seeds at the target"),
    "bottom_seeds": (("ladder", "mutransfer", "laws"), "it sets the seeds of the ladder's bottom grid"),
    "sampler_seeds": (SEARCHES, "it counts Optuna searches"),
    "match_compute": (SEARCHES, "it gives an Optuna search a ladder's core-seconds"),
    "reference": (SEARCHES, "it widens an Optuna search's space"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_tune_flags(args: argparse.Namespace, axis: str) -> None:
    """Refuse each given flag the tune would not use, naming what it uses instead."""
    for name, why in _TUNE_UNUSED.items():
        if getattr(args, name) is not None and getattr(args, name) is not False:
            raise WdscaleError(f"{_flag(name)} is not used by `wdscale tune`: {why}")
    if args.size_axis is not None and args.size_axis != axis:
        raise WdscaleError(f"--size-axis {args.size_axis} is not the target's axis ({axis}): leave it out")
    for name, (searches, what) in _ONLY.items():
        if getattr(args, name) is not None and args.search not in searches:
            raise WdscaleError(f"{_flag(name)} is not used by --search {args.search}: {what}")
    if args.match_compute is not None and hasattr(args, "budget"):
        raise WdscaleError(
            f"--budget {args.budget} and --match-compute {args.match_compute} both give the compute: give one"
        )


def cmd_tune(args: argparse.Namespace) -> None:
    out = Path(args.out)
    given = [(axis, getattr(args, f"target_{axis}")) for axis in ("width", "depth", "n_train", "batch_size")]
    given = [(axis, v) for axis, v in given if v is not None]
    if len(given) != 1:
        raise WdscaleError("give one target: --target-width, --target-depth, --target-n-train or --target-batch-size")
    axis, target = given[0]
    _check_tune_flags(args, axis)
    plan = build_plan(args)
    execution = _execution(args)
    plan = dataclasses.replace(plan, size_axis=axis)
    budget = getattr(args, "budget", DEFAULT_BUDGET)  # left out: the default (a flag given is told apart)
    rescore = args.rescore_seeds or 0
    if args.search in SEARCHES:
        if _own(args):
            raise WdscaleError("--search tpe / tpe_hyperband runs on a built-in task or preset; use Study for your own")
        if budget is None:
            raise WdscaleError(f"--search {args.search} needs a fraction > 0 of one recipe's sweep: --budget 'none'")
        result = optuna_search(
            plan, out, target, search=args.search, budget=None if args.match_compute else budget,
            rungs=args.rungs, match_compute=args.match_compute, reference=args.reference or (),
            rescore_seeds=rescore, sampler_seeds=args.sampler_seeds or 1, execution=execution,
        )  # fmt: skip
        print(result)
        return
    kw = dict(rungs=args.rungs, seeds=args.target_seeds or 1, max_seeds=args.max_seeds or 4, budget=budget,
              bottom_seeds=args.bottom_seeds or 1, method=args.search, rescore_seeds=rescore)  # fmt: skip
    if _own(args):
        study = _own_study(
            args, dataclasses.replace(plan, sizes=args.rungs or ladder(target)), out, execution, args.task or "custom"
        )
        result = study.tune(target, **kw)
    else:
        result = tune_study(plan, out, target, execution=execution, **kw)
    print(result)


def add_study_parser(sub: Any) -> None:
    study = sub.add_parser("study", help="run, report and export studies of λ across sizes")
    ssub = study.add_subparsers(dest="study_command", required=True)

    presets = "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
    p = ssub.add_parser(
        "run",
        help="run (or resume) a study grid",
        description="Run a study: sizes × decay settings × rules × seeds, stored as each run "
        "finishes; the same command again resumes. Flags override --config, which "
        "overrides --preset; what none sets takes the task's default.",
    )
    _plan_arguments(p, presets)
    p.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="print the plan (each rule's grid as λ and as τ in fractions of the run, the run count, the compute) "
        "and train nothing",
    )
    p.set_defaults(func=cmd_run)

    p = ssub.add_parser(
        "refine",
        help="add runs where the decision is made: a finer grid and more seeds around each optimum",
        description="After a coarse sweep (`wdscale study run`), add runs where the decision is made: "
        "around each rule and size's measured optimum (lowest seed-mean loss among trained runs) a "
        "finer log grid out to one coarse step on each side; seeds up to --max-seeds at the optimum "
        "and at every setting within noise of it (2 standard errors); and the smallest size's optimum "
        "trained at every larger size with as many seeds as that size's optimum, so its transfer "
        "regret is measured. In a joint study (lrs swept) the finer grid is a cross in lr and setting "
        "through the joint optimum, which follows the optimum when it moves (so the settings beside it are "
        "trained at its best lr, with as many seeds as it has), and every smaller size's optimum is trained "
        "at the largest. The "
        "study's plan grows to hold these runs (kept in its store and plan.json), so `study run` on it "
        "still works; nothing stored is trained again. A directory with only runs.parquet and plan.json "
        "(as docs/findings keeps studies) first gets its store made from them. Prints the runs added "
        f"and their core-seconds against the coarse grid's. {PRUNING_NOTE}",
    )
    p.add_argument("dir", help="the study directory (its runs.sqlite, or runs.parquet and plan.json)")
    p.add_argument("--points", help="fine steps per coarse grid step, ≥ 2 (default 3: two new settings per step)")
    p.add_argument("--max-seeds", dest="max_seeds", help="seeds at the optimum and the settings near it (default 6)")
    p.add_argument(
        "--seeds-at",
        dest="seeds_at",
        choices=SEEDS_AT,
        default="all",
        help="where those seeds go: every size (default), or only the smallest and largest, whose losses a "
        f"regret compares ({SEEDS_AT_NOTE})",
    )
    p.add_argument("--workers", help="worker processes (default: cores / --threads)")
    p.add_argument("--threads", help="torch intra-op threads per run, recorded with each run (default 1)")
    p.add_argument("--model", help="a study of your own model: the --model it was run with (module:factory)")
    p.add_argument("--data", help="... and its --data (module:loader)")
    p.add_argument("--train", help="... or its --train (module:function)")
    p.add_argument("--command", help="... or its --command (your script)")
    _placement_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_refine)

    p = ssub.add_parser("report", help="write report.md, report.html and plots from a study directory")
    p.add_argument("dir", help="the study directory (its runs.sqlite, or runs.parquet)")
    p.add_argument("--title", help="report title (default: the study's tasks)")
    p.add_argument("--to", help="directory for the report (default: the study directory)")
    p.add_argument("--metric", default="val_loss", help="val_loss (default), best_val_loss, train_loss")
    p.set_defaults(func=cmd_report)

    p = ssub.add_parser("export", help="export the runs to CSV or Parquet")
    p.add_argument("dir", help="the study directory")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="csv (default) or parquet")
    p.add_argument("--to", help="output file (default DIR/runs.FORMAT)")
    p.set_defaults(func=cmd_export)

    p = ssub.add_parser(
        "relabel",
        help="relabel stored runs by the chance criterion: ok runs that never left chance as not_learned, "
        "not_learned runs that ended below chance as ok (stores written under an earlier criterion)",
    )
    p.add_argument("dir", help="the study directory (its runs.sqlite, and runs.parquet if there; or runs.parquet)")
    p.set_defaults(func=cmd_relabel)

    p = ssub.add_parser("status", help="how many runs of a study are stored")
    p.add_argument("dir", help="the study directory")
    p.set_defaults(func=cmd_status)

    _import_parser(ssub)
    _advise_parser(ssub)
    _advise_parser(sub)  # `wdscale advise DIR ...`: the same command at the top level

    p = sub.add_parser(
        "tune",
        help="the best lr and decay setting for a target size, by climbing a ladder of sizes",
        description="Climb a ladder of sizes (default target/16, target/4, target) to the target's best "
        "(lr, setting): a joint lr × setting grid per recipe (each --rules entry) at the bottom rung, a few "
        "points placed at each rung above from what the rungs below measured for the recipes within noise of "
        "the best, and as many candidates at the target as --budget allows (seeds added while the best two are "
        "within noise). Every number it prints is measured at the target. "
        "Resumable: the same command again re-derives the same placements and trains only what is missing.",
    )
    _plan_arguments(p, "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items()))
    for axis in ("width", "depth", "n_train", "batch_size"):
        p.add_argument(
            f"--target-{axis.replace('_', '-')}", dest=f"target_{axis}", type=int, help=f"tune for this {axis}"
        )
    p.add_argument(
        "--rungs", type=_ints, help="the sizes climbed, ending at the target (default target/16, /4, target)"
    )
    p.add_argument(
        "--target-seeds",
        dest="target_seeds",
        type=_positive,
        help="seeds per candidate at the target (default 1; more where the best two are within noise)",
    )
    p.add_argument(
        "--bottom-seeds",
        dest="bottom_seeds",
        type=_positive,
        help="seeds per point of the bottom rung's grid (default 1; each recipe's best 3 points get 2)",
    )
    p.add_argument(
        "--max-seeds",
        dest="max_seeds",
        type=_positive,
        help="the most seeds a candidate gets while the best two are within noise (default 4)",
    )
    p.add_argument(
        "--budget",
        type=_budget,
        default=argparse.SUPPRESS,  # left out: DEFAULT_BUDGET, told apart from a --budget given
        help="the climb's compute as a fraction of one recipe's sweep at the target, in parameters × samples "
        f"(default {DEFAULT_BUDGET}; 'none': no limit but --max-seeds)",
    )
    p.add_argument(
        "--search",
        choices=[*METHODS, *SEARCHES],
        default="ladder",
        help="ladder: climb the sizes (default); its peers at the target: mutransfer (μP's part of the ladder's "
        "bottom grid, its best carried to the target, one run there), laws (the ladder's lower rungs, then its "
        "laws' point, one run at the target), tpe / tpe_hyperband (Optuna's TPE, with its HyperbandPruner over "
        "epochs, or 9 evaluations of a one-pass run, at the target alone, in the whole space the ladder "
        "reaches, for the same --budget or a ladder's --match-compute)",
    )
    p.add_argument(
        "--match-compute",
        dest="match_compute",
        help="with --search tpe / tpe_hyperband: a ladder's directory (a tune to this target); the search goes on "
        "until it has spent at least that ladder's measured core-seconds (the last trial crossing it), instead "
        "of --budget, and widens its space to every point the ladder trained",
    )
    p.add_argument(
        "--reference",
        type=lambda v: [x for x in v.split(",") if x],
        help="with --search tpe / tpe_hyperband: study directories (DIR[,DIR]: e.g. the reference sweep at the "
        "target) whose lrs and settings trained at the target the search's space is widened to cover",
    )
    p.add_argument(
        "--rescore-seeds",
        dest="rescore_seeds",
        type=_rescore_seeds,
        help="re-train the pick at the target on this many fresh seeds (seeds the search never used, from "
        f"{RESCORE_FIRST_SEED}) and score it there, beside the search's own score; stored apart in OUT/rescore, "
        "never counted as the search's compute (default 0: none)",
    )
    p.add_argument(
        "--sampler-seeds",
        dest="sampler_seeds",
        type=_positive,
        help="with --search tpe / tpe_hyperband: this many searches, sampler seeds 0, 1, …, each at the whole "
        "budget, into the same directory (one search is one draw of the sampler; more of them later resume "
        "the earlier ones and add their own)",
    )
    p.set_defaults(func=cmd_tune)
