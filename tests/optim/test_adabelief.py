"""AdaBelief (Zhuang et al. 2020) against its naive reference, stacked, resumed, checked, trained."""

from __future__ import annotations

import pytest
import torch
from naive_modern_a import (
    NaiveAdaBelief,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
)

from descentlab.optim.adabelief import SPECS, AdaBelief

CASES = [
    {"lr": 1e-2},
    {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "decoupled": False},
    {"lr": 5e-3, "eps": 1e-3, "maximize": True},  # a large eps shows where it enters
]


@pytest.mark.parametrize("settings", CASES, ids=str)
def test_matches_naive_reference_across_shapes_and_groups(settings):
    groups = [
        {"params": [0, 1], **settings},
        {"params": [2, 3], **settings, "lr": settings["lr"] / 2},
    ]
    check_against_naive(AdaBelief, NaiveAdaBelief, groups)


def test_eps_accumulates_in_the_belief_as_in_the_paper():
    param = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = AdaBelief([param], eps=0.5)
    for _ in range(3):
        param.grad = torch.zeros(2, dtype=torch.float64)
        optimizer.step()
    # s_t = beta2 s_{t-1} + eps with zero residual: 0.5 (1 + 0.999 + 0.999^2)
    expected = 0.5 * (1 + 0.999 + 0.999**2)
    assert optimizer.state[param]["exp_avg_var"].tolist() == pytest.approx([expected] * 2)


def test_stacked_runs_equal_separate_runs_and_the_reference():
    runs = [
        {
            "lr": 1e-2 * (k + 1),
            "betas": (0.9 - 0.1 * k, 0.999 - 0.01 * k),
            "eps": 10.0 ** (-16 + 4 * k),
            "weight_decay": 0.1 * k,
        }
        for k in range(3)
    ]
    check_stacked(AdaBelief, NaiveAdaBelief, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(AdaBelief, NaiveAdaBelief, (3,), [(5,), (1,)], runs)
    coupled = [{**run, "decoupled": False} for run in runs + [runs[1]]]
    check_stacked(AdaBelief, NaiveAdaBelief, (2, 2), [(3, 3)], coupled)


def test_resume_from_state_dict_is_bit_identical():
    check_resume(
        AdaBelief,
        [{"params": [0, 1], "lr": 1e-2}, {"params": [2, 3], "lr": 5e-3, "weight_decay": 0.1}],
    )
    lr = torch.tensor([1e-3, 2e-3, 3e-3], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        AdaBelief, [{"params": [0], "lr": lr, "stack_dims": 1}], shapes=[(3, 4, 2)], stack_dims=1
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        AdaBelief([param], lr=-0.1)
    with pytest.raises(ValueError, match=r"Invalid betas\[0\]"):
        AdaBelief([param], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="Invalid eps"):
        AdaBelief([param], eps=-1e-8)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        AdaBelief([param], weight_decay=-0.1)
    with pytest.raises(TypeError, match="decoupled must be True or False"):
        AdaBelief([param], decoupled=1)
    with pytest.raises(ValueError, match=r"lr of shape \(2, 1\) does not broadcast"):
        AdaBelief([param], lr=torch.ones(2, 1))


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "adabelief" and entry.family == "modern" and entry.factory is AdaBelief
    assert entry.defaults == {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-16,
        "weight_decay": 0.0,
    }
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)
