"""The shared argument checks: what each accepts, what it returns, and the one message it gives."""

import math
from typing import get_args

import numpy as np
import pytest

import wdscale
from wdscale.checks import (
    check_choice,
    check_fraction,
    check_non_negative,
    check_number,
    check_positive,
    check_positive_int,
)
from wdscale.errors import WdscaleError, WdscaleTypeError
from wdscale.optim import OPTIMIZER_NAMES


def test_numbers_come_back_as_plain_python_numbers():
    assert type(check_number("x", np.float32(0.5))) is float and check_number("x", -3) == -3.0
    assert check_positive("lr", np.float64(1e-3)) == pytest.approx(1e-3)
    assert check_non_negative("weight_decay", 0) == 0.0
    assert check_fraction("p", 0) == 0.0 and check_fraction("p", 0.999) == 0.999
    n = check_positive_int("n", np.int64(7))
    assert n == 7 and type(n) is int


@pytest.mark.parametrize(
    "check,value,message",
    [
        (check_positive, 0.0, "lr=0.0 is not allowed: lr must be a finite number > 0"),
        (check_positive, -1, "lr=-1 is not allowed: lr must be a finite number > 0"),
        (check_positive, math.inf, "lr=inf is not allowed: lr must be a finite number"),
        (check_number, math.nan, "lr=nan is not allowed: lr must be a finite number"),
        (check_non_negative, -0.5, "lr=-0.5 is not allowed: lr must be a finite number >= 0"),
        (check_fraction, 1.0, r"lr=1.0 is not allowed: lr must be a number in \[0, 1\)"),
        (check_fraction, -0.1, r"lr=-0.1 is not allowed"),
        (check_positive_int, 0, "lr=0 is not allowed: lr must be a positive integer"),
        (check_positive_int, 2.0, "lr=2.0 is not allowed: lr must be a positive integer"),
    ],
)
def test_a_bad_value_is_named_with_what_is_allowed(check, value, message):
    with pytest.raises(WdscaleError, match=message) as e:
        check("lr", value)
    assert not isinstance(e.value, TypeError)


@pytest.mark.parametrize(
    "check", [check_number, check_positive, check_non_negative, check_fraction, check_positive_int]
)
@pytest.mark.parametrize("value", ["1", True, None, [1]])
def test_a_value_of_the_wrong_type_is_a_type_error(check, value):
    with pytest.raises(WdscaleTypeError, match=r"^n must be a (number|positive integer), got ") as e:
        check("n", value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)


def test_check_choice_lists_the_allowed_values():
    assert check_choice("optimizer", "adam", ("sgd", "adam")) == "adam"
    with pytest.raises(WdscaleError, match=r"optimizer='lion' is not allowed: optimizer must be one of sgd, adam$"):
        check_choice("optimizer", "lion", ("sgd", "adam"))


def test_closed_value_sets_are_typed_and_match_their_tuples():

    assert get_args(wdscale.ParamKind) == wdscale.KINDS == ("hidden", "input", "output", "vector")
    opts = get_args(wdscale.OptimizerName)
    assert opts == OPTIMIZER_NAMES == wdscale.OPTIMIZER_NAMES == ("sgd", "adam", "adamw", "muon")
    assert get_args(wdscale.DecayMode) == ("coupled", "decoupled")
    assert get_args(wdscale.SettingKind) == ("weight_decay", "tau")
    assert {r.takes for r in wdscale.RULES.values()} <= set(get_args(wdscale.SettingKind))
