"""K stacked configurations (one (K, D) parameter, per-run hyperparameter tensors of shape (K, 1))
advance exactly like K separate runs: the lab and the arena depend on it."""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as optim
from tests.optim.harness import first_order_keys, run, tuned_values, wavy_loss

K, D, STEPS = 4, 3, 60


def _starts() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(K, D, dtype=torch.float64, generator=generator)


def _as_tensor(value: float, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.full(shape, value, dtype=torch.float64)


@pytest.mark.parametrize("key", first_order_keys())
def test_stacked_runs_equal_separate_runs(key):
    entry = optim.spec(key)
    values = tuned_values(key, K)
    assert values, f"{key} has no tuned hyperparameter to vary"

    stacked = _starts().requires_grad_()
    stacked_values = {
        name: torch.tensor(grid, dtype=torch.float64).reshape(K, 1) for name, grid in values.items()
    }
    optimizer = optim.create(key, [stacked], **stacked_values)
    optimizer.param_groups[0]["stack_dims"] = 1
    together = run(optimizer, [stacked], lambda ps: wavy_loss(ps[0]).sum(), STEPS)[0]

    for k in range(K):
        single = _starts()[k].clone().requires_grad_()
        as_tensors = {name: _as_tensor(grid[k], ()) for name, grid in values.items()}
        alone = run(
            optim.create(key, [single], **as_tensors), [single], lambda ps: wavy_loss(ps[0]), STEPS
        )[0]
        # Same arithmetic per element: bit-identical.
        assert torch.equal(together[k], alone), f"{key}: run {k} differs"

        plain = _starts()[k].clone().requires_grad_()
        as_floats = {name: grid[k] for name, grid in values.items()}
        floats = run(
            optim.create(key, [plain], **as_floats), [plain], lambda ps: wavy_loss(ps[0]), STEPS
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
