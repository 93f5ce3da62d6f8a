"""The command line's error contract: bad input is one line and exit 2; a bug keeps its traceback."""

import pytest

from wdscale import cli
from wdscale.errors import WdscaleError


def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys):
    def bad(args):
        raise WdscaleError("lr=-1 is not allowed: lr must be a finite number > 0")

    monkeypatch.setattr(cli, "cmd_rules", bad)
    assert cli.main(["rules"]) == 2
    assert capsys.readouterr().err == "wdscale: error: lr=-1 is not allowed: lr must be a finite number > 0\n"


@pytest.mark.parametrize("bug", [ValueError("internal"), TypeError("internal"), KeyError("internal")])
def test_a_bug_is_not_disguised_as_bad_input(monkeypatch, bug):
    def broken(args):
        raise bug

    monkeypatch.setattr(cli, "cmd_rules", broken)
    with pytest.raises(type(bug)):
        cli.main(["rules"])
