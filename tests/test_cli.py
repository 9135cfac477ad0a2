import math

import pytest

from descentlab import cli, optim


def test_demo_runs_every_optimizer_and_reduces_the_loss(capsys):
    assert cli.main(["demo", "--steps", "50"]) == 0
    printed = capsys.readouterr().out
    for key in optim.names():
        assert f"  {key} " in printed


def test_demo_results_are_finite_and_below_the_start():
    for key, loss in cli.demo(steps=200):
        assert math.isfinite(loss), key
        assert loss < 9.6, key  # f(-4, 2) = 9.6


def test_bad_steps_is_a_clear_error(capsys):
    assert cli.main(["demo", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["dance"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
