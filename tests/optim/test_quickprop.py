"""Quickprop: the naive reference, superlinear convergence, the report's rules, resume, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from descentlab.optim import _quickprop_flat
from descentlab.optim.quickprop import SPECS, Quickprop
from tests.optim.naive_rprop_yogi_quickprop import (
    NaiveQuickprop,
    run_library,
    run_naive,
    starts,
    wavy_total_loss,
)

STEPS = 100
ONE_GROUP = [{"params": [0, 1, 2, 3]}]
TWO_GROUPS = [{"params": [0, 3]}, {"params": [1, 2], "lr": 0.02, "mu": 1.3}]
SETTINGS = {
    "defaults": {},
    "custom": {"lr": 0.05, "mu": 2.0},
    "weight-decay": {"weight_decay": 0.1},
    "maximize": {"maximize": True},
}


@pytest.mark.parametrize("groups", [ONE_GROUP, TWO_GROUPS], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("settings", list(SETTINGS.values()), ids=list(SETTINGS))
def test_matches_naive_reference(settings, groups):
    sign = -1.0 if settings.get("maximize") else 1.0
    groups = [{**settings, **group} for group in groups]
    mine = run_library(Quickprop, groups, STEPS, sign)
    theirs = run_naive(NaiveQuickprop, groups, STEPS, sign)
    for param, values in zip(mine, theirs, strict=True):
        assert torch.isfinite(param).all()
        expected = torch.tensor(values, dtype=torch.float64).reshape(param.shape)
        torch.testing.assert_close(param, expected, rtol=1e-10, atol=1e-12)


def _quadratic_errors(optimizer_class, steps, lr):
    # A separable quadratic with curvatures 1..10: Quickprop's per-weight parabola is exact.
    curvature = torch.linspace(1.0, 10.0, 8, dtype=torch.float64)
    target = torch.linspace(-2.0, 3.0, 8, dtype=torch.float64)
    w = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([w], lr=lr)
    errors = []
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * curvature * (w - target) ** 2).sum().backward()
        optimizer.step()
        errors.append((w.detach() - target).abs().max().item())
    return errors


def test_converges_superlinearly_on_a_quadratic_where_gradient_descent_crawls():
    lr = 0.05  # stable for gradient descent (lr < 2 / 10), slow along curvature 1
    quick = _quadratic_errors(Quickprop, 12, lr)
    plain = _quadratic_errors(torch.optim.SGD, 200, lr)
    # Quickprop: at machine precision within 12 steps ...
    assert quick[-1] < 1e-12
    # ... while gradient descent at the same lr still has far to go after 200 steps, its error
    # shrinking by a constant ratio (1 - lr * 1 = 0.95 per step: linear convergence).
    assert plain[11] > 0.5 and plain[-1] > 1e-5
    assert plain[-1] / plain[-2] == pytest.approx(0.95, abs=1e-3)
    # Quickprop's error ratio falls towards 0 (superlinear) before it hits zero.
    ratios = [b / a for a, b in zip(quick, quick[1:], strict=False) if a > 1e-14]
    assert min(ratios) < 1e-3


def test_first_step_is_gradient_descent_and_steps_grow_by_mu_on_a_line():
    # Constant slope c: the secant step is infinite (p = g), so each step is mu times the last,
    # plus the gradient term because the slope still points along the step.
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = Quickprop([w], lr=0.1, mu=1.5)
    expected_step, position = 0.0, 0.0
    for t in range(6):
        optimizer.zero_grad()
        (2.0 * w).sum().backward()
        optimizer.step()
        expected_step = -0.1 * 2.0 if t == 0 else 1.5 * expected_step - 0.1 * 2.0
        position += expected_step
        assert w.item() == pytest.approx(position, rel=1e-14)
        assert optimizer.state[w]["prev_update"].item() == pytest.approx(expected_step)


def test_crossing_the_minimum_uses_the_secant_step_alone():
    # 1-D parabola f = (w - 1)^2 / 2: one secant step lands exactly on the minimum.
    w = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    optimizer = Quickprop([w], lr=1.5, mu=1.75)

    def step():
        optimizer.zero_grad()
        (0.5 * (w - 1.0) ** 2).sum().backward()
        optimizer.step()

    step()  # gradient step: 0 -> 1.5, past the minimum
    assert w.item() == pytest.approx(1.5)
    step()  # the slope changed sign: secant step alone, no gradient term
    assert w.item() == pytest.approx(1.0, abs=1e-15)


def test_state_dict_resume_is_bit_identical():
    def step(optimizer, params, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            wavy_total_loss(params).backward()
            optimizer.step()

    straight = [p.requires_grad_() for p in starts()]
    step(Quickprop(straight, weight_decay=0.1), straight, 60)
    first = [p.requires_grad_() for p in starts()]
    optimizer = Quickprop(first, weight_decay=0.1)
    step(optimizer, first, 30)
    saved = copy.deepcopy(optimizer.state_dict())
    second = [p.detach().clone().requires_grad_() for p in first]
    resumed = Quickprop(second, weight_decay=0.1)
    resumed.load_state_dict(saved)
    step(resumed, second, 30)
    for a, b in zip(straight, second, strict=True):
        assert torch.equal(a, b)


def test_stacked_runs_with_tensor_hyperparameters_equal_separate_runs():
    K, D = 3, 4
    per_run = {"lr": [0.01, 0.03, 0.05], "mu": [1.2, 1.75, 2.5], "weight_decay": [0.0, 0.1, 0.2]}
    generator = torch.Generator().manual_seed(7)
    begin = torch.randn(K, D, dtype=torch.float64, generator=generator)

    def run(param, optimizer):
        for _ in range(60):
            optimizer.zero_grad()
            shifted = param - 0.3
            (shifted * shifted * shifted * shifted + 0.5 * param * param).sum().backward()
            optimizer.step()
        return param.detach()

    stacked = begin.clone().requires_grad_()
    columns = {k: torch.tensor(v, dtype=torch.float64).reshape(K, 1) for k, v in per_run.items()}
    together = run(stacked, Quickprop([{"params": [stacked], "stack_dims": 1}], **columns))
    for k in range(K):
        single = begin[k].clone().requires_grad_()
        floats = {name: values[k] for name, values in per_run.items()}
        alone = run(single, Quickprop([single], **floats))
        assert torch.isfinite(alone).all()
        torch.testing.assert_close(together[k], alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, "lr"),
        ({"mu": 0.0}, ValueError, "mu"),
        ({"mu": -1.75}, ValueError, "mu"),
        ({"mu": torch.tensor([[1.75], [-1.0]])}, ValueError, "mu"),
        ({"mu": "fast"}, TypeError, "mu"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
        ({"maximize": "no"}, TypeError, "maximize"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Quickprop([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_spec():
    (entry,) = SPECS
    assert entry.key == "quickprop" and entry.factory is Quickprop
    assert entry.defaults == {"lr": 1e-2, "mu": 1.75, "weight_decay": 0.0}
    w = torch.ones(2, requires_grad=True)
    optimizer = entry.factory([w], **entry.defaults)
    (w * w).sum().backward()
    optimizer.step()
    assert {buffer.name for buffer in entry.state} == set(optimizer.state[w]) - {"step"}


def _branch_gradients(step: int, dtype: torch.dtype, overflow: bool) -> list[torch.Tensor]:
    """Gradients that drive every branch of the step: random slopes (secant, capped, crossed
    minimum, gradient term on and off), a constant slope (p = g: the secant divides by zero),
    zero slopes (0 / 0), slopes that repeat every other step and, with ``overflow``, slopes so
    large that the secant overflows where the loop discards it (without weight decay: with it
    the loop's own steps overflow)."""
    generator = torch.Generator().manual_seed(100 + step)
    random = torch.randn(6, 7, generator=generator, dtype=dtype)
    constant = torch.full((5,), 0.25, dtype=dtype)
    zero = torch.zeros(3, dtype=dtype)
    repeating = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=dtype) * (1 + step % 2)
    shrinking = torch.linspace(-1, 1, 9, dtype=dtype) * 0.7**step
    # Constant finite slopes whose product with the previous step overflows float32 (d g is
    # over 3.4e38 from the second step): the secant the loop discards is infinite.
    huge = torch.tensor([1e21, -4e21, 2.5e21], dtype=dtype)
    return [random, constant, zero, repeating, shrinking] + ([huge] if overflow else [])


@pytest.mark.parametrize("block", [None, 7], ids=["one-block", "blocks-of-7"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("settings", list(SETTINGS.values()), ids=list(SETTINGS))
def test_foreach_masks_equal_the_loops_comparisons(settings, dtype, block, monkeypatch):
    """foreach=True builds the step from masks made with sign and clamps (no comparison or
    torch.where), on the flat gradients and state in blocks: for finite gradients it equals the
    loop's step exactly, also when blocks end inside a parameter (blocks of 7 elements)."""
    if block is not None:
        monkeypatch.setattr(_quickprop_flat, "BLOCK", block)
    ends = []
    overflow = not settings.get("weight_decay")
    for foreach in (False, True):
        params = [g.clone().requires_grad_() for g in _branch_gradients(-1, dtype, overflow)]
        optimizer = Quickprop(params, **settings, foreach=foreach)
        for step in range(25):
            gradients = _branch_gradients(step, dtype, overflow)
            for param, grad in zip(params, gradients, strict=True):
                param.grad = grad
            optimizer.step()
        ends.append((params, optimizer))
    (single, single_optimizer), (multi, multi_optimizer) = ends
    for a, b in zip(single, multi, strict=True):
        assert torch.isfinite(a).all()
        assert torch.equal(a, b)
        for name in ("prev_grad", "prev_update"):
            assert torch.equal(single_optimizer.state[a][name], multi_optimizer.state[b][name])


def test_foreach_keeps_its_state_flat_and_equals_the_loop_through_resume_and_missing_grads():
    """foreach=True keeps each state buffer as consecutive views of one flat tensor (read and
    written in place each step). A resumed state dict, a parameter without a gradient for a step
    (the rest are flattened anew), and the loop path taking over all give the loop's bits."""

    def run(foreach_plan):
        params = [p.requires_grad_() for p in starts()]
        optimizer = Quickprop(params, lr=0.02, weight_decay=0.1, foreach=foreach_plan[0])
        for step, foreach in enumerate(foreach_plan):
            if step == 12:  # resume from a copy of the state, as a loaded checkpoint would
                saved = copy.deepcopy(optimizer.state_dict())
                optimizer = Quickprop(params, lr=0.02, weight_decay=0.1)
                optimizer.load_state_dict(saved)
            optimizer.param_groups[0]["foreach"] = foreach
            optimizer.zero_grad()
            wavy_total_loss(params).backward()
            if step == 20:
                params[1].grad = None  # sits out this step
            optimizer.step()
            if step == 8 and foreach:
                # The 0-d parameter is a bucket of its own (see test_foreach.py).
                shaped = [p for p in params if p.dim()]
                entries = [optimizer.state[p]["prev_update"] for p in shaped]
                base = entries[0]._base
                assert base is not None and all(e._base is base for e in entries)
                assert base.numel() == sum(p.numel() for p in shaped)
        return params

    loop = run([False] * 30)
    flat = run([True] * 25 + [False] * 5)
    for a, b in zip(loop, flat, strict=True):
        assert torch.equal(a, b)
