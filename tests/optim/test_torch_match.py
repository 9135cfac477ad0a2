"""Our classes against torch.optim: same results for the algorithms torch has.

float32: bit-identical (we follow the arithmetic of torch's default single-tensor path).
float64: equal to 1e-12 relative over 100 steps.
"""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as ours

CASES = [
    ("SGD", {"lr": 0.01}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "dampening": 0.9, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.5}),
    ("Adagrad", {}),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.1},
    ),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.9, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "centered": True, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    (
        "RAdam",
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.9, 0.9)},
    ),
]


def _loss(params: list[torch.Tensor], sign: float) -> torch.Tensor:
    # Gradients depend on the parameters (not a linear loss) and differ per coordinate.
    total = sum(((p - 0.3) ** 4).sum() + (p.sin() * p).sum() + 0.5 * (p**2).sum() for p in params)
    return sign * total


def trajectory(cls, kwargs, dtype, steps=100, groups=False):
    torch.manual_seed(0)
    params = [
        torch.randn(5, 3, dtype=dtype, requires_grad=True),
        torch.randn(7, dtype=dtype, requires_grad=True),
        torch.randn(2, 2, 2, dtype=dtype, requires_grad=True),
    ]
    if groups:
        spec = [{"params": params[:2]}, {"params": params[2:], "lr": kwargs.get("lr", 1e-3) / 2}]
    else:
        spec = params
    optimizer = cls(spec, **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for _ in range(steps):
        optimizer.zero_grad()
        _loss(params, sign).backward()
        optimizer.step()
    return [p.detach().clone() for p in params], optimizer


@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "two-groups"])
@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_float32_bit_identical_to_torch(name, kwargs, groups):
    mine, _ = trajectory(getattr(ours, name), kwargs, torch.float32, groups=groups)
    theirs, _ = trajectory(getattr(torch.optim, name), kwargs, torch.float32, groups=groups)
    for a, b in zip(mine, theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_float64_matches_torch(name, kwargs):
    mine, _ = trajectory(getattr(ours, name), kwargs, torch.float64)
    theirs, _ = trajectory(getattr(torch.optim, name), kwargs, torch.float64)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_torch_state_dict_loads_into_ours(name, kwargs):
    """Train 40 steps with torch, continue 60 with ours: same as 100 steps with torch."""
    torch.manual_seed(0)
    _, torch_optimizer = trajectory(getattr(torch.optim, name), kwargs, torch.float32, steps=40)
    saved = torch_optimizer.state_dict()
    params = [
        p.detach().clone().requires_grad_()
        for group in torch_optimizer.param_groups
        for p in group["params"]
    ]
    mine = getattr(ours, name)(params, **kwargs)
    mine.load_state_dict(saved)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for _ in range(60):
        mine.zero_grad()
        _loss(params, sign).backward()
        mine.step()
    expected, _ = trajectory(getattr(torch.optim, name), kwargs, torch.float32, steps=100)
    for a, b in zip(params, expected, strict=True):
        assert torch.equal(a.detach(), b)
