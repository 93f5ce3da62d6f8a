"""The one error type wdscale raises for bad input: the CLI prints it as one line (exit 2);
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class WdscaleError(ValueError):
    """Bad input to wdscale: a value, a file, a store or a command line it cannot use. The message
    names the bad value and what is allowed."""


class WdscaleTypeError(WdscaleError, TypeError):
    """Bad input of the wrong type (still a WdscaleError, and a TypeError for callers that catch one)."""
