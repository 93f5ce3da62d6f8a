"""Loading a user's object named on the command line: `module:name` or `path/to/file.py:name`.

Both command lines (`wdscale explain --model`, `wdscale study run --model/--data`) use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Callable

from .errors import WdscaleError


class UsageError(WdscaleError):
    """A bad command line: printed as one line, exit status 2."""


def load_object(spec: str, what: str) -> Callable:
    """`package.module:attr` or `path/to/file.py:attr` -> the object, with an error that names what is wrong.

    A module name is looked up on sys.path with the current directory first, as `python -m` does,
    so `mymodels:make` works in the directory that holds mymodels.py. A file path is loaded by path;
    its directory goes on sys.path too, so worker processes can import it again by name.

    Args:
        spec: `module:attr` or `path/to/file.py:attr`.
        what: how the message names the argument (e.g. "--model").

    Returns:
        The attribute.

    Raises:
        UsageError: a malformed spec, a module that does not import, a missing file or
            attribute, or a file whose code fails.
    """
    source, sep, attr = spec.rpartition(":")
    if not sep or not source or not attr:
        raise UsageError(
            f"{what} {spec!r} must look like module:factory or path/to/file.py:factory (e.g. mypkg.models:make_mlp)"
        )
    if source.endswith(".py") or os.sep in source or "/" in source:
        module, where = _load_file(source, spec, what), f"file {source!r}"
    else:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(source)
        except ImportError as e:
            raise UsageError(
                f"{what} {spec!r}: cannot import {source!r} ({e}); looked in the current directory "
                f"{cwd} and on sys.path; a file also works: path/to/file.py:{attr}"
            ) from e
        where = f"module {source!r}"
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UsageError(f"{what} {spec!r}: {where} has no attribute {attr!r}") from None


def _load_file(path: str, spec: str, what: str) -> ModuleType:
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"{what} {spec!r}: no such file {path!r}")
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
        return loaded
    if loaded is not None or not name.isidentifier():
        name = f"_wdscale_user_{abs(hash(path))}"  # another module has the name: load it beside, privately
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # the file's own imports of its neighbours work, as under `python file.py`
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{what} {spec!r}: cannot load {path!r} as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    # the file names its functions (a study keeps which function trained its runs: two files of one
    # name would otherwise read the same); wdscale.study.run.identity.LOADED_FROM
    module.__wdscale_loaded_from__ = path  # type: ignore[attr-defined]
    sys.modules[name] = module  # pickling (worker processes) finds functions by their module's name
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's code: say where it failed, not a deep traceback
        del sys.modules[name]
        raise UsageError(f"{what} {spec!r}: running {path!r} failed: {type(e).__name__}: {e}") from e
    return module
