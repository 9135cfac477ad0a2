"""Bad arguments get a ValueError or TypeError that names the argument; the non-finite gradient
policy (no check, as torch.optim) is what the documentation says."""

from __future__ import annotations

import math

import pytest
import torch

import descentlab.optim as optim
from tests.optim.harness import first_order_keys


def _param() -> torch.Tensor:
    return torch.zeros(3, requires_grad=True)


@pytest.mark.parametrize("key", [k for k in optim.names() if "lr" in optim.spec(k).defaults])
def test_negative_lr_is_rejected(key):
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        optim.create(key, [_param()], lr=-0.1)


@pytest.mark.parametrize("key", [k for k in optim.names() if "betas" in optim.spec(k).defaults])
@pytest.mark.parametrize(
    ("betas", "where"), [((1.0, 0.999), r"betas\[0\]"), ((0.9, -0.1), r"betas\[1\]")]
)
def test_betas_outside_unit_interval_are_rejected(key, betas, where):
    with pytest.raises(ValueError, match=rf"Invalid {where}"):
        optim.create(key, [_param()], betas=betas)


@pytest.mark.parametrize("key", optim.names())
def test_a_string_hyperparameter_is_a_type_error(key):
    with pytest.raises(TypeError, match="lr must be a number or a tensor"):
        optim.create(key, [_param()], lr="0.1")


def test_tensor_hyperparameter_elements_are_checked_too():
    with pytest.raises(
        ValueError, match=r"Invalid lr: -1\.0 \(an element of tensor of shape \(2, 1\)\)"
    ):
        optim.Adam([torch.zeros(2, 3, requires_grad=True)], lr=torch.tensor([[0.1], [-1.0]]))


def test_per_group_values_are_checked():
    good, bad = _param(), _param()
    optimizer = optim.SGD([good], lr=0.1)
    with pytest.raises(ValueError, match="Invalid momentum"):
        optimizer.add_param_group({"params": [bad], "momentum": -0.5})
    assert len(optimizer.param_groups) == 1  # the bad group was not kept


def test_torch_only_switches_are_refused_clearly():
    with pytest.raises(ValueError, match="does not support capturable=True"):
        optim.Adam([_param()], capturable=True)
    with pytest.raises(ValueError, match="does not support differentiable=True"):
        optim.SGD([_param()], differentiable=True)
    optim.Adam([_param()], foreach=True)  # the multi-tensor path (tests/optim/test_foreach.py)
    optim.Adam([_param()], fused=True)  # torch's fused kernel (tests/optim/test_fused.py)


@pytest.mark.parametrize("key", first_order_keys())
def test_sparse_gradients_are_refused(key):
    embedding = torch.nn.Embedding(5, 2, sparse=True)
    optimizer = optim.create(key, embedding.parameters())
    embedding(torch.tensor([1, 3])).sum().backward()
    with pytest.raises(TypeError, match="does not support sparse gradients"):
        optimizer.step()


@pytest.mark.parametrize("key", [k for k in optim.names() if optim.spec(k).needs_closure])
def test_missing_closure_is_a_clear_error(key):
    param = _param()
    optimizer = optim.create(key, [param])
    (param**2).sum().backward(create_graph=True)
    with pytest.raises(ValueError, match=r"needs a closure"):
        optimizer.step()


@pytest.mark.parametrize("key", first_order_keys())
def test_nonfinite_gradient_reaches_only_its_own_parameter(key):
    """Policy (see descentlab.optim._base): gradients are not inspected, as in torch.optim.

    The NaN meets the algorithm's own arithmetic: it poisons its coordinate (its whole tensor in
    methods that take a norm of it: LAMB, LARS), except in the sign-based methods, where
    torch.sign(nan) == 0 means no step there. It never crosses to another parameter.
    """
    shape = (3, 2) if optim.spec(key).matrices_only else (3,)
    healthy, poisoned = torch.ones(shape, requires_grad=True), torch.ones(shape, requires_grad=True)
    optimizer = optim.create(key, [healthy, poisoned])
    healthy.grad = torch.linspace(0.2, 0.7, healthy.numel()).reshape(shape)
    poisoned.grad = healthy.grad.clone()
    poisoned.grad.view(-1)[0] = math.nan
    optimizer.step()
    alone = torch.ones(shape, requires_grad=True)
    alone.grad = healthy.grad.clone()
    optim.create(key, [alone]).step()
    assert torch.equal(healthy, alone)
    flat, alone_flat = poisoned.detach().view(-1), alone.detach().view(-1)
    assert not torch.isfinite(flat[0]) or flat[0] == 1.0
    assert torch.equal(flat[1:], alone_flat[1:]) or not torch.isfinite(flat).any()


@pytest.mark.parametrize("key", ["sgd", "adam"])
def test_a_sparse_gradient_after_dense_steps_is_refused(key):
    """The step's fast gathering (every parameter with a gradient and state) checks layouts too."""
    embedding = torch.nn.Embedding(5, 2)
    optimizer = optim.create(key, embedding.parameters(), foreach=True)
    embedding(torch.tensor([1, 3])).sum().backward()
    optimizer.step()
    embedding.weight.grad = embedding.weight.grad.to_sparse()
    with pytest.raises(TypeError, match=r"does not support sparse gradients \(parameter 0\)"):
        optimizer.step()


def test_complex_parameters_are_refused_before_and_after_state_exists():
    real, other = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    optimizer = optim.Adam([real, other])
    with pytest.raises(TypeError, match=r"complex parameters \(parameter 0\)"):
        complex_param = torch.ones(3, dtype=torch.complex64, requires_grad=True)
        complex_param.grad = torch.ones_like(complex_param)
        optim.Adam([complex_param]).step()
    real.grad, other.grad = torch.ones(3), torch.ones(2)
    optimizer.step()
    other.data = other.data.to(torch.complex64)
    other.grad = torch.ones_like(other)
    with pytest.raises(TypeError, match=r"complex parameters \(parameter 1\)"):
        optimizer.step()
