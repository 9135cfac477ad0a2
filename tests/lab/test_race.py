"""The lab's race: same numbers as torch.optim run one trajectory at a time, the course's claims,
run expansion rules, metrics, options and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descentlab import lab, landscapes, optim


def _torch_path(optimizer_class, kwargs, start, steps, landscape):
    position = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([position], **kwargs)
    path = [position.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        landscape(position[None]).sum().backward()
        optimizer.step()
        path.append(position.detach().clone())
    return torch.stack(path)


@pytest.mark.parametrize(
    ("key", "torch_class", "kwargs"),
    [
        ("adam", torch.optim.Adam, {"lr": 0.05}),
        ("sgd", torch.optim.SGD, {"lr": 1e-3}),
        ("momentum", torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 1e-2}),
        ("rprop", torch.optim.Rprop, {"lr": 1e-2}),
    ],
)
def test_paths_equal_single_run_torch_optim(key, torch_class, kwargs):
    surface = landscapes.get("rosenbrock")
    starts = [[-1.5, 2.0], [0.5, -0.5], [1.2, 1.1]]
    result = lab.race(surface, [(key, {"lr": kwargs["lr"]})], starts, 60, dtype=torch.float64)
    for run, start in enumerate(starts):
        expected = _torch_path(torch_class, kwargs, start, 60, surface)
        torch.testing.assert_close(result.path[:, run], expected, rtol=1e-12, atol=1e-14)


def test_newton_lands_on_the_saddle_point_in_one_step():
    result = lab.race("saddle", ["newton"], [[0.7, -1.3], [-2.0, 0.4]], 1, dtype=torch.float64)
    torch.testing.assert_close(
        result.final, torch.zeros(2, 2, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_momentum_beats_plain_gradient_descent_on_the_ravine():
    result = lab.race(
        "ravine", ["sgd:lr=0.2", "momentum:lr=0.2"], [[-4.0, 1.5]], 400, tolerance=1e-6
    )
    plain, heavy_ball = result.steps_to_tolerance.tolist()
    assert heavy_ball > 0, "momentum never reached the minimum"
    assert plain == -1 or heavy_ball < plain


def test_adagrad_effective_step_never_grows():
    result = lab.race(
        "anisotropic_well",
        ["adagrad:lr=0.3"],
        [[-1.5, 1.0]],
        80,
        record="inspect",
        dtype=torch.float64,
    )
    sizes = result.effective_step_size()[:, 0]
    finite = torch.isfinite(sizes).all(dim=1)
    steps = sizes[finite]
    assert (steps[1:] <= steps[:-1] * (1 + 1e-9)).all()


def test_sweep_pairs_values_with_starts_when_counts_match():
    lrs = torch.logspace(-4, -1, 8)
    result = lab.race("rosenbrock", [("adam", {"lr": lrs})], "random:8", 5, record="final")
    assert len(result.runs) == 8
    assert [r.hyperparameters["lr"] for r in result.runs] == pytest.approx(lrs.tolist())
    assert len({r.start for r in result.runs}) == 8


def test_sweep_crosses_starts_when_counts_differ():
    result = lab.race(
        "ravine", [("sgd", {"lr": [0.01, 0.1]}), "adam"], [[1.0, 1.0], [2.0, -1.0], [0.5, 0.5]], 3
    )
    assert len(result.runs) == 2 * 3 + 3
    assert [r.optimizer for r in result.runs] == ["sgd"] * 6 + ["adam"] * 3


def test_entries_with_their_own_starts_equal_separate_races():
    own = [
        ("sgd", {"lr": [0.1, 0.3]}, [[-2.0, 1.0], [1.0, -1.0]]),
        ("adam", {"lr": 0.05}, [[0.5, 0.5], [2.0, 0.2], [-1.0, -1.0]]),
        ("bfgs", {}, [[2.5, -1.5]]),
    ]
    shared = lab.race("ravine", own, steps=20)
    assert [r.optimizer for r in shared.runs] == ["sgd"] * 2 + ["adam"] * 3 + ["bfgs"]
    alone = [lab.race("ravine", [(key, hp)], starts, 20) for key, hp, starts in own]
    assert torch.equal(shared.path, torch.cat([result.path for result in alone], dim=1))
    assert [r.start for r in shared.runs] == [r.start for result in alone for r in result.runs]


@pytest.mark.parametrize("record", ["final", "path", "inspect"])
@pytest.mark.parametrize("landscape", ["himmelblau", "x**2 + 3*y**2 - x*y"])
@pytest.mark.parametrize("closure_driven", [True, False])
def test_runs_stepped_and_recorded_jointly_equal_each_entry_raced_alone(
    record, landscape, closure_driven
):
    """First-order entries share one tensor, one gradient evaluation (closed form or autograd)
    and one record copy a step; Schedule-Free's averaged point, Muon's matrix view, a
    closure-driven method, clipping and projection must come out as if raced alone."""
    entries = [
        ("sgd", {"lr": [0.01, 0.02]}),
        ("schedulefree_sgd", {"lr": 0.05}),
        ("newton", {}),
        ("adam", {"lr": 0.1}),
        ("muon", {"lr": 0.05}),
        ("rmsprop", {"lr": 0.01}),
    ]
    if not closure_driven:  # every run in the joint record, which is then the race's record
        entries.remove(("newton", {}))
    options = dict(steps=12, record=record, clip=5.0, project="domain", seed=3)
    starts = [[-1.0, 2.0], [3.5, -1.5]]
    together = lab.race(landscape, entries, starts, **options)
    alone = [lab.race(landscape, [entry], starts, **options) for entry in entries]
    for name in ("final", "final_loss", "diverged_at", "steps_to_tolerance"):
        expected = torch.cat([getattr(result, name) for result in alone])
        assert torch.equal(getattr(together, name), expected), name
    for name in ("path", "loss", "grad"):
        if getattr(together, name) is None:
            assert record == "final" or (name == "grad" and record == "path")
            continue
        expected = torch.cat([getattr(result, name) for result in alone], dim=1)
        assert torch.equal(getattr(together, name), expected), name
    if record == "inspect":
        assert together.state.keys() >= {"exp_avg", "exp_avg_sq", "square_avg"}
        adam = [run.optimizer for run in together.runs].index("adam")
        expected = alone[[key for key, _ in entries].index("adam")].state["exp_avg"]
        torch.testing.assert_close(together.state["exp_avg"][:, adam : adam + 2], expected)


def test_divergence_is_marked_per_run_without_stopping_the_others():
    result = lab.race("ravine", [("sgd", {"lr": [0.1, 3.0]})], [[1.0, 1.0]], 100)
    assert result.diverged.tolist() == [False, True]
    assert math.isfinite(float(result.final_loss[0])) and result.final_loss[0] < 1e-2


def test_metrics_distance_and_steps_to_tolerance():
    result = lab.race("booth", ["adam:lr=0.1"], [[0.0, 0.0]], 600, tolerance=1e-4)
    assert result.distance_to_minimum[0] < 1e-2
    reached = int(result.steps_to_tolerance[0])
    assert 0 < reached <= 600
    assert result.loss[reached] <= 1e-4 + 1e-7 and result.loss[reached - 1] > 1e-4


def test_gradient_noise_is_seeded():
    one = lab.race("ravine", ["sgd:lr=0.1"], [[1.0, 1.0]], 20, noise=0.5, seed=3)
    two = lab.race("ravine", ["sgd:lr=0.1"], [[1.0, 1.0]], 20, noise=0.5, seed=3)
    other = lab.race("ravine", ["sgd:lr=0.1"], [[1.0, 1.0]], 20, noise=0.5, seed=4)
    assert torch.equal(one.path, two.path) and not torch.equal(one.path, other.path)


def test_projection_keeps_runs_in_the_box_and_ball():
    result = lab.race("ravine", ["sgd:lr=0.1"], [[-1.0, 1.0]], 30, project=lab.Box(0.5, 2.0))
    assert (result.path[1:] >= 0.5 - 1e-7).all() and (result.path[1:] <= 2.0).all()
    ball = lab.race("rosenbrock", ["adam:lr=0.05"], [[-0.5, 0.5]], 50, project=lab.Ball(0.6))
    assert (ball.path[1:].norm(dim=-1) <= 0.6 + 1e-6).all()  # the start lies outside


def test_clipping_limits_each_runs_step():
    result = lab.race("ravine", ["sgd:lr=1.0"], [[-4.0, 1.5]], 1, clip=0.1)
    assert (result.path[1, 0] - result.path[0, 0]).norm() <= 0.1 + 1e-6


def test_restarts_keep_the_best_of_several_starts():
    single = lab.race("himmelblau", ["adam:lr=0.05"], [[-0.27, -0.92]], 200)
    best = lab.race("rastrigin", ["adam:lr=0.01"], [[2.5, 2.5]], 200, restarts=16, seed=1)
    alone = lab.race("rastrigin", ["adam:lr=0.01"], [[2.5, 2.5]], 200)
    assert best.final_loss[0] < alone.final_loss[0]
    assert len(best.runs) == 1 and single.final.shape == (1, 2)


def test_with_restarts_each_run_reports_the_start_it_kept():
    starts = [[2.5, 2.5], [0.1, 0.1]]
    result = lab.race("rastrigin", ["adam:lr=0.01"], starts, 50, restarts=8, seed=1, record="path")
    reported = torch.tensor([run.start for run in result.runs])
    assert torch.equal(reported, result.path[0])
    assert not torch.equal(reported, torch.tensor(starts))  # a random replica won somewhere


def test_numpy_step_counts_and_a_tuple_of_names_are_taken():
    result = lab.race("ravine", ("sgd", "adam"), [[1.0, 1.0]], np.int64(3), restarts=np.int64(1))
    assert [run.optimizer for run in result.runs] == ["sgd", "adam"] and result.steps == 3


def test_typed_expression_races():
    result = lab.race("x**2 + 10*sin(y)", ["adam:lr=0.1"], [[1.0, 1.0]], 100)
    assert result.final_loss[0] < result.loss[0, 0]


def test_schedule_scales_the_learning_rate():
    from descentlab.schedules import create

    halves = create("step", step_size=1, gamma=0.5)
    result = lab.race(
        "ravine", ["sgd:lr=0.1"], [[-4.0, 0.0]], 3, schedule=halves, dtype=torch.float64
    )
    moves = (result.path[1:, 0, 0] - result.path[:-1, 0, 0]).tolist()
    gradients = (0.2 * result.path[:-1, 0, 0]).tolist()  # d/dx of 0.1 x^2
    for t, (move, grad) in enumerate(zip(moves, gradients, strict=True)):
        assert move == pytest.approx(-0.1 * 0.5**t * grad)


def test_one_schedule_per_entry_equals_each_entry_raced_under_its_own():
    from descentlab.schedules import create

    schedules = [create("cosine", total_steps=40), None, create("step", step_size=10, gamma=0.5)]
    entries = [("sgd", {"lr": 0.02}), ("sgd", {"lr": 0.02}), ("adam", {"lr": 0.1})]
    together = lab.race("himmelblau", entries, [[-4.0, 4.0]], 40, schedule=schedules)
    for index, (entry, schedule) in enumerate(zip(entries, schedules, strict=True)):
        alone = lab.race("himmelblau", [entry], [[-4.0, 4.0]], 40, schedule=schedule)
        assert torch.equal(together.path[:, index], alone.path[:, 0])
    assert not torch.equal(together.path[:, 0], together.path[:, 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": [None, None]}, "one schedule .or None. per optimizer entry"),
        ({"optimizers": [("sgd", {}, [[1.0, 2.0, 3.0]])]}, r"points of 2 coordinates"),
        ({"optimizers": [("sgd", {}, "random:0")]}, "random:N needs"),
        ({"optimizers": ["adamm"]}, "unknown optimizer 'adamm'"),
        ({"optimizers": ["sgd:lr=fast"]}, "lr must be a number"),
        ({"optimizers": [("sgd", {"lr": [0.1, 0.2], "momentum": [0.1, 0.2, 0.3]})]}, "same length"),
        ({"starts": "random:0"}, "random:N needs"),
        ({"starts": [[1.0, 2.0, 3.0]]}, r"points of 2 coordinates"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"record": "all"}, "record must be one of"),
        ({"restarts": 0}, "restarts must be a positive integer"),
        ({"landscape": "x +* y"}, "invalid"),
        ({"schedule": "cosine"}, r"schedule must be a descentlab.schedules schedule"),
        ({"noise_schedule": "cosine"}, r"noise_schedule must be a descentlab.schedules"),
        ({"clip": float("nan")}, "clip must be a finite number"),
        ({"noise": float("nan")}, "noise must be a finite number"),
        ({"tolerance": float("nan")}, "tolerance must be a finite number"),
        ({"optimizers": 5}, "optimizers: give a name"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    arguments = {
        "landscape": "ravine",
        "optimizers": ["sgd"],
        "starts": [[1.0, 1.0]],
        "steps": 3,
        **kwargs,
    }
    with pytest.raises((ValueError, TypeError), match=message):
        lab.race(arguments.pop("landscape"), arguments.pop("optimizers"), **arguments)


def test_steps_to_tolerance_agree_between_record_modes_and_ignore_diverged_runs():
    optimizers = [("sgd", {"lr": [0.2, 0.45, 3.0]})]
    final = lab.race("ravine", optimizers, [[1.0, 1.0]], 150, record="final", tolerance=1e-4)
    path = lab.race("ravine", optimizers, [[1.0, 1.0]], 150, record="path", tolerance=1e-4)
    assert torch.equal(final.steps_to_tolerance, path.steps_to_tolerance)
    assert final.steps_to_tolerance[2] == -1 and final.diverged[2]
    assert 0 < final.steps_to_tolerance[1] < final.steps_to_tolerance[0]


#: Runs that overflow float32 at different steps, and a loss that turns NaN where the position
#: stays finite (the log of a negative number).
DIVERGING = [
    ("ravine", [("sgd", {"lr": [0.1, 3.0, 1.05]})], [[1.0, 1.0]], 100, torch.float32, [-1, 19, 38]),
    ("(x-1)**2 + y**2 + 0.01*log(x)", ["sgd:lr=0.9"], [[3.0, 0.0]], 20, torch.float64, [1]),
]


@pytest.mark.parametrize(
    ("landscape", "optimizers", "start", "steps", "dtype", "expected"), DIVERGING
)
def test_divergence_steps_agree_between_record_modes(
    landscape, optimizers, start, steps, dtype, expected
):
    results = [
        lab.race(landscape, optimizers, start, steps, record=mode, dtype=dtype)
        for mode in ("final", "path", "inspect")
    ]
    for result in results:
        assert result.diverged_at.tolist() == expected
        assert torch.equal(result.diverged, results[0].diverged)


def test_schedule_free_is_recorded_at_its_averaged_point():
    result = lab.race(
        "ravine", ["schedulefree_sgd:lr=0.05"], [[-2.0, 1.0]], 20, dtype=torch.float64
    )
    from descentlab.optim import ScheduleFreeSGD

    position = torch.tensor([[-2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    optimizer = ScheduleFreeSGD([{"params": [position], "stack_dims": 1}], lr=0.05)
    surface = landscapes.get("ravine")
    for _ in range(20):
        optimizer.zero_grad()
        surface(position).sum().backward()
        optimizer.step()
    optimizer.eval()
    torch.testing.assert_close(result.final, position.detach(), rtol=1e-12, atol=1e-14)


def test_muon_races_each_point_as_a_one_row_matrix():
    # Orthogonalizing a 1 x D matrix normalizes it: Muon's first step has length lr * sqrt(max(1, 1/D)).
    result = lab.race(
        "ravine",
        ["muon:lr=0.1,momentum=0.0,weight_decay=0.0"],
        [[-2.0, 1.0]],
        1,
        dtype=torch.float64,
    )
    step = result.path[1, 0] - result.path[0, 0]
    assert step.norm() > 0
    gradient = torch.tensor([0.2 * -2.0, 4.0 * 1.0], dtype=torch.float64)
    cosine = torch.dot(-step, gradient) / (step.norm() * gradient.norm())
    assert cosine > 0.99  # along the negative gradient


@pytest.mark.parametrize("key", optim.names())
def test_every_optimizer_races_with_swept_hyperparameters_restarts_and_the_inspector(key):
    sweep = {"lr": [1e-4, 1e-3]} if "lr" in optim.spec(key).defaults else {}
    starts = [[-1.2, 1.0], [0.3, 0.2], [0.5, 1.5]]
    result = lab.race("rosenbrock", [(key, sweep)], starts, 8, record="inspect", restarts=2)
    runs = 6 if sweep else 3  # two values crossed with three starts
    assert len(result.runs) == runs
    assert result.path.shape == (9, runs, 2) and result.grad.shape == (8, runs, 2)
    assert torch.isfinite(result.path[0]).all()


@pytest.mark.parametrize(("key", "start"), [("bfgs", [-1.2, 1.0]), ("lbfgs", [1.5, -0.5])])
def test_quasi_newton_races_converge_like_the_optimizer_driven_directly(key, start):
    """Line searches evaluate several points per step; the race's position must be a plain leaf
    (a view leaf read through an older view gave stale gradients and stalled BFGS at loss 3.5)."""
    result = lab.race("rosenbrock", [key], [start], 300, dtype=torch.float64)
    assert float(result.final_loss[0]) < 1e-9


def test_integer_settings_typed_in_an_entry_stay_integers():
    result = lab.race("rosenbrock", ["bfgs:max_iter=2,lr=1"], [[-1.2, 1.0]], 3)
    assert result.runs[0].hyperparameters["max_iter"] == 2


def test_a_race_with_random_probes_follows_the_races_seed():
    """Sophia draws Hessian probes: the race's seed fixes them, alone or beside other entries."""

    def final(optimizers, seed=0):
        result = lab.race(
            "rosenbrock", optimizers, [[0.3, 0.2]], 15, seed=seed, dtype=torch.float64
        )
        return result.final[-1]

    torch.manual_seed(1)
    first = final(["sophia:lr=0.01"])
    torch.manual_seed(2)  # torch's global generator plays no part
    assert torch.equal(final(["sophia:lr=0.01"]), first)
    assert torch.equal(final(["adam", "sophia:lr=0.01"]), first)
    assert not torch.equal(final(["sophia:lr=0.01"], seed=1), first)
