"""Command line: `wdscale rules`, `wdscale explain ...`, `wdscale study run|report|export ...`."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from torch import nn

from . import __version__
from .errors import WdscaleError
from .loading import UsageError, load_object
from .optim import explain
from .rules import RULES, DataFacts, get_rule
from .schedules import SCHEDULE_NAMES, Schedule


def _model_factory(spec: str) -> Callable[..., nn.Module]:
    if ":" not in spec:  # a built-in task's model family
        from .study.plan.tasks import get_task

        try:
            task = get_task(spec)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return lambda width=None: task.make_model(task.base_width if width is None else width)
    return load_object(spec, "--model")


def _build(factory: Callable[..., nn.Module], width: Optional[int], what: str) -> nn.Module:
    try:
        model = factory(width) if width is not None else factory()
    except Exception as e:  # the user's code: say where it failed, not a deep traceback
        raise UsageError(
            f"{what}: the model factory failed{'' if width is None else f' at width {width}'}: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise UsageError(f"{what}: the model factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def cmd_rules(args: argparse.Namespace) -> None:
    """Every registered rule: what it takes, its decay mode, formula, summary and source (its fields)."""
    width = max(len(n) for n in RULES)
    for rule in RULES.values():
        takes = "τ" if rule.takes == "tau" else "λ"
        print(f"{rule.name.ljust(width)}  [{takes}, {rule.mode}; {', '.join(rule.optimizers)}]  {rule.formula}")
        print(f"{' ' * width}  {rule.summary}")
        if rule.takes == "tau":
            pad = " " * width
            print(
                f"{pad}  τ is read at the peak lr (per-step η_g·λ_g at the schedule's peak), as the source writes it;"
            )
            print(f"{' ' * width}  `wdscale explain --schedule ...` shows τ averaged over a scheduled run")
        print(f"{' ' * width}  source: {rule.source}\n")


def cmd_explain(args: argparse.Namespace) -> None:
    if get_rule(args.rule).needs_base and args.base_width is None:
        raise UsageError(
            f"--rule {args.rule} scales with width against a base (base=None otherwise): give "
            "--base-width, the width where the setting was tuned (equal to --width at that width)"
        )
    for flag, value in (("--width", args.width), ("--base-width", args.base_width)):
        if value is not None and value < 1:  # 0 once fell back to the base width without a word
            raise UsageError(f"{flag} {value} is not a width: give a whole number ≥ 1")
    factory = _model_factory(args.model)
    model = _build(factory, args.width, "--model")
    base = _build(factory, args.base_width, "--base-width") if args.base_width is not None else None
    data = None
    if args.n_samples is not None or args.batch_size is not None:
        if args.n_samples is None or args.batch_size is None:
            raise UsageError("give both --n-samples and --batch-size (and --epochs or --steps where the rule needs it)")
        data = DataFacts(n_samples=args.n_samples, batch_size=args.batch_size, epochs=args.epochs, steps=args.steps)
    table = explain(
        model,
        rule=args.rule,
        lr=args.lr,
        weight_decay=args.weight_decay,
        tau=args.tau,
        base=base,
        data=data,
        optimizer=args.optimizer,
        decay_vectors=args.decay_vectors,
        adjust_lr=args.adjust_lr,
    )
    if args.schedule is not None:
        schedule = Schedule(args.schedule, args.warmup, args.final_lr, args.decay_fraction)
        table = table.under(schedule, args.steps if data is None else None)
    print(table)


def build_parser() -> argparse.ArgumentParser:
    """The `wdscale` parser: rules, explain, and the study commands when the study extra is installed."""
    parser = argparse.ArgumentParser(prog="wdscale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"wdscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rules", help="list the rules with their formulas and sources")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("explain", help="per-parameter lr, λ and timescale that a rule gives a model")
    p.add_argument(
        "--model",
        required=True,
        help="module:factory (called with the width if --width is given) or a built-in task name",
    )
    p.add_argument("--rule", required=True, help=f"one of: {', '.join(RULES)}")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, help="λ, for rules that take it")
    p.add_argument("--tau", type=float, help="τ in epochs, for timescale / power_lines")
    p.add_argument("--optimizer", default="adamw", help="sgd, adam, adamw or muon (default adamw)")
    p.add_argument(
        "--adjust-lr",
        dest="adjust_lr",
        help="with --optimizer muon: Muon's lr adjustment, match_rms_adamw (default) or original",
    )
    p.add_argument("--width", type=int, help="width passed to the factory")
    p.add_argument("--base-width", type=int, help="width of the base model (where λ was tuned)")
    p.add_argument("--n-samples", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--steps", type=int)
    p.add_argument("--decay-vectors", action="store_true", help="decay biases and norm gains too")
    p.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="an lr schedule: also show what it makes of each group's τ over the run (needs the run's length)",
    )
    p.add_argument("--warmup", type=float, default=0.0, help="with --schedule: warmup fraction of the steps")
    p.add_argument("--final-lr", dest="final_lr", type=float, default=0.0, help="with --schedule: end lr / peak")
    p.add_argument("--decay-fraction", dest="decay_fraction", type=float, default=0.2, help="with --schedule wsd")
    p.set_defaults(func=cmd_explain)

    try:
        from .study.cli import add_study_parser
    except ImportError:  # the study extra is not installed
        pass
    else:
        add_study_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `wdscale` command.

    Args:
        argv: the arguments after the program name; None: `sys.argv[1:]`.

    Returns:
        The exit status: 0, 2 for bad input (printed as one line), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except WdscaleError as e:  # bad input: one line; anything else is a bug and keeps its traceback
        print(f"wdscale: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wdscale: interrupted; finished runs are kept in the store", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
