"""The per-run rule of stacked groups: with ``stack_dims=1``, a hyperparameter tensor of shape
exactly ``(K,)`` holds one value per run and applies to every parameter of the group, whatever its
rank; any other tensor keeps torch's broadcasting. Checked for every registry key against K
separate runs, on a group mixing a matrix and a vector (two matrices of different shapes for
matrix-only methods)."""

from __future__ import annotations

import warnings

import pytest
import torch

import descentlab.optim as optim
from tests.optim.harness import tuned_values, wavy_loss

K, STEPS = 3, 25
#: Muon orthogonalizes in bfloat16 by default; in float64 stacked and single runs agree.
EXACT = {"muon": {"ns_dtype": None}}
#: Sophia divides the momentum by its curvature estimate, which on these losses comes near its
#: floor eps for some coordinates: there the last-bit differences between batched and single
#: Hessian-vector products are amplified (with (K, 1, 1) values as much as with (K,) ones).
TOLERANCE = {"sophia": {"rtol": 1e-4, "atol": 1e-4}}


def _shapes(key: str) -> tuple[tuple[int, ...], ...]:
    return ((2, 3), (3, 3)) if optim.spec(key).matrices_only else ((2, 3), (4,))


def _starts(key: str) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [
        torch.randn((K, *shape), dtype=torch.float64, generator=generator) for shape in _shapes(key)
    ]


def _create(key, params, values):
    entry = optim.spec(key)
    return entry.factory(params, **entry.kwargs(values), **EXACT.get(key, {}))


def _losses(params, stacked: bool):
    """One loss per run: shape (K,) for the stacked group, () for a single run."""
    flat = [p.flatten(start_dim=1) if stacked else p.reshape(-1) for p in params]
    return wavy_loss(torch.cat(flat, dim=-1))


def _run(key, params, values, stacked):
    optimizer = _create(key, [{"params": params, "stack_dims": int(stacked)}], values)
    create_graph = optim.spec(key).needs_closure

    def closure():
        optimizer.zero_grad()
        losses = _losses(params, stacked)
        losses.sum().backward(create_graph=create_graph)
        return losses

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        for _ in range(STEPS):
            optimizer.step(closure)
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("key", optim.names())
def test_stack_shaped_hyperparameters_apply_to_every_parameter(key):
    values = tuned_values(key, K)
    assert values, f"{key} has no tuned hyperparameter to vary"
    stacked = [start.clone().requires_grad_() for start in _starts(key)]
    per_run = {name: torch.tensor(grid, dtype=torch.float64) for name, grid in values.items()}
    together = _run(key, stacked, per_run, stacked=True)
    for k in range(K):
        single = [start[k].clone().requires_grad_() for start in _starts(key)]
        scalars = {
            name: torch.tensor(grid[k], dtype=torch.float64) for name, grid in values.items()
        }
        alone = _run(key, single, scalars, stacked=False)
        for joint, own in zip(together, alone, strict=True):
            tolerance = TOLERANCE.get(key, {"rtol": 1e-10, "atol": 1e-12})
            torch.testing.assert_close(joint[k], own, **tolerance)


def test_other_tensors_keep_broadcasting():
    """A (K, 1) tensor still broadcasts as usual; it does not fit a vector parameter's own shape."""
    matrix = torch.zeros(3, 5, requires_grad=True)
    per_coordinate = torch.full((5,), 0.1, dtype=torch.float32)
    optimizer = optim.SGD([{"params": [matrix], "stack_dims": 1}], lr=per_coordinate)
    matrix.grad = torch.ones(3, 5)
    optimizer.step()
    assert torch.allclose(matrix, torch.full((3, 5), -0.1))
    vector = torch.zeros(3, 4, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"lr of shape \(3, 1\) does not broadcast"):
        optim.SGD([{"params": [matrix, vector], "stack_dims": 1}], lr=torch.ones(3, 1))


def test_per_run_values_checked_like_any_other():
    param = torch.zeros(3, 4, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid lr"):
        optim.Adam([{"params": [param], "stack_dims": 1}], lr=torch.tensor([0.1, -1.0, 0.1]))
