"""BFGS against a naive textbook reference (N&W Algorithm 6.1), superlinear, stacked, resumed."""

from __future__ import annotations

import io

import pytest
import torch
from naive_second_order import Problem, quasi_newton
from test_lbfgs import PROBLEM, SIZE, START, closure_for, flat, make_params, run

from descentlab.optim.bfgs import BFGS

CASES = [
    ("one-group", [list(range(SIZE))], [{}]),
    ("three-iterations", [list(range(SIZE))], [{"max_iter": 3, "lr": 0.9}]),
    ("no-line-search", [list(range(SIZE))], [{"line_search_fn": None, "lr": 0.05}]),
    ("two-groups", [list(range(10)), list(range(10, SIZE))], [{"lr": 0.8}, {"c2": 0.5}]),
]


@pytest.mark.parametrize(("name", "groups", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_matches_naive_reference(name, groups, overrides):
    # Stop at |f_k - f_{k-1}| < 1e-10 ("until convergence"): much further, line-search decisions
    # compare losses equal up to the last bits, and the rounding of f (torch's sums against
    # the reference's) decides them, so the two trajectories part at about sqrt(eps).
    base = {"tolerance_grad": 1e-12, "tolerance_change": 1e-10}
    settings = [{**base, **extra} for extra in overrides]

    def make(params):
        if len(groups) == 1:
            return BFGS(params, **settings[0])
        return BFGS([{"params": params[:2], **settings[0]}, {"params": params[2:], **settings[1]}])

    naive_settings = []
    for hp in settings:
        hp = {"lr": 1.0, "max_iter": 1, "line_search_fn": "strong_wolfe", "c1": 1e-4, **hp}
        hp.setdefault("c2", 0.9)
        hp["max_eval"] = 25 * hp["max_iter"] + 1
        hp["line_search"] = hp.pop("line_search_fn") == "strong_wolfe"
        naive_settings.append(hp)
    for steps in (3, 100):
        params, _ = run(make, steps)
        expected = quasi_newton(
            PROBLEM.value_and_grad, START, groups, naive_settings, steps, "bfgs"
        )
        torch.testing.assert_close(
            flat(params), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10
        )
    _, start_grad = PROBLEM.value_and_grad(START)
    _, grad = PROBLEM.value_and_grad(expected)
    shrink = 1e-4 if naive_settings[0]["line_search"] else 0.05
    assert max(abs(g) for g in grad) < shrink * max(abs(g) for g in start_grad)


def test_superlinear_on_a_quadratic():
    """Error ratios e_{k+1} / e_k fall towards 0 (gradient descent's stay near a constant)."""
    quadratic = Problem(6, seed=5, w=0.0)
    quadratic.c = [0.0] * 6
    a = torch.tensor(quadratic.a, dtype=torch.float64)
    solution = torch.linalg.solve(a, torch.tensor(quadratic.b, dtype=torch.float64))
    x = torch.tensor(START[:6], dtype=torch.float64, requires_grad=True)
    optimizer = BFGS([x], tolerance_grad=0.0, tolerance_change=0.0)

    def closure():
        optimizer.zero_grad()
        loss = quadratic.torch_loss(x)
        loss.backward()
        return loss

    errors = [(x.detach() - solution).norm().item()]
    while errors[-1] > 1e-9 and len(errors) < 60:
        optimizer.step(closure)
        errors.append((x.detach() - solution).norm().item())
    assert errors[-1] < 1e-9
    ratios = [b / a for a, b in zip(errors, errors[1:], strict=False)]
    # Superlinear: the last ratio is far below the early ones (about 0.01 against 0.1-0.4).
    assert ratios[-1] < 0.05
    assert ratios[-1] < 0.2 * max(ratios[:4])


def test_state_dict_resume_is_bit_identical():
    kwargs = {"max_iter": 2, "tolerance_grad": 0.0, "tolerance_change": 0.0}
    whole, _ = run(lambda p: BFGS(p, **kwargs), 10)
    first, optimizer = run(lambda p: BFGS(p, **kwargs), 4)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    params = [p.detach().clone().requires_grad_() for p in first]
    resumed = BFGS(params, **kwargs)
    resumed.load_state_dict(torch.load(buffer))
    closure = closure_for(resumed, params)
    for _ in range(6):
        resumed.step(closure)
    for a, b in zip(params, whole, strict=True):
        assert torch.equal(a, b)


def test_stacked_runs_equal_separate_runs():
    lrs, c2s = [1.0, 0.5, 0.2], [0.9, 0.5, 0.1]
    kwargs = {"tolerance_grad": 1e-9, "tolerance_change": 1e-9}
    starts = [[v * scale for v in START] for scale in (1.0, -0.7, 2.0)]
    shapes = [(2, 3), (4, 1), (1, 2)]
    runs = [make_params(start, shapes=shapes) for start in starts]
    stacked = [
        torch.stack([q.detach() for q in piece]).requires_grad_()
        for piece in zip(*runs, strict=True)
    ]
    lr = torch.tensor(lrs, dtype=torch.float64).reshape(3, 1, 1)
    c2 = torch.tensor(c2s, dtype=torch.float64).reshape(3, 1, 1)
    optimizer = BFGS([{"params": stacked, "stack_dims": 1}], lr=lr, c2=c2, **kwargs)
    closure = closure_for(optimizer, stacked, stack_dims=1)
    singles = []
    for k in range(3):
        params = make_params(starts[k], shapes=shapes)
        single = BFGS(params, lr=lrs[k], c2=c2s[k], **kwargs)
        singles.append((params, single, closure_for(single, params)))
    # A batched matmul rounds differently from K single ones in the last bit; the line search
    # amplifies that near the minimum (from 1e-16 at step 2 to ~1e-9 at convergence), so the
    # comparison is tight early on and looser once the runs converge.
    for steps, atol in ((4, 1e-11), (26, 1e-8)):
        for _ in range(steps):
            optimizer.step(closure)
            for _, single, single_closure in singles:
                single.step(single_closure)
        for k, (params, single, _) in enumerate(singles):
            torch.testing.assert_close(flat(stacked, 1)[k], flat(params), rtol=0, atol=atol)
            run_state, single_state = optimizer.state[stacked[0]], single.state[params[0]]
            assert run_state["n_iter"][k] == single_state["n_iter"]
            assert run_state["func_evals"][k] == single_state["func_evals"]
    assert optimizer.state[stacked[0]]["inverse_hessian"].shape == (3, SIZE, SIZE)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"line_search_fn": "backtracking"}, "line_search_fn"),
        ({"lr": -0.1}, "lr"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_eval": 0}, "max_eval"),
        ({"c1": 0.0}, "c1"),
        ({"c1": 0.5, "c2": 0.5}, "c1"),
        ({"tolerance_change": -1.0}, "tolerance_change"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BFGS(make_params(), **kwargs)


def test_missing_closure_is_refused():
    with pytest.raises(ValueError, match="closure"):
        BFGS(make_params()).step()
