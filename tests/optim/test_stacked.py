"""K stacked configurations (one (K, D) parameter, per-run hyperparameter tensors of shape (K, 1))
advance exactly like K separate runs: the lab and the arena depend on it."""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as optim
from tests.optim.harness import first_order_keys, run, tuned_values, wavy_loss

K, D, STEPS = 4, 3, 60


def _starts(key: str) -> torch.Tensor:
    """K runs; each run's own coordinates a vector, or a 2 x D matrix for matrix-only methods."""
    generator = torch.Generator().manual_seed(1)
    shape = (K, 2, D) if optim.spec(key).matrices_only else (K, D)
    return torch.randn(shape, dtype=torch.float64, generator=generator)


def _stacked_loss(param: torch.Tensor) -> torch.Tensor:
    return wavy_loss(param.flatten(start_dim=1)).sum()


def _single_loss(param: torch.Tensor) -> torch.Tensor:
    return wavy_loss(param.reshape(-1))


#: Muon orthogonalizes in bfloat16 by default, where batched and single matrix products round
#: differently; in the parameters' own precision stacked and separate runs agree exactly.
EXACT = {"muon": {"ns_dtype": None}}


def _create(key: str, params, values):
    entry = optim.spec(key)
    return entry.factory(params, **entry.kwargs(values), **EXACT.get(key, {}))


def _as_tensor(value: float, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.full(shape, value, dtype=torch.float64)


@pytest.mark.parametrize("key", first_order_keys())
def test_stacked_runs_equal_separate_runs(key):
    entry = optim.spec(key)
    values = tuned_values(key, K)
    assert values, f"{key} has no tuned hyperparameter to vary"

    stacked = _starts(key).requires_grad_()
    per_run = (K,) + (1,) * (stacked.dim() - 1)  # one value per run, broadcast over its own dims
    stacked_values = {
        name: torch.tensor(grid, dtype=torch.float64).reshape(per_run)
        for name, grid in values.items()
    }
    optimizer = _create(key, [{"params": [stacked], "stack_dims": 1}], stacked_values)
    together = run(optimizer, [stacked], lambda ps: _stacked_loss(ps[0]), STEPS)[0]

    for k in range(K):
        single = _starts(key)[k].clone().requires_grad_()
        as_tensors = {name: _as_tensor(grid[k], ()) for name, grid in values.items()}
        alone = run(
            _create(key, [single], as_tensors), [single], lambda ps: _single_loss(ps[0]), STEPS
        )[0]
        if entry.matrices_only:
            # Batched (bmm) and single (mm) matrix products sum in different orders.
            torch.testing.assert_close(together[k], alone, rtol=1e-12, atol=1e-14)
        else:  # same arithmetic per element: bit-identical
            assert torch.equal(together[k], alone), f"{key}: run {k} differs"

        plain = _starts(key)[k].clone().requires_grad_()
        as_floats = {name: grid[k] for name, grid in values.items()}
        floats = run(
            _create(key, [plain], as_floats), [plain], lambda ps: _single_loss(ps[0]), STEPS
        )[0]
        # The float path is torch's arithmetic; the tensor path may round once differently per step.
        torch.testing.assert_close(together[k], floats, rtol=1e-12, atol=1e-14)
    assert entry.key == key


def test_hyperparameter_that_does_not_broadcast_is_rejected():
    param = torch.zeros(4, 3, requires_grad=True)
    with pytest.raises(
        ValueError, match=r"lr of shape \(5, 1\) does not broadcast against parameter 0"
    ):
        optim.Adam([param], lr=torch.full((5, 1), 0.1))
    with pytest.raises(ValueError, match=r"betas\[1\] of shape \(3, 3\)"):
        optim.Adam([param], betas=(0.9, torch.full((3, 3), 0.99)))


def test_stack_shapes_must_agree_within_a_group():
    a = torch.zeros(4, 3, requires_grad=True)
    b = torch.zeros(5, 3, requires_grad=True)
    with pytest.raises(ValueError, match="share their stack shape"):
        optim.SGD([{"params": [a, b], "stack_dims": 1}], lr=0.1)
