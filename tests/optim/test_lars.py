"""LARS (You, Gitman & Ginsburg 2017) against its naive reference (per-layer local learning
rates), stacked (one rate per run), resumed, checked, trained."""

from __future__ import annotations

import inspect

import pytest
import torch
from naive_modern_a import (
    NaiveLARS,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
)

from descentlab.optim.lars import LARS, SPECS


def make(groups):
    """LARS has no default lr: every group below names its own, which overrides this one."""
    return LARS(groups, lr=1.0)


CASES = [
    {"lr": 5.0},
    {"lr": 5.0, "momentum": 0.5, "weight_decay": 0.1, "trust_coefficient": 1e-2},
    {"lr": 2.0, "nesterov": True},
    {"lr": 2.0, "momentum": 0.0, "maximize": True},
]


@pytest.mark.parametrize("settings", CASES, ids=str)
def test_matches_naive_reference_across_shapes_and_groups(settings):
    groups = [
        {"params": [0, 1], **settings},
        {"params": [2, 3], **settings, "lr": settings["lr"] * 2},
    ]
    check_against_naive(make, NaiveLARS, groups)


def test_lr_is_required_as_in_the_paper():
    assert inspect.signature(LARS).parameters["lr"].default is inspect.Parameter.empty
    with pytest.raises(TypeError, match="lr"):
        LARS([torch.zeros(2, requires_grad=True)])


def test_first_step_moves_by_lr_trust_times_the_weight_norm():
    param = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    optimizer = LARS([param], lr=2.0, trust_coefficient=0.01)
    param.grad = torch.tensor([[1.0, -2.0], [0.5, 7.0]], dtype=torch.float64)
    before = param.detach().clone()
    optimizer.step()
    assert (param.detach() - before).norm().item() == pytest.approx(2.0 * 0.01 * 5.0, rel=1e-12)


def test_stacked_runs_have_their_own_local_learning_rates():
    runs = [
        {
            "lr": 2.0 * (k + 1),
            "momentum": 0.9 - 0.2 * k,
            "weight_decay": 0.05 * k,
            "trust_coefficient": 10.0 ** (-3 + k),
        }
        for k in range(3)
    ]
    check_stacked(make, NaiveLARS, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(make, NaiveLARS, (3,), [(5,), (1,)], runs)
    nesterov = [{**run, "nesterov": True} for run in runs + [runs[0]]]
    check_stacked(make, NaiveLARS, (2, 2), [(3, 3), (2, 4)], nesterov)


def test_resume_from_state_dict_is_bit_identical():
    check_resume(
        make, [{"params": [0, 1], "lr": 5.0}, {"params": [2, 3], "lr": 2.0, "weight_decay": 0.1}]
    )
    lr = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        make, [{"params": [0], "lr": lr, "stack_dims": 1}], shapes=[(3, 4, 2)], stack_dims=1
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        LARS([param], lr=-0.1)
    with pytest.raises(ValueError, match="Invalid momentum"):
        LARS([param], lr=1.0, momentum=1.0)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        LARS([param], lr=1.0, weight_decay=-0.1)
    with pytest.raises(ValueError, match="Invalid trust_coefficient: 0"):
        LARS([param], lr=1.0, trust_coefficient=0.0)
    with pytest.raises(ValueError, match="nesterov=True requires momentum > 0"):
        LARS([param], lr=1.0, momentum=0.0, nesterov=True)


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "lars" and entry.family == "modern" and entry.factory is LARS
    assert entry.defaults["trust_coefficient"] == 1e-3 and entry.defaults["momentum"] == 0.9
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)


def test_a_nonfinite_gradient_poisons_its_whole_parameter_only():
    """The local rate is a norm over the tensor: a NaN there reaches every coordinate of that
    parameter (never mistaken for a zero norm and given rate 1), and no other parameter."""
    healthy, poisoned = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    optimizer = LARS([healthy, poisoned], lr=1.0)
    healthy.grad = torch.full((3,), 0.5)
    poisoned.grad = torch.tensor([float("nan"), 0.5, 0.5])
    optimizer.step()
    assert torch.isfinite(healthy).all() and torch.isnan(poisoned).all()
