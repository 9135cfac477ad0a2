"""Save after k steps, load into a fresh optimizer over fresh parameters, continue: the result is
bit-identical to the uninterrupted run, for every optimizer in the registry."""

from __future__ import annotations

import io

import pytest
import torch

import descentlab.optim as optim
from tests.optim.harness import wavy_loss

TOTAL, SAVED_AT = 50, 20


def _fresh_params(key: str) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    second = (5, 2) if optim.spec(key).matrices_only else (5,)
    return [
        torch.randn(4, 3, dtype=torch.float64, generator=generator).requires_grad_(),
        torch.randn(second, dtype=torch.float64, generator=generator).requires_grad_(),
    ]


def _steps(optimizer, params, count, second_order):
    def closure():
        optimizer.zero_grad()
        loss = sum(wavy_loss(p.reshape(-1)) for p in params)
        loss.backward(create_graph=second_order)
        return loss

    for _ in range(count):
        optimizer.step(closure)


@pytest.mark.parametrize("key", optim.names())
def test_resume_from_state_dict_is_bit_identical(key):
    second_order = optim.spec(key).order > 1
    # Methods with random probes (Sophia, Hutchinson) draw their seed from torch's generator.
    torch.manual_seed(0)
    straight = _fresh_params(key)
    _steps(optim.create(key, straight), straight, TOTAL, second_order)

    torch.manual_seed(0)
    first_half = _fresh_params(key)
    before = optim.create(key, first_half)
    _steps(before, first_half, SAVED_AT, second_order)
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)

    resumed = [p.detach().clone().requires_grad_() for p in first_half]
    after = optim.create(key, resumed)
    after.load_state_dict(torch.load(buffer, weights_only=False))
    _steps(after, resumed, TOTAL - SAVED_AT, second_order)

    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected.detach(), actual.detach()), key
