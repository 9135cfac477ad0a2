"""ASGD against torch.optim.ASGD (bit for bit, state_dicts interchangeable) and against a naive
reference of torch's algorithm box; stacked, resumed, checked, trained."""

from __future__ import annotations

import io

import pytest
import torch
from naive_modern_a import (
    NaiveASGD,
    check_against_naive,
    check_resume,
    check_stacked,
    digits_test_accuracy,
    loss,
    run_library,
    starts,
    step_library,
)

from descentlab.optim.asgd import ASGD, SPECS

CASES = [
    {},
    {"lr": 1e-2, "t0": 10, "lambd": 1e-2, "weight_decay": 0.1},  # averaging from step 11
    {"lr": 2e-4, "t0": 0, "alpha": 1.0, "lambd": 0.5, "maximize": True},
]
IDS = ["defaults", "averaging", "maximize"]


@pytest.fixture
def float64_scalars():
    """torch keeps eta and mu in float32 unless the default dtype is float64; the float64 naive
    reference needs them in float64 too."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _groups(settings):
    lr = settings.get("lr", 1e-2) / 2
    return [{"params": [0, 1], **settings}, {"params": [2, 3], **settings, "lr": lr}]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("settings", CASES, ids=IDS)
def test_bit_identical_to_torch(settings, dtype):
    ours = run_library(ASGD, _groups(settings), 100, dtype=dtype)
    theirs = run_library(torch.optim.ASGD, _groups(settings), 100, dtype=dtype)
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.isfinite(mine).all()
        assert torch.equal(mine, reference)


def test_torch_state_dict_loads_and_continues_identically():
    settings = {"lr": 1e-2, "t0": 10, "lambd": 1e-2}
    theirs = [p.requires_grad_() for p in starts()]
    reference = torch.optim.ASGD(theirs, **settings)
    step_library(reference, theirs, 30)
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    optimizer = ASGD(ours, **settings)
    optimizer.load_state_dict(torch.load(_saved(reference), weights_only=True))
    step_library(reference, theirs, 70)
    step_library(optimizer, ours, 70)
    for mine, expected in zip(ours, theirs, strict=True):
        assert torch.equal(mine, expected)
        assert torch.equal(optimizer.state[mine]["ax"], reference.state[expected]["ax"])


def _saved(optimizer) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("settings", CASES, ids=IDS)
def test_matches_naive_reference_across_shapes_and_groups(settings, float64_scalars):
    params, references = check_against_naive(ASGD, NaiveASGD, _groups(settings))
    # The average, the algorithm's answer, matches too.
    rebuilt = [p.requires_grad_() for p in starts()]
    optimizer = ASGD(
        [{**g, "params": [rebuilt[i] for i in g["params"]]} for g in _groups(settings)]
    )
    step_library(optimizer, rebuilt, 100)
    for index, param in enumerate(rebuilt):
        expected = torch.tensor(references[index].average, dtype=torch.float64)
        torch.testing.assert_close(
            optimizer.state[param]["ax"], expected.reshape(param.shape), rtol=1e-10, atol=1e-10
        )


def test_stacked_runs_equal_separate_runs_and_the_reference(float64_scalars):
    runs = [
        {
            "lr": 5e-3 * (k + 1),
            "lambd": 10.0 ** (-4 + k),
            "alpha": 0.75 + 0.1 * k,
            "t0": [1e6, 10.0, 0.0][k],
            "weight_decay": 0.05 * k,
        }
        for k in range(3)
    ]
    check_stacked(ASGD, NaiveASGD, (3,), [(4, 3), (2, 5)], runs)
    check_stacked(ASGD, NaiveASGD, (3,), [(5,), (1,)], runs)
    check_stacked(ASGD, NaiveASGD, (2, 2), [(3, 3)], runs + [{**runs[1], "t0": 50.0}])


def test_averaging_reduces_the_noise_of_the_iterate():
    generator = torch.Generator().manual_seed(0)
    param = torch.full((200,), 1.0, dtype=torch.float64, requires_grad=True)
    optimizer = ASGD([param], lr=0.1, t0=100)
    for _ in range(600):
        noise = torch.randn(200, dtype=torch.float64, generator=generator)
        param.grad = param.detach() + noise  # gradient of |x|^2 / 2 plus unit noise
        optimizer.step()
    average = optimizer.state[param]["ax"]
    assert average.norm() < 0.3 * param.detach().norm()


def test_resume_from_state_dict_is_bit_identical():
    check_resume(
        ASGD,
        [{"params": [0, 1], "lr": 1e-2, "t0": 10}, {"params": [2, 3], "lr": 5e-3, "t0": 20}],
    )
    lr = torch.tensor([1e-3, 2e-3, 3e-3], dtype=torch.float64).reshape(3, 1, 1)
    t0 = torch.tensor([5.0, 10.0, 1e6], dtype=torch.float64).reshape(3, 1, 1)
    check_resume(
        ASGD,
        [{"params": [0], "lr": lr, "t0": t0, "stack_dims": 1}],
        shapes=[(3, 4, 2)],
        stack_dims=1,
    )


def test_bad_input_names_the_argument():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        ASGD([param], lr=-0.1)
    with pytest.raises(ValueError, match="Invalid lambd"):
        ASGD([param], lambd=-1.0)
    with pytest.raises(ValueError, match="Invalid alpha"):
        ASGD([param], alpha=-0.5)
    with pytest.raises(TypeError, match="t0 must be a number or a tensor"):
        ASGD([param], t0="soon")
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        ASGD([param], weight_decay=-0.1)
    with pytest.raises(ValueError, match="does not support capturable=True"):
        ASGD([param], capturable=True)


def test_signature_and_defaults_are_torchs():
    import inspect

    ours, theirs = inspect.signature(ASGD), inspect.signature(torch.optim.ASGD)
    assert list(ours.parameters)[: len(theirs.parameters)] == list(theirs.parameters)
    # Beyond torch's: keyword-only switches (fused=True, which torch's ASGD lacks).
    extra = list(ours.parameters.values())[len(theirs.parameters) :]
    assert [p.name for p in extra] == ["fused"] and extra[0].kind is inspect.Parameter.KEYWORD_ONLY
    for name, parameter in theirs.parameters.items():
        assert ours.parameters[name].default == parameter.default, name


def test_spec_and_digits():
    entry = SPECS[0]
    assert entry.key == "asgd" and entry.family == "modern" and entry.factory is ASGD
    lr, accuracy = digits_test_accuracy(entry)
    assert accuracy >= 0.9, (lr, accuracy)


def test_the_loss_used_above_is_the_drivers():
    # the torch comparison and the reference share one loss: a sanity check that it has a
    # gradient depending on every entry of a run (the coupling term)
    param = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    loss([param]).backward()
    assert param.grad.shape == (2, 2)


def test_a_tensor_lr_steps_a_float64_parameter_as_a_number_does():
    """eta is kept in float32 (torch's scalar dtype); the shrink 1 - lambd * eta of a float64
    parameter is still computed in float64, as the number path's Python arithmetic does."""
    start = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    results = []
    for lr in (1e-2, torch.tensor(1e-2, dtype=torch.float64)):
        param = start.clone().requires_grad_()
        optimizer = ASGD([param], lr=lr, lambd=0.5, t0=3)
        for _ in range(10):
            optimizer.zero_grad()
            (param**4).sum().backward()
            optimizer.step()
        results.append(param.detach())
    assert torch.equal(results[0], results[1])
