"""What one step reads of the group (``Optimizer._gather``): parameters without a gradient are
skipped, cleared or replaced state is created again, for every path."""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as optim


def _params(count: int = 4) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(3, generator=generator, requires_grad=True) for _ in range(count)]


def _give_gradients(params: list[torch.Tensor], skip: int | None = None) -> None:
    for index, param in enumerate(params):
        param.grad = None if index == skip else param.detach() * 0.5 + 0.1


@pytest.mark.parametrize("path", [{}, {"foreach": True}])
def test_a_parameter_without_gradient_is_left_alone_and_keeps_its_state(path):
    params, alone = _params(), _params()
    optimizer = optim.Adam(params, **path)
    reference = optim.Adam(alone, **path)
    for step in range(4):
        skip = 2 if step == 2 else None
        _give_gradients(params, skip)
        optimizer.step()
        _give_gradients(alone, skip)
        reference.step()
    assert optimizer.state[params[2]]["step"].item() == 3
    for ours, theirs in zip(params, alone, strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("path", [{}, {"foreach": True}])
@pytest.mark.parametrize("how", ["clear", "replace"])
def test_cleared_or_replaced_state_starts_again(path, how):
    params, fresh = _params(), _params()
    optimizer = optim.Adam(params, **path)
    _give_gradients(params)
    optimizer.step()
    with torch.no_grad():
        for ours, theirs in zip(params, fresh, strict=True):
            theirs.copy_(ours)
    if how == "clear":
        optimizer.state.clear()
    else:
        optimizer.state[params[1]] = {}
    _give_gradients(params)
    optimizer.step()
    _give_gradients(fresh)
    optim.Adam(fresh, **path).step()
    started_again = range(4) if how == "clear" else [1]
    for index, (ours, theirs) in enumerate(zip(params, fresh, strict=True)):
        assert optimizer.state[ours]["step"].item() == (1 if index in started_again else 2)
        assert torch.equal(ours, theirs) == (index in started_again)
