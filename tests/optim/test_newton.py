"""Newton against its definition (naive reference), one-step quadratic, Hutchinson, stacked."""

from __future__ import annotations

import io

import pytest
import torch
from naive_second_order import Problem, newton
from test_lbfgs import SIZE, START, flat, make_params

from descentlab.optim.newton import Newton, exact_hessian, hutchinson_diagonal

# The closure convention asks for backward(create_graph=True), about which torch warns.
pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")


def newton_closure(optimizer, params, problem, stack_dims=0):
    def closure():
        optimizer.zero_grad()
        x = torch.cat([p.reshape(*p.shape[:stack_dims], -1) for p in params], -1)
        loss = problem.torch_loss(x)
        loss.sum().backward(create_graph=True)
        return loss

    return closure


def run_newton(problem, steps, make, start=START, shapes=None):
    params = make_params(start) if shapes is None else make_params(start, shapes=shapes)
    optimizer = make(params)
    closure = newton_closure(optimizer, params, problem)
    for _ in range(steps):
        optimizer.step(closure)
    return params, optimizer


GROUPS = [list(range(10)), list(range(10, SIZE))]


@pytest.mark.parametrize(
    ("name", "kwargs", "diagonal"),
    [
        ("exact", {"lr": 0.5, "damping": 0.3}, False),
        ("exact-undamped", {"lr": 1.0, "damping": 0.0}, False),
        ("diagonal", {"lr": 0.5, "damping": 0.2, "hessian": "diagonal", "seed": 1}, True),
    ],
)
@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "two-groups"])
def test_matches_naive_reference(name, kwargs, diagonal, groups):
    # Hutchinson's estimate is exact for a diagonal Hessian, so the diagonal mode is compared
    # with the true diagonal on a separable problem.
    problem = Problem(SIZE, seed=4, separable=diagonal)

    def make(params):
        if not groups:
            return Newton(params, **kwargs)
        second = {**kwargs, "lr": 0.8, "damping": 0.05}
        return Newton([{"params": params[:2], **kwargs}, {"params": params[2:], **second}])

    layout = GROUPS if groups else [list(range(SIZE))]
    lrs = [kwargs["lr"], 0.8] if groups else [kwargs["lr"]]
    dampings = [kwargs["damping"], 0.05] if groups else [kwargs["damping"]]
    for steps in (1, 100):
        params, _ = run_newton(problem, steps, make)
        expected = newton(
            problem.value_and_grad, problem.hessian, START, layout, lrs, dampings, steps, diagonal
        )
        torch.testing.assert_close(
            flat(params), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10
        )
    _, grad = problem.value_and_grad(expected)
    assert max(abs(g) for g in grad) < 1e-8


def test_solves_a_quadratic_in_one_step():
    quadratic = Problem(SIZE, seed=7, w=0.0)
    quadratic.c = [0.0] * SIZE
    a = torch.tensor(quadratic.a, dtype=torch.float64)
    solution = torch.linalg.solve(a, torch.tensor(quadratic.b, dtype=torch.float64))
    params, _ = run_newton(quadratic, 1, lambda p: Newton(p))
    torch.testing.assert_close(flat(params), solution, rtol=0, atol=1e-12)


def test_exact_hessian_of_stacked_runs():
    problem = Problem(4, seed=2)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_()
    (grad,) = torch.autograd.grad(problem.torch_loss(x).sum(), x, create_graph=True)
    hessians = exact_hessian([x], [grad], stack_dims=1)
    for k in range(3):
        expected = torch.tensor(problem.hessian(x[k].tolist()), dtype=torch.float64)
        torch.testing.assert_close(hessians[k], expected, rtol=1e-13, atol=1e-13)


def test_hutchinson_converges_to_the_true_diagonal():
    problem = Problem(5, seed=6)
    x = torch.tensor(START[:5], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(problem.torch_loss(x), x, create_graph=True)
    truth = torch.tensor([problem.hessian(START[:5])[i][i] for i in range(5)])
    errors = []
    for samples in (10, 100, 10_000):
        generator = torch.Generator().manual_seed(0)
        (estimate,) = hutchinson_diagonal([x], [grad], samples, generator)
        errors.append((estimate - truth.to(estimate)).abs().max().item())
    assert errors[-1] < 0.05 < errors[0]
    # Reproducible: the same seed gives the same estimate.
    again = hutchinson_diagonal([x], [grad], 10, torch.Generator().manual_seed(0))[0]
    first = hutchinson_diagonal([x], [grad], 10, torch.Generator().manual_seed(0))[0]
    assert torch.equal(again, first)


@pytest.mark.parametrize("hessian", ["exact", "diagonal"])
def test_state_dict_resume_is_bit_identical(hessian):
    problem = Problem(SIZE, seed=4)
    kwargs = {"lr": 0.5, "damping": 1.0, "hessian": hessian, "seed": 3}
    whole, _ = run_newton(problem, 8, lambda p: Newton(p, **kwargs))
    first, optimizer = run_newton(problem, 3, lambda p: Newton(p, **kwargs))
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    params = [p.detach().clone().requires_grad_() for p in first]
    resumed = Newton(params, **kwargs)
    resumed.load_state_dict(torch.load(buffer))
    closure = newton_closure(resumed, params, problem)
    for _ in range(5):
        resumed.step(closure)
    for a, b in zip(params, whole, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("hessian", ["exact", "diagonal"])
def test_stacked_runs_equal_separate_runs(hessian):
    problem = Problem(SIZE, seed=4, separable=hessian == "diagonal")
    dampings, lrs = [0.0, 0.5, 2.0], [1.0, 0.7, 0.3]
    starts = [[v * scale for v in START] for scale in (1.0, -0.7, 2.0)]
    shapes = [(2, 3), (4, 1), (1, 2)]
    runs = [make_params(start, shapes=shapes) for start in starts]
    stacked = [
        torch.stack([q.detach() for q in piece]).requires_grad_()
        for piece in zip(*runs, strict=True)
    ]
    damping = torch.tensor(dampings, dtype=torch.float64).reshape(3, 1, 1)
    lr = torch.tensor(lrs, dtype=torch.float64).reshape(3, 1, 1)
    optimizer = Newton(
        [{"params": stacked, "stack_dims": 1}], lr=lr, damping=damping, hessian=hessian, seed=0
    )
    closure = newton_closure(optimizer, stacked, problem, stack_dims=1)
    for _ in range(10):
        optimizer.step(closure)
    for k in range(3):
        params, _ = run_newton(
            problem,
            10,
            lambda p, k=k: Newton(p, lr=lrs[k], damping=dampings[k], hessian=hessian, seed=0),
            start=starts[k],
            shapes=shapes,
        )
        torch.testing.assert_close(flat(stacked, 1)[k], flat(params), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"damping": -0.1}, "damping"),
        ({"damping": torch.tensor([0.1, -1.0, 0.1, 0.1], dtype=torch.float64)}, "damping"),
        ({"hessian": "full"}, "hessian"),
        ({"lr": -1.0}, "lr"),
        ({"hutchinson_samples": 0}, "hutchinson_samples"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Newton([torch.zeros(4, dtype=torch.float64, requires_grad=True)], **kwargs)


def test_missing_closure_is_refused():
    with pytest.raises(ValueError, match="closure"):
        Newton(make_params()).step()


def test_closure_without_create_graph_is_refused():
    params = make_params()
    optimizer = Newton(params)
    problem = Problem(SIZE, seed=4)

    def closure():
        optimizer.zero_grad()
        loss = problem.torch_loss(torch.cat([p.reshape(-1) for p in params]))
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="create_graph=True"):
        optimizer.step(closure)
