"""A race result's table of runs: each run's optimizer, hyperparameters and start."""

from __future__ import annotations

import pytest

from descentlab import lab, optim


def test_the_run_table_reads_each_run_like_a_list_built_up_front():
    starts = [[1.0, 1.0], [2.0, -1.0], [0.5, 0.5]]
    entries = [
        ("momentum", {"lr": [0.01, 0.1], "momentum": 0.5}),
        "adam",
        ("rmsprop", {"lr": 0.02}),
    ]
    result = lab.race("ravine", entries, starts, 3)
    table = result.runs
    expected = []
    for key, settings_given, runs in (
        ("momentum", {"momentum": 0.5}, 6),
        ("adam", {}, 3),
        ("rmsprop", {"lr": 0.02}, 3),
    ):
        for run in range(runs):
            defaults = {h.name: h.default for h in optim.spec(key).hyperparameters}
            swept = {"lr": [0.01, 0.1][run // 3]} if key == "momentum" else {}
            expected.append((key, {**defaults, **settings_given, **swept}, tuple(starts[run % 3])))
    assert len(table) == 12
    for info, (key, hyperparameters, start) in zip(table, expected, strict=True):
        assert info.optimizer == key and info.start == start
        assert info.hyperparameters == pytest.approx(hyperparameters)
    assert table[-1] == table[11] and table[3:5] == [table[3], table[4]]
    assert list(table) == list(result.runs)
    with pytest.raises(IndexError):
        table[12]


def test_values_given_by_the_constructors_name_are_reported_by_the_specs_names():
    """``betas=(0.5, 0.9)`` is what the runs used: beta1 and beta2 say so, not the defaults."""
    by_constructor = lab.race("ravine", [("adam", {"betas": (0.5, 0.9)})], [[1.0, 1.0]], 5)
    by_spec = lab.race("ravine", [("adam", {"beta1": 0.5, "beta2": 0.9})], [[1.0, 1.0]], 5)
    reported = by_constructor.runs[0].hyperparameters
    assert (reported["beta1"], reported["beta2"]) == (0.5, 0.9)
    assert by_spec.runs[0].hyperparameters["beta1"] == 0.5
    assert (by_constructor.final == by_spec.final).all()
