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


def test_an_interrupt_exits_130_and_a_hung_exit_is_ended_after_the_grace(monkeypatch, capsys):
    import time

    ended: list[int] = []

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_rules", interrupted)
    monkeypatch.setattr(cli, "EXIT_GRACE_S", 0.05)
    monkeypatch.setattr(cli.os, "_exit", ended.append)
    assert cli.main(["rules"]) == 130
    assert "interrupted; finished runs are kept" in capsys.readouterr().err
    assert ended == []  # not at once: exit gets its grace first
    deadline = time.time() + 5
    while not ended and time.time() < deadline:
        time.sleep(0.01)
    assert ended == [130]  # still alive after the grace (as if exit hung): ended with the same status
