"""The number and choice checks every public entry point runs on its arguments.

Each returns the value as a plain Python number (numpy scalars are accepted) or raises a
`WdscaleError` whose message names the argument, its value and what is allowed:
`lr=0.0 is not allowed: lr must be a finite number > 0`. A value of the wrong type (a string
where a number belongs, a bool) raises `WdscaleTypeError`.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterable, TypeVar

from .errors import WdscaleError, WdscaleTypeError

T = TypeVar("T")


def _refuse(name: str, value: Any, allowed: str) -> WdscaleError:
    return WdscaleError(f"{name}={value!r} is not allowed: {name} must be {allowed}")


def check_number(name: str, value: Any) -> float:
    """A finite real number (int, float or numpy scalar; not a bool).

    Args:
        name: the argument's name, as the message shows it.
        value: what the caller passed.

    Returns:
        `value` as a float.

    Raises:
        WdscaleTypeError: `value` is not a real number.
        WdscaleError: `value` is nan or infinite.
    """
    # numbers.Real takes numpy scalars (np.float32(1e-3)) as well as int and float
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WdscaleTypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _refuse(name, value, "a finite number")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0, as a float. Raises as `check_number`, and WdscaleError for <= 0."""
    number = check_number(name, value)
    if number <= 0:
        raise _refuse(name, value, "a finite number > 0")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """A finite number >= 0, as a float. Raises as `check_number`, and WdscaleError for < 0."""
    number = check_number(name, value)
    if number < 0:
        raise _refuse(name, value, "a finite number >= 0")
    return number


def check_fraction(name: str, value: Any) -> float:
    """A number in [0, 1), as a float. Raises as `check_number`, and WdscaleError outside [0, 1)."""
    number = check_number(name, value)
    if not 0 <= number < 1:
        raise _refuse(name, value, "a number in [0, 1)")
    return number


def check_positive_int(name: str, value: Any) -> int:
    """An integer > 0 (int or numpy integer; not a bool, nor a float such as 2.0), as an int.

    Raises WdscaleTypeError for a value that is not a number, WdscaleError for any other number.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WdscaleTypeError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(value, numbers.Integral) or value <= 0:
        raise _refuse(name, value, "a positive integer")
    return int(value)


# torch's intra-op threads on a machine wdscale cannot see the cores of (a Ray cluster's worker): at
# most this many (torch crashed with a segmentation fault at 10,000)
MAX_REMOTE_THREADS = 1024


def check_threads(value: Any, *, local: bool = True) -> int:
    """torch intra-op threads per run: a whole number from 1 to this machine's cores (`local`),
    or to MAX_REMOTE_THREADS for workers on other machines.

    Raises:
        WdscaleTypeError: `value` is not a number.
        WdscaleError: any other value outside that range.
    """
    threads = check_positive_int("threads", value)
    most = (os.cpu_count() or 1) if local else MAX_REMOTE_THREADS
    if threads > most:
        where = f"this machine has {most} cores" if local else f"at most {most}"
        raise _refuse("threads", value, f"a whole number from 1 to {most} ({where})")
    return threads


def check_choice(name: str, value: Any, allowed: Iterable[T]) -> T:
    """One of a closed set of values (strings are compared as given).

    Args:
        name: the argument's name, as the message shows it.
        value: what the caller passed.
        allowed: the values it may take, in the order the message lists them.

    Returns:
        `value`, unchanged.

    Raises:
        WdscaleError: `value` is not in `allowed`.
    """
    options = list(allowed)
    if value not in options:
        raise WdscaleError(f"{name}={value!r} is not allowed: {name} must be one of {', '.join(map(str, options))}")
    return value
