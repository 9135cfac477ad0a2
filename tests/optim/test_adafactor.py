"""Adafactor against torch.optim.Adafactor (bit for bit, state_dicts interchangeable) and against
a naive per-matrix reference of torch's algorithm box; stacked configurations factor per run (a
(K, m, n) parameter is K matrices); resumed, checked, trained."""

from __future__ import annotations

import inspect
import io

import pytest
import torch
from naive_modern_a import (
    NaiveAdafactor,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
    run_library,
    starts,
    step_library,
)

from descentlab.optim.adafactor import SPECS, Adafactor

CASES = [
    {},
    {"lr": 0.1, "weight_decay": 0.1, "beta2_decay": -0.6},
    {"lr": 0.05, "eps": (1e-5, 1e-2), "d": 2.0, "maximize": True},
    {"lr": 0.05, "eps": (0.5, 1e-3)},  # a large eps1: the floors are active
]
IDS = ["defaults", "decay", "eps-d-maximize", "large-eps1"]


def _groups(settings):
    lr = settings.get("lr", 1e-2) / 2
    return [{"params": [0, 1], **settings}, {"params": [2, 3], **settings, "lr": lr}]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("settings", CASES, ids=IDS)
def test_bit_identical_to_torch(settings, dtype):
    ours = run_library(Adafactor, _groups(settings), 100, dtype=dtype)
    theirs = run_library(torch.optim.Adafactor, _groups(settings), 100, dtype=dtype)
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.isfinite(mine).all()
        assert torch.equal(mine, reference)


def test_torch_state_dict_loads_and_continues_identically():
    theirs = [p.requires_grad_() for p in starts()]
    reference = torch.optim.Adafactor(theirs, lr=0.05)
    step_library(reference, theirs, 30)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    optimizer = Adafactor(ours, lr=0.05)
    optimizer.load_state_dict(torch.load(buffer, weights_only=True))
    step_library(reference, theirs, 70)
    step_library(optimizer, ours, 70)
    for mine, expected in zip(ours, theirs, strict=True):
        assert torch.equal(mine, expected)
        assert set(optimizer.state[mine]) == set(reference.state[expected])
        for key, value in reference.state[expected].items():
            assert torch.equal(optimizer.state[mine][key], value), key


@pytest.mark.parametrize("settings", CASES, ids=IDS)
def test_matches_naive_reference_across_shapes_and_groups(settings):
    check_against_naive(Adafactor, NaiveAdafactor, _groups(settings))


def test_state_is_factored_for_matrices_only():
    matrix, vector = torch.zeros(4, 3, requires_grad=True), torch.zeros(5, requires_grad=True)
    optimizer = Adafactor([matrix, vector])
    matrix.grad, vector.grad = torch.ones(4, 3), torch.ones(5)
    optimizer.step()
    assert optimizer.state[matrix]["row_var"].shape == (4, 1)
    assert optimizer.state[matrix]["col_var"].shape == (1, 3)
    assert "variance" not in optimizer.state[matrix]
    assert optimizer.state[vector]["variance"].shape == (5,)


def test_stacked_matrices_are_factored_per_run_and_equal_torch_alone():
    """A (K, m, n) parameter with stack_dims=1 is K matrices; a (K, n) one is K vectors. Each
    run equals torch.optim.Adafactor on that run alone, including the per-run RMS."""
    generator = torch.Generator().manual_seed(5)
    # runs of very different scales: a shared RMS would make them interact
    scales = torch.tensor([0.01, 1.0, 30.0], dtype=torch.float64)
    stacked = [
        (torch.randn(3, 4, 5, dtype=torch.float64, generator=generator) * scales.reshape(3, 1, 1)),
        (torch.randn(3, 6, dtype=torch.float64, generator=generator) * scales.reshape(3, 1)),
    ]
    together = [p.clone().requires_grad_() for p in stacked]
    lr = torch.full((3, 1, 1), 0.05, dtype=torch.float64)
    optimizer = Adafactor(
        [
            {"params": [together[0]], "lr": lr, "stack_dims": 1},
            {"params": [together[1]], "lr": lr.reshape(3, 1), "stack_dims": 1},
        ]
    )
    step_library(optimizer, together, 100, stack_dims=1)
    assert optimizer.state[together[0]]["row_var"].shape == (3, 4, 1)
    assert optimizer.state[together[1]]["variance"].shape == (3, 6)
    for k in range(3):
        alone = [p[k].clone().requires_grad_() for p in stacked]
        step_library(torch.optim.Adafactor(alone, lr=0.05), alone, 100)
        for run, reference in zip(together, alone, strict=True):
            torch.testing.assert_close(run[k], reference.detach(), rtol=1e-12, atol=0)


def test_stacked_runs_equal_separate_runs_and_the_reference():
    # Moderate settings: with lr >~ 0.04 or beta2_decay >~ -0.7 on this quartic, Adafactor's
    # near-sign steps bounce chaotically about the minimum and any two correct float64
    # implementations part by 1e-5 within 100 steps (torch's own does against the reference).
    runs = [
        {
            "lr": 0.005 * (k + 1),
            "beta2_decay": -0.8 - 0.1 * k,
            "eps": (1e-30 * 10.0 ** (10 * k), 1e-3 * (k + 1)),
            "d": 1.0 + k,
            "weight_decay": 0.1 * k,
        }
        for k in range(3)
    ]
    check_stacked(Adafactor, NaiveAdafactor, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(Adafactor, NaiveAdafactor, (3,), [(5,), (1,)], runs)
    check_stacked(Adafactor, NaiveAdafactor, (3,), [(2, 3, 2)], runs)  # batches of matrices
    default_eps1 = [{**run, "eps": (None, run["eps"][1])} for run in runs + [runs[0]]]
    check_stacked(Adafactor, NaiveAdafactor, (2, 2), [(3, 3)], default_eps1)


def test_hyperparameters_must_be_one_value_per_run():
    param = torch.zeros(3, 4, 5, requires_grad=True)
    optimizer = Adafactor([{"params": [param], "lr": torch.full((3, 4, 1), 0.01)}])
    optimizer.param_groups[0]["stack_dims"] = 1
    param.grad = torch.ones(3, 4, 5)
    with pytest.raises(ValueError, match=r"Adafactor's lr of shape \(3, 4, 1\) varies within"):
        optimizer.step()


def test_resume_from_state_dict_is_bit_identical():
    check_resume(Adafactor, [{"params": [0, 1], "lr": 0.05}, {"params": [2, 3], "lr": 0.02}])
    lr = torch.tensor([1e-2, 2e-2, 3e-2], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        Adafactor, [{"params": [0], "lr": lr, "stack_dims": 1}], shapes=[(3, 4, 2)], stack_dims=1
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        Adafactor([param], lr=-0.1)
    with pytest.raises(ValueError, match="Invalid beta2_decay: 0.5"):
        Adafactor([param], beta2_decay=0.5)
    with pytest.raises(ValueError, match=r"Invalid eps\[0\]"):
        Adafactor([param], eps=(-1.0, 1e-3))
    with pytest.raises(ValueError, match=r"Invalid eps\[1\]"):
        Adafactor([param], eps=(None, -1e-3))
    with pytest.raises(TypeError, match=r"eps must be a tuple \(eps1 or None, eps2\)"):
        Adafactor([param], eps=1e-3)
    with pytest.raises(ValueError, match="Invalid d: 0.5"):
        Adafactor([param], d=0.5)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        Adafactor([param], weight_decay=-0.1)


def test_signature_and_defaults_are_torchs():
    ours, theirs = inspect.signature(Adafactor), inspect.signature(torch.optim.Adafactor)
    assert list(ours.parameters) == list(theirs.parameters)
    for name, parameter in theirs.parameters.items():
        assert ours.parameters[name].default == parameter.default, name
        assert ours.parameters[name].kind == parameter.kind, name


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "adafactor" and entry.family == "modern" and entry.factory is Adafactor
    assert entry.defaults["eps"] == (None, 1e-3)
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)
