"""L-BFGS against a naive textbook reference, against torch.optim.LBFGS, stacked, resumed."""

from __future__ import annotations

import io
import math

import pytest
import torch
from naive_second_order import Problem, quasi_newton

from descentlab.optim.lbfgs import LBFGS

SHAPES = [(2, 3), (4,), (1, 2, 1)]
SIZE = sum(math.prod(shape) for shape in SHAPES)
START = [0.9 * math.sin(3.0 * i + 1.0) + 0.4 for i in range(SIZE)]
PROBLEM = Problem(SIZE, seed=3)


def make_params(start=START, stack=(), shapes=SHAPES):
    params, offset = [], 0
    for shape in shapes:
        count = math.prod(shape)
        values = torch.tensor(start[offset : offset + count], dtype=torch.float64)
        params.append(values.reshape(shape).expand(*stack, *shape).clone().requires_grad_())
        offset += count
    return params


def flat(params, stack_dims=0):
    shape = params[0].shape[:stack_dims]
    return torch.cat([p.detach().reshape(*shape, -1) for p in params], -1)


def closure_for(optimizer, params, stack_dims=0):
    def closure():
        optimizer.zero_grad()
        loss = PROBLEM.torch_loss(
            torch.cat([p.reshape(*p.shape[:stack_dims], -1) for p in params], -1)
        )
        loss.sum().backward()
        return loss

    return closure


def run(make_optimizer, steps, stack=()):
    params = make_params(stack=stack)
    optimizer = make_optimizer(params)
    closure = closure_for(optimizer, params, len(stack))
    for _ in range(steps):
        optimizer.step(closure)
    return params, optimizer


CASES = [
    ("one-group", [list(range(SIZE))], [{}]),
    ("small-memory", [list(range(SIZE))], [{"history_size": 2, "max_iter": 3}]),
    ("no-line-search", [list(range(SIZE))], [{"line_search_fn": None, "lr": 0.05}]),
    ("two-groups", [list(range(10)), list(range(10, SIZE))], [{"lr": 0.8}, {"history_size": 3}]),
]


@pytest.mark.parametrize(("name", "groups", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_matches_naive_reference(name, groups, overrides):
    # Stop at |f_k - f_{k-1}| < 1e-10 ("until convergence"); see test_bfgs for why not further.
    base = {
        "max_iter": 2,
        "max_eval": 8,
        "history_size": 5,
        "tolerance_grad": 1e-12,
        "tolerance_change": 1e-10,
    }
    settings = [{**base, **extra} for extra in overrides]

    def make(params):
        if len(groups) == 1:
            return LBFGS(params, **settings[0])
        return LBFGS([{"params": params[:2], **settings[0]}, {"params": params[2:], **settings[1]}])

    naive_settings = []
    for hp in settings:
        hp = {"lr": 1.0, "line_search_fn": "strong_wolfe", "c1": 1e-4, "c2": 0.9, **hp}
        hp.setdefault("max_eval", hp["max_iter"] * 5 // 4)
        hp["line_search"] = hp.pop("line_search_fn") == "strong_wolfe"
        naive_settings.append(hp)
    for steps in (3, 100):
        params, _ = run(make, steps)
        expected = quasi_newton(
            PROBLEM.value_and_grad, START, groups, naive_settings, steps, "lbfgs"
        )
        torch.testing.assert_close(
            flat(params), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10
        )
    # The reference really optimized: the gradient shrank by orders of magnitude.
    _, start_grad = PROBLEM.value_and_grad(START)
    _, grad = PROBLEM.value_and_grad(expected)
    assert max(abs(g) for g in grad) < 1e-4 * max(abs(g) for g in start_grad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"line_search_fn": "strong_wolfe"},
        {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 4, "lr": 0.7},
        {"line_search_fn": None, "lr": 0.05, "history_size": 4},
    ],
    ids=["wolfe", "wolfe-small", "fixed-step"],
)
def test_matches_torch_lbfgs(kwargs):
    kwargs = {"tolerance_grad": 1e-12, "tolerance_change": 1e-14, **kwargs}
    mine, _ = run(lambda p: LBFGS(p, **kwargs), 30)
    theirs, _ = run(lambda p: torch.optim.LBFGS(p, **kwargs), 30)
    torch.testing.assert_close(flat(mine), flat(theirs), rtol=1e-12, atol=1e-15)


def test_default_is_strong_wolfe_line_search():
    params = make_params()
    assert LBFGS(params).param_groups[0]["line_search_fn"] == "strong_wolfe"


def test_state_dict_resume_is_bit_identical():
    kwargs = {"max_iter": 2, "history_size": 3, "tolerance_grad": 0.0, "tolerance_change": 0.0}
    whole, _ = run(lambda p: LBFGS(p, **kwargs), 10)
    first, optimizer = run(lambda p: LBFGS(p, **kwargs), 4)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    params = [p.detach().clone().requires_grad_() for p in first]
    resumed = LBFGS(params, **kwargs)
    resumed.load_state_dict(torch.load(buffer))
    closure = closure_for(resumed, params)
    for _ in range(6):
        resumed.step(closure)
    for a, b in zip(params, whole, strict=True):
        assert torch.equal(a, b)


def test_stacked_runs_equal_separate_runs():
    lrs = [1.0, 0.5, 0.2]
    kwargs = {"max_iter": 3, "history_size": 2, "tolerance_grad": 1e-9, "tolerance_change": 1e-12}
    starts = [[v * scale for v in START] for scale in (1.0, -0.7, 2.0)]

    # Parameters of equal rank, so that one (K, 1, 1) tensor broadcasts against all of them.
    shapes = [(2, 3), (4, 1), (1, 2)]
    runs = [make_params(start, shapes=shapes) for start in starts]
    pieces = list(zip(*runs, strict=True))
    stacked = [torch.stack([q.detach() for q in piece]).requires_grad_() for piece in pieces]
    lr = torch.tensor(lrs, dtype=torch.float64).reshape(3, 1, 1)
    optimizer = LBFGS([{"params": stacked, "stack_dims": 1}], lr=lr, **kwargs)
    closure = closure_for(optimizer, stacked, stack_dims=1)
    for _ in range(15):
        optimizer.step(closure)

    for k, (start, rate) in enumerate(zip(starts, lrs, strict=True)):
        params = make_params(start, shapes=shapes)
        single = LBFGS(params, lr=rate, **kwargs)
        single_closure = closure_for(single, params)
        for _ in range(15):
            single.step(single_closure)
        torch.testing.assert_close(flat(stacked, 1)[k], flat(params), rtol=1e-12, atol=1e-14)


def test_runs_that_stop_early_wait_unchanged():
    """A run at its minimum (zero gradient) does not move while the others go on."""
    stacked = [torch.zeros(2, *shape, dtype=torch.float64) for shape in SHAPES]
    for p, q in zip(stacked, make_params(), strict=True):
        p[1] = q.detach()
    stacked = [p.requires_grad_() for p in stacked]

    def closure():
        optimizer.zero_grad()
        x = torch.cat([p.reshape(2, -1) for p in stacked], -1)
        loss = (x**2).sum(-1) + (x**4).sum(-1)
        loss.sum().backward()
        return loss

    optimizer = LBFGS([{"params": stacked, "stack_dims": 1}], max_iter=5)
    optimizer.step(closure)
    assert torch.equal(flat(stacked, 1)[0], torch.zeros(SIZE, dtype=torch.float64))
    start = flat(make_params())
    assert flat(stacked, 1)[1].abs().max() < 0.1 * start.abs().max()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"history_size": 0}, "history_size"),
        ({"history_size": 2.5}, "history_size"),
        ({"line_search_fn": "armijo"}, "line_search_fn"),
        ({"lr": -1.0}, "lr"),
        ({"max_iter": 0}, "max_iter"),
        ({"c1": 0.95}, "c1"),
        ({"c2": 1.5}, "c2"),
        ({"tolerance_grad": -1.0}, "tolerance_grad"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LBFGS(make_params(), **kwargs)


def test_per_run_hyperparameter_must_be_constant_within_a_run():
    stacked = [torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        LBFGS([{"params": stacked, "stack_dims": 1}], lr=torch.rand(2, 3, dtype=torch.float64))


def test_missing_closure_is_refused():
    with pytest.raises(ValueError, match="closure"):
        LBFGS(make_params()).step()


def test_stacked_closure_must_return_one_loss_per_run():
    stacked = [torch.ones(2, 3, dtype=torch.float64, requires_grad=True)]
    optimizer = LBFGS([{"params": stacked, "stack_dims": 1}])

    def closure():
        optimizer.zero_grad()
        loss = (stacked[0] ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="one loss per run"):
        optimizer.step(closure)


def _wavy_loss(x):
    """Smooth and non-convex: quasi-Newton iterations amplify any last-bit difference here."""
    return (x**2 - torch.cos(6.28 * x)).sum() + torch.tanh(x).prod()


def _run_on_wavy(optimizer_class, x, steps, **kwargs):
    optimizer = optimizer_class([x], **kwargs)

    def closure():
        optimizer.zero_grad()
        loss = _wavy_loss(x)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return optimizer, closure


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_bit_identical_to_torch_on_a_non_convex_loss(line_search_fn):
    """Same reductions (BLAS dot) and same fused updates (add_ with alpha) as torch's LBFGS:
    before, 20 iterations on this loss magnified a rounding difference to 1e-2."""
    kwargs = {"lr": 1.0 if line_search_fn else 0.3, "line_search_fn": line_search_fn}
    mine = torch.linspace(-1.0, 1.3, 7, dtype=torch.float64).requires_grad_()
    theirs = mine.detach().clone().requires_grad_()
    _run_on_wavy(LBFGS, mine, 2, **kwargs)
    _run_on_wavy(torch.optim.LBFGS, theirs, 2, **kwargs)
    assert torch.equal(mine, theirs)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_torch_state_dict_loads_and_continues_exactly(line_search_fn):
    kwargs = {"lr": 0.3, "history_size": 3, "max_iter": 4, "line_search_fn": line_search_fn}
    theirs = torch.linspace(-1.0, 1.3, 7, dtype=torch.float64).requires_grad_()
    torch_optimizer, torch_closure = _run_on_wavy(torch.optim.LBFGS, theirs, 3, **kwargs)
    buffer = io.BytesIO()
    torch.save(torch_optimizer.state_dict(), buffer)
    buffer.seek(0)
    mine = theirs.detach().clone().requires_grad_()
    optimizer, closure = _run_on_wavy(LBFGS, mine, 0, **kwargs)
    optimizer.load_state_dict(torch.load(buffer))
    assert optimizer.param_groups[0]["stack_dims"] == 0
    assert optimizer.state[mine]["history_count"].item() == 3
    for _ in range(3):
        torch_optimizer.step(torch_closure)
        optimizer.step(closure)
    assert torch.equal(mine, theirs)


def test_torch_state_dict_from_before_any_iteration_loads():
    """torch returns before its first iteration at a zero gradient: only counters are saved."""
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    torch_optimizer = torch.optim.LBFGS([x])

    def closure():
        torch_optimizer.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    torch_optimizer.step(closure)
    assert "d" not in torch_optimizer.state[x]
    y = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    optimizer = LBFGS([y])
    optimizer.load_state_dict(torch_optimizer.state_dict())

    def my_closure():
        optimizer.zero_grad()
        loss = (y**2).sum()
        loss.backward()
        return loss

    optimizer.step(my_closure)
    assert y.detach().abs().max() < 1e-6
    assert optimizer.state[y]["func_evals"].item() > 1
