"""Each built-in landscape's closed-form gradient: its losses are function's bits, its gradient
is autograd's (float64, to rounding), at random points, at the stated points and at the origin."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from descentlab.landscapes import get, n_dimensional_names, names, parse

CASES = [(name, None) for name in names()] + [
    (name, dim)
    for name in n_dimensional_names()
    for dim in (1, 3, 6)
    if (name, dim) != ("rosenbrock", 1)
]
IDS = [f"{name}-{dim or 'default'}" for name, dim in CASES]


def autograd_gradient(landscape, positions: torch.Tensor) -> torch.Tensor:
    leaf = positions.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(landscape.function(leaf).sum(), leaf)
    return grad


def points_in(landscape, count: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Uniform points in the domain grown by half its span on each side, plus the stated ones."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor([pair[0] for pair in landscape.domain], dtype=dtype)
    high = torch.tensor([pair[1] for pair in landscape.domain], dtype=dtype)
    span = high - low
    uniform = torch.rand((count, landscape.dim), generator=generator, dtype=dtype)
    random = low - span / 2 + 2 * span * uniform
    stated = [p.location for p in (*landscape.minima, *landscape.saddles)] + list(landscape.starts)
    stated.append((0.0,) * landscape.dim)
    return torch.cat([random, torch.tensor(stated, dtype=dtype)])


def assert_matches_autograd(landscape, positions: torch.Tensor) -> None:
    losses, grad = landscape.value_and_grad(positions)
    assert torch.equal(losses, landscape.function(positions)), "losses differ from function's"
    reference = autograd_gradient(landscape, positions)
    assert grad.shape == positions.shape and grad.dtype == positions.dtype
    # New memory: the lab perturbs and clips gradients in place.
    assert grad.untyped_storage().data_ptr() != positions.untyped_storage().data_ptr()
    torch.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_builtin_landscape_has_a_closed_form_gradient_equal_to_autograd(case):
    landscape = get(*case)
    assert landscape.with_gradient is not None
    assert_matches_autograd(landscape, points_in(landscape, 400, seed=len(IDS)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_losses_are_function_bits_and_gradients_close(case):
    landscape = get(*case)
    positions = points_in(landscape, 200, seed=3, dtype=torch.float32)
    losses, grad = landscape.value_and_grad(positions)
    assert torch.equal(losses, landscape.function(positions))
    # As accurate as autograd in float32: the error against the float64 gradient is at most a few
    # times autograd's own (the closed forms round differently, not worse).
    exact = autograd_gradient(landscape, positions.double())
    scale = exact.abs().amax(dim=-1, keepdim=True).clamp(min=1.0)
    ours = ((grad.double() - exact).abs() / scale).max()
    autograd = ((autograd_gradient(landscape, positions).double() - exact).abs() / scale).max()
    assert ours <= 4 * autograd + 1e-6, (ours, autograd)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(names()),
    fraction=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    tiny=st.floats(-1e-3, 1e-3),
)
def test_near_the_origin_and_anywhere_in_the_domain(name, fraction, tiny):
    landscape = get(name)
    point = [
        low + f * (high - low) for (low, high), f in zip(landscape.domain, fraction, strict=False)
    ]
    near_origin = [tiny * (axis + 1) for axis in range(landscape.dim)]
    assert_matches_autograd(landscape, torch.tensor([point, near_origin], dtype=torch.float64))


def test_leading_batch_dimensions_and_bad_positions():
    landscape = get("himmelblau")
    positions = torch.randn(3, 4, 2, dtype=torch.float64)
    losses, grad = landscape.value_and_grad(positions)
    assert losses.shape == (3, 4) and grad.shape == (3, 4, 2)
    assert_matches_autograd(landscape, positions)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        landscape.value_and_grad(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="floating dtype"):
        landscape.value_and_grad(torch.zeros(4, 2, dtype=torch.int64))


def test_nothing_is_attached_to_a_graph_even_for_a_leaf_that_requires_grad():
    positions = torch.randn(5, 2, requires_grad=True)
    for landscape in (get("rosenbrock"), parse("x**2 + 3*sin(y)")):
        losses, grad = landscape.value_and_grad(positions)
        assert not losses.requires_grad and not grad.requires_grad
        assert positions.grad is None


def test_without_a_closed_form_the_gradient_comes_from_autograd():
    typed = parse("x**2 * y + exp(-y**2)")
    assert typed.with_gradient is None
    positions = torch.randn(50, 2, dtype=torch.float64)
    losses, grad = typed.value_and_grad(positions)
    x, y = positions.unbind(-1)
    expected = torch.stack([2 * x * y, x**2 - 2 * y * torch.exp(-(y**2))], dim=-1)
    torch.testing.assert_close(grad, expected)
    assert torch.equal(losses, typed(positions))
    # A landscape stripped of its closed form falls back to autograd and agrees with it.
    plain = dataclasses.replace(get("beale"), with_gradient=None)
    points = points_in(plain, 50, seed=1)
    torch.testing.assert_close(
        plain.value_and_grad(points)[1], get("beale").value_and_grad(points)[1]
    )
