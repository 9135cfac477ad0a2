"""Lion (Chen et al. 2023) against its naive reference, stacked, resumed, checked, trained."""

from __future__ import annotations

import pytest
import torch
from naive_modern_a import (
    NaiveLion,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
)

from descentlab.optim.lion import SPECS, Lion

CASES = [
    {},
    {"lr": 1e-3},
    {"lr": 2e-3, "betas": (0.8, 0.95), "weight_decay": 0.5},
    {"lr": 1e-3, "betas": (0.0, 0.9), "maximize": True},
]


@pytest.mark.parametrize("settings", CASES, ids=str)
def test_matches_naive_reference_across_shapes_and_groups(settings):
    lr = settings.get("lr", 1e-4) * 3
    groups = [{"params": [0, 1], **settings}, {"params": [2, 3], **settings, "lr": lr}]
    check_against_naive(Lion, NaiveLion, groups)


def test_stacked_runs_equal_separate_runs_and_the_reference():
    runs = [
        {"lr": 1e-3 * (k + 1), "betas": (0.9 - 0.1 * k, 0.99 - 0.02 * k), "weight_decay": 0.2 * k}
        for k in range(3)
    ]
    check_stacked(Lion, NaiveLion, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(Lion, NaiveLion, (3,), [(5,), (1,)], runs)
    check_stacked(Lion, NaiveLion, (2, 2), [(3, 3)], runs + [{**runs[0], "lr": 5e-3}])


def test_resume_from_state_dict_is_bit_identical():
    check_resume(
        Lion, [{"params": [0, 1], "lr": 1e-3}, {"params": [2, 3], "lr": 2e-3, "weight_decay": 0.1}]
    )
    lr = torch.tensor([1e-3, 2e-3, 3e-3], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        Lion, [{"params": [0], "lr": lr, "stack_dims": 1}], shapes=[(3, 4, 2)], stack_dims=1
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        Lion([param], lr=-0.1)
    with pytest.raises(ValueError, match=r"Invalid betas\[1\]"):
        Lion([param], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas must be a tuple of 2"):
        Lion([param], betas=0.9)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        Lion([param], weight_decay=-1.0)
    with pytest.raises(TypeError, match="maximize must be True or False"):
        Lion([param], maximize="yes")


def test_every_step_moves_each_coordinate_by_exactly_lr():
    param = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    optimizer = Lion([param], lr=0.25)
    param.grad = torch.tensor([0.5, -1e-9, 0.0], dtype=torch.float64)
    optimizer.step()
    # sign(0.1 * g) per coordinate; a zero gradient gives sign 0 and no move.
    assert param.detach().tolist() == [0.75, -1.75, 3.0]


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "lion" and entry.family == "modern" and entry.factory is Lion
    assert entry.defaults == {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)
