"""What makes a study directory one study besides its plan: the training function (or command) its
runs were trained by, and for a tune the arguments it climbed with.

A plan may grow and keep its runs; these may not change. A study resumed or grown with another
`--train` function would mix the runs of two functions, and a finished tune run again with other
arguments re-derives its placements from runs the new arguments would not have placed (5 of 15
such reuses gave another answer than a fresh directory). Both are kept in the store beside the
plan, and a run with another is refused before anything is written, naming the difference.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from ...errors import WdscaleError
from .command import Command
from .store import Store

TRAINED_BY = "trained_by"  # the store's meta keys
TUNE = "tune"
OWN_LOOP = "wdscale's own training loop"
# a tune's arguments that may grow in the same directory: each Optuna search is its own sampler
# seed's and asks the same points however many run beside it (a point it shares with another is
# read from the store), so more searches resume the earlier ones and add their own
GROWS = ("sampler_seeds",)
# set by `wdscale.loading` on a module it loaded from a file path: the file, which names the
# function better than a module name any file of that name would share
LOADED_FROM = "__wdscale_loaded_from__"


def trained_by(train_fn: Optional[Callable[..., Any]], command: Optional[Command] = None) -> str:
    """The identity of what trains a study's runs: a training function's `module:qualname`, or
    `path/file.py:qualname` for one loaded from a file path on the command line; a command's
    arguments, its `{field}` templates as written; wdscale's own loop when there is neither."""
    if command is not None:
        return f"the command {' '.join(command.argv)!r}"
    if train_fn is None:
        return OWN_LOOP
    fn = train_fn.func if isinstance(train_fn, functools.partial) else train_fn
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    loaded_from = getattr(sys.modules.get(module), LOADED_FROM, None)
    return f"{loaded_from or module}:{qualname}"


def _differences(was: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """'key X there, Y here' for each key whose value differs (a nested table's keys by path)."""
    out = []
    for key in sorted(set(was) | set(now)):
        a, b = was.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {json.dumps(a)} there, {json.dumps(b)} here")
    return out


def _fixed(tune: dict[str, Any]) -> dict[str, Any]:
    """A tune's arguments less those that may grow (`GROWS`)."""
    return {k: v for k, v in tune.items() if k not in GROWS}


def check_identity(store: Store, out: Path, fn: str, tune: Optional[dict]) -> None:
    """Refuse a study directory whose runs were trained by another function, or made by a tune
    with other arguments (or by a tune, for a plain run, or the other way round); then keep these
    in the store. A store with no runs takes the new ones; a store written before they were kept
    takes them as they are now.

    Args:
        store: the study's store, open for writing.
        out: the study directory (for the message).
        fn: what trains the runs (`trained_by`).
        tune: a tune's arguments (`tune_study`, `optuna_search`; JSON values), None for a study.

    Raises:
        WdscaleError: another training function, or other tune arguments (more Optuna searches
            are not other arguments: `GROWS`), naming the difference.
    """
    tune = None if tune is None else json.loads(json.dumps(tune))  # as it reads back: tuples are lists
    if store.done_ids():
        stored_fn = store.meta(TRAINED_BY)
        if stored_fn is not None and stored_fn != fn:
            raise WdscaleError(
                f"{str(out)!r} holds runs trained by {stored_fn}, and this study trains with {fn}: a study directory "
                "holds the runs of one training function; use another --out, or the function its runs were trained by"
            )
        stored_tune = store.meta(TUNE)
        if stored_tune is not None and tune is None:
            raise WdscaleError(
                f"{str(out)!r} holds a tune ({stored_tune.get('search', 'ladder')} to {stored_tune.get('target')}): "
                "runs added to it would change what the same tune finds there; use another --out"
            )
        if stored_tune is not None and tune is not None:
            was, now = _fixed(stored_tune), _fixed(tune)
            if was != now:
                diffs = _differences(was, now)
                raise WdscaleError(
                    f"{str(out)!r} holds a tune with other arguments ({'; '.join(diffs[:4])}): its stored runs would "
                    "steer this one, which would then not find what a fresh directory finds; use another --out, or "
                    "the arguments it was made with"
                )
    store.set_meta(TRAINED_BY, fn)
    if tune is not None or store.meta(TUNE) is not None:
        store.set_meta(TUNE, tune)
