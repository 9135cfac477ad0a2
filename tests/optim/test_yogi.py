"""Yogi: the naive reference, the additive second moment, resume, stacking, errors."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from descentlab.optim.yogi import SPECS, Yogi
from tests.optim.naive_rprop_yogi_quickprop import NaiveYogi, run_library, run_naive, starts
from tests.optim.naive_rprop_yogi_quickprop import wavy_total_loss as loss_of

STEPS = 100
ONE_GROUP = [{"params": [0, 1, 2, 3]}]
TWO_GROUPS = [
    {"params": [0, 3]},
    {"params": [1, 2], "lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-4},
]
SETTINGS = {
    "defaults": {},
    "no-bias-correction": {"bias_correction": False, "lr": 0.005},
    "custom": {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-6, "initial_accumulator": 0.1},
    "weight-decay": {"weight_decay": 0.3},
    "maximize": {"maximize": True},
}


@pytest.mark.parametrize("groups", [ONE_GROUP, TWO_GROUPS], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("settings", list(SETTINGS.values()), ids=list(SETTINGS))
def test_matches_naive_reference(settings, groups):
    sign = -1.0 if settings.get("maximize") else 1.0
    groups = [{**settings, **group} for group in groups]
    mine = run_library(Yogi, groups, STEPS, sign)
    theirs = run_naive(NaiveYogi, groups, STEPS, sign)
    moved = False
    for param, values, start in zip(mine, theirs, starts(), strict=True):
        expected = torch.tensor(values, dtype=torch.float64).reshape(param.shape)
        torch.testing.assert_close(param, expected, rtol=1e-10, atol=1e-12)
        moved |= not torch.allclose(param, start, atol=1e-3)
    assert moved


def test_second_moment_moves_additively_towards_g_squared():
    # v0 = 1, g = 0.5: g^2 = 0.25 < v, so v decreases by (1 - b2) g^2 = 0.025, not Adam's 0.075.
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = Yogi([w], betas=(0.9, 0.9), initial_accumulator=1.0)
    w.grad = torch.tensor([0.5, 2.0], dtype=torch.float64)
    optimizer.step()
    # Second coordinate: g^2 = 4 > v, so v increases by 0.1 * 4.
    expected = torch.tensor([1.0 - 0.025, 1.0 + 0.4], dtype=torch.float64)
    torch.testing.assert_close(optimizer.state[w]["exp_avg_sq"], expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(optimizer.state[w]["exp_avg"], 0.1 * w.grad, rtol=1e-15, atol=0)


def test_bias_correction_changes_the_first_step():
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    corrected = Yogi([w], lr=0.1)
    w.grad = torch.tensor([1.0], dtype=torch.float64)
    corrected.step()
    # m_hat = g = 1, v_hat = (1e-6 + 1e-3) / 1e-3: the step is about lr.
    v_hat = (1e-6 + 1e-3) / (1 - 0.999)
    assert w.item() == pytest.approx(-0.1 / (v_hat**0.5 + 1e-3), rel=1e-12)


def _resume(optimizer_factory, steps_before, steps_after):
    def step(optimizer, params, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            loss_of(params).backward()
            optimizer.step()

    straight = [p.requires_grad_() for p in starts()]
    step(optimizer_factory(straight), straight, steps_before + steps_after)
    first = [p.requires_grad_() for p in starts()]
    optimizer = optimizer_factory(first)
    step(optimizer, first, steps_before)
    saved = copy.deepcopy(optimizer.state_dict())
    second = [p.detach().clone().requires_grad_() for p in first]
    resumed = optimizer_factory(second)
    resumed.load_state_dict(saved)
    step(resumed, second, steps_after)
    return straight, second


def test_state_dict_resume_is_bit_identical():
    straight, resumed = _resume(functools.partial(Yogi, lr=0.05, weight_decay=0.1), 30, 30)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_stacked_runs_with_tensor_hyperparameters_equal_separate_runs():
    K, D = 3, 4
    per_run = {
        "lr": [0.01, 0.03, 0.05],
        "beta1": [0.5, 0.9, 0.95],
        "beta2": [0.9, 0.99, 0.999],
        "eps": [1e-3, 1e-4, 1e-2],
        "initial_accumulator": [1e-6, 0.1, 1.0],
        "weight_decay": [0.0, 0.1, 0.3],
    }
    generator = torch.Generator().manual_seed(5)
    begin = torch.randn(K, D, dtype=torch.float64, generator=generator)

    def kwargs(pick):
        return dict(
            lr=pick("lr"),
            betas=(pick("beta1"), pick("beta2")),
            eps=pick("eps"),
            initial_accumulator=pick("initial_accumulator"),
            weight_decay=pick("weight_decay"),
        )

    def run(param, optimizer):
        for _ in range(60):
            optimizer.zero_grad()
            shifted = param - 0.3
            (shifted * shifted * shifted * shifted + 0.5 * param * param).sum().backward()
            optimizer.step()
        return param.detach()

    stacked = begin.clone().requires_grad_()
    columns = kwargs(lambda name: torch.tensor(per_run[name], dtype=torch.float64).reshape(K, 1))
    together = run(stacked, Yogi([{"params": [stacked], "stack_dims": 1}], **columns))
    for k in range(K):
        single = begin[k].clone().requires_grad_()
        as_tensors = kwargs(lambda name, k=k: torch.tensor(per_run[name][k], dtype=torch.float64))
        assert torch.equal(together[k], run(single, Yogi([single], **as_tensors))), k
        plain = begin[k].clone().requires_grad_()
        floats = run(plain, Yogi([plain], **kwargs(lambda name, k=k: per_run[name][k])))
        torch.testing.assert_close(together[k], floats, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -1.0}, ValueError, "lr"),
        ({"betas": (1.0, 0.999)}, ValueError, r"betas\[0\]"),
        ({"betas": (0.9, -0.1)}, ValueError, r"betas\[1\]"),
        ({"betas": (0.9,)}, TypeError, "betas"),
        ({"eps": -1e-3}, ValueError, "eps"),
        ({"initial_accumulator": -1.0}, ValueError, "initial_accumulator"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"bias_correction": "yes"}, TypeError, "bias_correction"),
        ({"maximize": None}, TypeError, "maximize"),
        ({"eps": torch.full((5,), 1e-3)}, ValueError, "eps of shape"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Yogi([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_spec():
    (entry,) = SPECS
    assert entry.key == "yogi" and entry.factory is Yogi
    assert entry.defaults == {
        "lr": 1e-2,
        "betas": (0.9, 0.999),
        "eps": 1e-3,
        "initial_accumulator": 1e-6,
        "bias_correction": True,
        "weight_decay": 0.0,
    }
    w = torch.ones(2, requires_grad=True)
    optimizer = entry.factory([w], **entry.defaults)
    (w * w).sum().backward()
    optimizer.step()
    assert {buffer.name for buffer in entry.state} == set(optimizer.state[w]) - {"step"}
