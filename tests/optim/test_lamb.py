"""LAMB (You et al. 2020) against its naive reference (per-layer trust ratios), stacked (one ratio
per run), resumed, checked, trained."""

from __future__ import annotations

import pytest
import torch
from naive_modern_a import (
    NaiveLAMB,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
)

from descentlab.optim.lamb import LAMB, SPECS

CASES = [
    {"lr": 1e-2},
    {"lr": 2e-2, "betas": (0.8, 0.99), "weight_decay": 0.1},
    {"lr": 1e-2, "eps": 1e-2, "maximize": True},
]


@pytest.mark.parametrize("settings", CASES, ids=str)
def test_matches_naive_reference_across_shapes_and_groups(settings):
    groups = [
        {"params": [0, 1], **settings},
        {"params": [2, 3], **settings, "lr": settings["lr"] / 2},
    ]
    check_against_naive(LAMB, NaiveLAMB, groups)


def test_step_length_is_lr_times_the_weight_norm():
    param = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    optimizer = LAMB([param], lr=0.1)
    param.grad = torch.tensor([[1.0, -2.0], [0.5, 7.0]], dtype=torch.float64)
    before = param.detach().clone()
    optimizer.step()
    assert (param.detach() - before).norm().item() == pytest.approx(0.1 * 5.0, rel=1e-12)


def test_zero_weights_take_the_unscaled_step():
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = LAMB([param], lr=0.1)
    param.grad = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    optimizer.step()
    # ratio 1: the first bias-corrected Adam direction is g / (|g| + eps), about sign(g)
    assert param.detach().tolist() == pytest.approx([-0.1, 0.1, 0.0], rel=1e-5)


def test_stacked_runs_have_their_own_trust_ratios():
    runs = [
        {
            "lr": 1e-2 * (k + 1),
            "betas": (0.9 - 0.1 * k, 0.999 - 0.01 * k),
            "eps": 1e-6,
            "weight_decay": 0.1 * k,
        }
        for k in range(3)
    ]
    check_stacked(LAMB, NaiveLAMB, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(LAMB, NaiveLAMB, (3,), [(5,), (1,)], runs)
    check_stacked(LAMB, NaiveLAMB, (2, 2), [(3, 3), (2, 4)], runs + [{**runs[0], "eps": 1e-3}])


def test_resume_from_state_dict_is_bit_identical():
    check_resume(
        LAMB, [{"params": [0, 1], "lr": 1e-2}, {"params": [2, 3], "lr": 5e-3, "weight_decay": 0.1}]
    )
    lr = torch.tensor([1e-2, 2e-2, 3e-2], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        LAMB, [{"params": [0], "lr": lr, "stack_dims": 1}], shapes=[(3, 4, 2)], stack_dims=1
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        LAMB([param], lr=-0.1)
    with pytest.raises(ValueError, match=r"Invalid betas\[1\]"):
        LAMB([param], betas=(0.9, -0.1))
    with pytest.raises(ValueError, match="Invalid eps"):
        LAMB([param], eps=-1.0)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        LAMB([param], weight_decay=-0.1)
    with pytest.raises(ValueError, match="stack_dims=2 but parameter 0 has only 1 dimensions"):
        LAMB([{"params": [param], "stack_dims": 2}])


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "lamb" and entry.family == "modern" and entry.factory is LAMB
    assert entry.defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0}
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)


def test_a_nonfinite_gradient_poisons_its_whole_parameter_only():
    """The trust ratio is a norm over the tensor: a NaN there reaches every coordinate of that
    parameter (never mistaken for a zero norm), and no other parameter."""
    healthy, poisoned = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    optimizer = LAMB([healthy, poisoned])
    healthy.grad = torch.full((3,), 0.5)
    poisoned.grad = torch.tensor([float("nan"), 0.5, 0.5])
    optimizer.step()
    assert torch.isfinite(healthy).all() and torch.isnan(poisoned).all()
