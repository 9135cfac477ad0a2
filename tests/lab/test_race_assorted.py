"""Races on several landscapes at once (lab.race_assorted): each landscape's share equals that
landscape raced alone, bit for bit; bad arguments are refused with the argument's name."""

from __future__ import annotations

import pytest
import torch

from descentlab import lab, schedules

# A built-in landscape whose domain is small (ravine), one with four minima (himmelblau), and a
# typed expression with no known minimum (autograd's gradient; never within tolerance).
LANDSCAPES = ["ravine", "himmelblau", "x**2 + 3*sin(y)", "rosenbrock"]
OWNER = [0, 1, 2, 3, 1, 0, 3, 2]  # run i of each entry lies on LANDSCAPES[OWNER[i]]
STARTS = [[-2.0 + 0.5 * i, 1.0 - 0.3 * i] for i in range(len(OWNER))]
LRS = [0.002 * (i + 1) for i in range(len(OWNER))]


def _entries(runs: list[int]) -> list:
    """Entries of every kind of runner, restricted to ``runs``: first-order (SGD with one run
    whose lr makes it diverge), Adam, Schedule-Free (judged at its averaged point), Muon (a
    matrix view), Newton (closure-driven, second order)."""
    sgd_lrs = [10.0 if i == 0 else lr for i, lr in enumerate(LRS)]
    per_run = {
        "sgd": {"lr": sgd_lrs},
        "adam": {"lr": [10 * lr for lr in LRS]},
        "schedulefree_sgd": {"lr": LRS},
        "muon": {"lr": LRS},
        "newton": {},
    }
    return [
        (key, {name: [values[i] for i in runs] for name, values in hps.items()}, [STARTS[i] for i in runs])
        for key, hps in per_run.items()
    ]  # fmt: skip


@pytest.mark.parametrize("record", ["final", "path", "inspect"])
def test_each_landscapes_share_equals_it_raced_alone(record):
    options = dict(
        steps=15,
        record=record,
        clip=50.0,
        tolerance=1e-2,
        schedule=[None, schedules.create("cosine", total_steps=15), None, None, None],
    )
    owner = OWNER * len(_entries([0]))
    shares = lab.race_assorted(LANDSCAPES, _entries(list(range(len(OWNER)))), owner, **options)
    assert [share.landscape.key for share in shares] == [
        lab.race(text, [("sgd", {}, [[0.0, 0.0]])], steps=1).landscape.key for text in LANDSCAPES
    ]
    for index, (text, share) in enumerate(zip(LANDSCAPES, shares, strict=True)):
        runs = [i for i, o in enumerate(OWNER) if o == index]
        alone = lab.race(text, _entries(runs), **options)
        assert list(share.runs) == list(alone.runs)
        for name in ("final", "final_loss", "diverged_at", "steps_to_tolerance", "path", "loss"):
            mine, theirs = getattr(share, name), getattr(alone, name)
            if theirs is None:
                assert mine is None and record == "final", name
                continue
            assert torch.equal(mine.nan_to_num(), theirs.nan_to_num()), (text, name)
        assert torch.equal(
            share.distance_to_minimum.nan_to_num(-1), alone.distance_to_minimum.nan_to_num(-1)
        )
        if record == "inspect":
            assert torch.equal(share.grad, alone.grad)
            assert share.state.keys() == alone.state.keys()
            for name, trace in alone.state.items():
                assert torch.equal(share.state[name].nan_to_num(), trace.nan_to_num()), name
    # The checks above can fail: a run diverged (on ravine's small domain), some reached the
    # tolerance, and the expression, with no known minimum, reached nothing.
    assert bool(shares[0].diverged.any())
    assert (shares[2].steps_to_tolerance == -1).all()
    assert shares[2].distance_to_minimum.isnan().all()


def test_a_race_on_several_landscapes_refuses_bad_arguments_by_name():
    entries = [("adam", {}, [[0.0, 1.0], [1.0, 0.0]])]
    with pytest.raises(ValueError, match="same dimension"):
        lab.race_assorted(["ravine", "x**2 + y**2 + z**2"], entries, [0, 1])
    with pytest.raises(ValueError, match="2 landscape indices for 3 runs"):
        lab.race_assorted(["ravine", "booth"], [("adam", {}, [[0, 1], [1, 0], [1, 1]])], [0, 1])
    with pytest.raises(ValueError, match="run_landscape: indices must lie in 0..1"):
        lab.race_assorted(["ravine", "booth"], entries, [0, 2])
    with pytest.raises(ValueError, match=r"landscapes\[1\] \(booth\) has no runs"):
        lab.race_assorted(["ravine", "booth"], entries, [0, 0])
    with pytest.raises(ValueError, match=r"optimizers\[0\]: .* its own start points"):
        lab.race_assorted(["ravine", "booth"], ["adam"], [0, 1])
    with pytest.raises(ValueError, match=r"optimizers\[0\]: .* its own start points"):
        lab.race_assorted(["ravine", "booth"], [("adam", {}, "suggested")], [0, 1])
    with pytest.raises(ValueError, match="run_landscape: give one landscape index per run"):
        lab.race_assorted(["ravine", "booth"], entries, [[0, 1]])
    with pytest.raises(ValueError, match="restarts: a race on several landscapes takes no"):
        lab.race_assorted(["ravine", "booth"], entries, [0, 1], restarts=3)
    with pytest.raises(TypeError, match="momentum"):
        lab.race_assorted(["ravine", "booth"], entries, [0, 1], momentum=0.9)
    with pytest.raises(ValueError, match="landscapes: give a non-empty list"):
        lab.race_assorted("ravine", entries, [0, 0])


def test_a_float64_share_reaches_a_tolerance_finer_than_float32():
    """The threshold min + 1e-9 must not be rounded to float32 (below the minimum: never met)."""
    entry = ("adam", {"lr": 0.02}, [[0.5, -0.5]])
    options = {"steps": 400, "dtype": torch.float64, "tolerance": 1e-9}
    alone = lab.race("six_hump_camel", [entry], **options)
    camel, _ = lab.race_assorted(
        ["six_hump_camel", "booth"],
        [entry, ("adam", {"lr": 0.02}, [[0.0, 0.0]])],
        [0, 1],
        **options,
    )
    assert alone.steps_to_tolerance.tolist() == camel.steps_to_tolerance.tolist()
    assert alone.steps_to_tolerance[0] > 0
