"""Rprop: the naive references of all four variants, torch.optim.Rprop, resume, stacking, errors."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from descentlab.optim.rprop import SPECS, VARIANTS, Rprop
from tests.optim.naive_rprop_yogi_quickprop import (
    NaiveRprop,
    run_library,
    run_naive,
    starts,
    wavy_total_loss,
)

STEPS = 100
ONE_GROUP = [{"params": [0, 1, 2, 3]}]
TWO_GROUPS = [
    {"params": [0, 3]},
    {"params": [1, 2], "lr": 0.03, "etas": (0.3, 1.4), "step_sizes": (1e-4, 0.2)},
]
SETTINGS = [
    {},
    {"lr": 0.05, "etas": (0.4, 1.1), "step_sizes": (1e-3, 0.5)},
    {"lr": 0.02, "etas": (0.6, 2.5)},  # eta_plus > 2 takes the other selector in update
    {"maximize": True},
]


def _groups(groups, settings):
    return [{**settings, **group} for group in groups]


@pytest.mark.parametrize("groups", [ONE_GROUP, TWO_GROUPS], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "custom", "big-eta", "maximize"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_naive_reference(variant, settings, groups):
    sign = -1.0 if settings.get("maximize") else 1.0
    groups = _groups(groups, {**settings, "variant": variant})
    mine = run_library(Rprop, groups, STEPS, sign)
    theirs = run_naive(NaiveRprop, groups, STEPS, sign)
    for param, values in zip(mine, theirs, strict=True):
        expected = torch.tensor(values, dtype=torch.float64).reshape(param.shape)
        torch.testing.assert_close(param, expected, rtol=1e-10, atol=1e-12)


def test_variants_take_different_paths():
    # The comparison above would pass vacuously if the variant were ignored.
    finals = [run_library(functools.partial(Rprop, variant=v), ONE_GROUP, 40)[0] for v in VARIANTS]
    for i in range(len(finals)):
        for j in range(i + 1, len(finals)):
            assert not torch.equal(finals[i], finals[j]), (VARIANTS[i], VARIANTS[j])


def _torch_trajectory(cls, kwargs, dtype, groups, steps=STEPS):
    sign = -1.0 if kwargs.get("maximize") else 1.0
    return run_library(functools.partial(cls, **kwargs), groups, steps, sign, dtype)


TORCH_CASES = [
    {},
    {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2)},
    {"etas": (0.4, 2.5), "lr": 1e-7},  # lr below the minimum step size: clipped at once
    {"maximize": True},
]


@pytest.mark.parametrize("groups", [ONE_GROUP, TWO_GROUPS], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("kwargs", TORCH_CASES)
def test_default_variant_is_torch_bit_for_bit_in_float32(kwargs, groups):
    mine = _torch_trajectory(Rprop, kwargs, torch.float32, groups)
    theirs = _torch_trajectory(torch.optim.Rprop, kwargs, torch.float32, groups)
    for a, b in zip(mine, theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs", TORCH_CASES)
def test_default_variant_matches_torch_in_float64(kwargs):
    mine = _torch_trajectory(Rprop, kwargs, torch.float64, TWO_GROUPS)
    theirs = _torch_trajectory(torch.optim.Rprop, kwargs, torch.float64, TWO_GROUPS)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def _step_with(optimizer, params, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        wavy_total_loss(params).backward()
        optimizer.step()


def test_torch_state_dict_loads_into_ours_and_continues_identically():
    params = [p.requires_grad_() for p in starts(torch.float32)]
    theirs = torch.optim.Rprop(params, lr=0.03)
    _step_with(theirs, params, 40)
    saved = theirs.state_dict()
    # load_state_dict keeps the saved tensors where dtype and device match: give each its copy.
    ref_params = [p.detach().clone().requires_grad_() for p in params]
    reference = torch.optim.Rprop(ref_params, lr=0.03)
    reference.load_state_dict(copy.deepcopy(saved))

    mine = Rprop(params, lr=0.03)
    mine.load_state_dict(copy.deepcopy(saved))
    _step_with(mine, params, 60)
    _step_with(reference, ref_params, 60)
    for a, b in zip(params, ref_params, strict=True):
        assert torch.equal(a, b)
    # And the state stays torch's: same buffers under the same names.
    for a, b in zip(params, ref_params, strict=True):
        for key in ("prev", "step_size", "step"):
            assert torch.equal(mine.state[a][key], reference.state[b][key]), key


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_resume_is_bit_identical(variant):
    def closure_for(optimizer, params):
        def closure():
            optimizer.zero_grad()
            loss = wavy_total_loss(params)
            loss.backward()
            return loss

        return closure

    straight = [p.requires_grad_() for p in starts()]
    optimizer = Rprop(straight, lr=0.03, variant=variant)
    for _ in range(60):
        optimizer.step(closure_for(optimizer, straight))

    first = [p.requires_grad_() for p in starts()]
    optimizer = Rprop(first, lr=0.03, variant=variant)
    for _ in range(30):
        optimizer.step(closure_for(optimizer, first))
    saved = copy.deepcopy(optimizer.state_dict())
    if variant in ("rprop+", "irprop+"):
        assert "prev_update" in saved["state"][0]
    if variant == "irprop+":
        assert "prev_loss" in saved["state"][0]
    second = [p.detach().clone().requires_grad_() for p in first]
    resumed = Rprop(second, lr=0.03, variant=variant)
    resumed.load_state_dict(saved)
    for _ in range(30):
        resumed.step(closure_for(resumed, second))
    for a, b in zip(straight, second, strict=True):
        assert torch.equal(a, b)


K, D = 3, 4
PER_RUN = {
    "lr": [0.01, 0.03, 0.05],
    "eta_minus": [0.3, 0.5, 0.7],
    "eta_plus": [1.1, 1.2, 2.5],
    "step_min": [1e-6, 1e-4, 1e-3],
    "step_max": [50.0, 0.5, 0.1],
}


def _stacked_loss(param):
    shifted = param - 0.3
    return (shifted * shifted * shifted * shifted + 0.5 * param * param - 0.2 * param).sum(-1)


def _run(param, optimizer, steps, per_run_loss):
    def closure():
        optimizer.zero_grad()
        losses = _stacked_loss(param)
        losses.sum().backward()
        return losses if per_run_loss else losses.sum()

    for _ in range(steps):
        optimizer.step(closure)
    return param.detach()


def _check_stacked_against_alone(seed, variant, stacked_settings, settings_of_run):
    """K stacked runs step as the K runs stepped alone, bit for bit, over 60 steps."""
    generator = torch.Generator().manual_seed(seed)
    starts_ = torch.randn(K, D, dtype=torch.float64, generator=generator)
    stacked = starts_.clone().requires_grad_()
    optimizer = Rprop([{"params": [stacked], "stack_dims": 1}], variant=variant, **stacked_settings)
    # irprop+ compares each run's own loss: the closure returns one loss per run.
    together = _run(stacked, optimizer, 60, per_run_loss=True)
    for k in range(K):
        single = starts_[k].clone().requires_grad_()
        alone = Rprop([single], variant=variant, **settings_of_run(k))
        assert torch.equal(together[k], _run(single, alone, 60, per_run_loss=False)), k


@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_runs_with_tensor_hyperparameters_equal_separate_runs(variant):
    column = {k: torch.tensor(v, dtype=torch.float64).reshape(K, 1) for k, v in PER_RUN.items()}
    stacked = {
        "lr": column["lr"],
        "etas": (column["eta_minus"], column["eta_plus"]),
        "step_sizes": (column["step_min"], column["step_max"]),
    }

    def alone(k):
        return {
            "lr": PER_RUN["lr"][k],
            "etas": (PER_RUN["eta_minus"][k], PER_RUN["eta_plus"][k]),
            "step_sizes": (PER_RUN["step_min"][k], PER_RUN["step_max"][k]),
        }

    _check_stacked_against_alone(3, variant, stacked, alone)


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_bound_of_a_pair_may_be_a_tensor(variant):
    """A per-run eta_minus with a shared eta_plus (and a per-run smallest step with a shared
    largest): torch's clamp takes no mix of a tensor and a number."""
    eta_minus = torch.tensor(PER_RUN["eta_minus"], dtype=torch.float64).reshape(K, 1)
    step_min = torch.tensor(PER_RUN["step_min"], dtype=torch.float64).reshape(K, 1)
    stacked = {"etas": (eta_minus, 1.2), "step_sizes": (step_min, 50.0)}

    def alone(k):
        return {
            "etas": (PER_RUN["eta_minus"][k], 1.2),
            "step_sizes": (PER_RUN["step_min"][k], 50.0),
        }

    _check_stacked_against_alone(4, variant, stacked, alone)


def test_rprop_plus_goes_back_to_the_previous_location():
    # f(w) = w^2 from 0.04 with step 0.1: the first step overshoots to -0.06, the sign flips.
    for variant, expected in [("rprop+", 0.04), ("irprop+", 0.04), ("irprop-", -0.06)]:
        w = torch.tensor([0.04], dtype=torch.float64, requires_grad=True)
        optimizer = Rprop([w], lr=0.1, variant=variant)

        def closure(w=w, optimizer=optimizer):
            optimizer.zero_grad()
            loss = (w * w).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        assert w.item() == pytest.approx(-0.06, abs=1e-15)
        optimizer.step(closure)
        assert w.item() == pytest.approx(expected, abs=1e-15), variant
        assert optimizer.state[w]["step_size"].item() == pytest.approx(0.05)


def test_irprop_plus_keeps_the_step_when_the_loss_fell():
    # From 0.07 the overshoot lands at -0.03: the sign flips but the loss went down.
    w = torch.tensor([0.07], dtype=torch.float64, requires_grad=True)
    optimizer = Rprop([w], lr=0.1, variant="irprop+")

    def closure():
        optimizer.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    optimizer.step(closure)
    assert w.item() == pytest.approx(-0.03, abs=1e-15)


def test_irprop_plus_without_closure_is_a_clear_error():
    w = torch.ones(2, requires_grad=True)
    optimizer = Rprop([w], variant="irprop+")
    (w * w).sum().backward()
    with pytest.raises(ValueError, match=r"step\(closure\).*irprop\+"):
        optimizer.step()
    # The other variants step without one.
    Rprop([w]).step()


def test_per_run_loss_of_the_wrong_shape_is_rejected():
    w = torch.ones(3, 2, requires_grad=True)
    optimizer = Rprop([{"params": [w], "stack_dims": 1}], variant="irprop+")

    def closure():
        optimizer.zero_grad()
        (w * w).sum().backward()
        return torch.ones(4)

    with pytest.raises(ValueError, match=r"loss of shape \(4,\)"):
        optimizer.step(closure)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, "lr"),
        ({"etas": (1.0, 1.2)}, ValueError, r"etas\[0\]"),
        ({"etas": (0.0, 1.2)}, ValueError, r"etas\[0\]"),
        ({"etas": (0.5, 1.0)}, ValueError, r"etas\[1\]"),
        ({"etas": (0.5, torch.tensor([[1.2], [0.9]]))}, ValueError, r"etas\[1\]"),
        ({"etas": 0.5}, TypeError, "etas"),
        ({"step_sizes": (-1e-6, 50)}, ValueError, r"step_sizes\[0\]"),
        ({"step_sizes": (1.0, 0.5)}, ValueError, "step_sizes"),
        ({"step_sizes": (1e-6,)}, TypeError, "step_sizes"),
        ({"variant": "rprop"}, ValueError, "variant"),
        ({"variant": "iRprop-"}, ValueError, "variant"),
        ({"maximize": 1}, TypeError, "maximize"),
        ({"capturable": True}, ValueError, "capturable"),
        ({"differentiable": True}, ValueError, "differentiable"),
        ({"lr": torch.full((3, 1), 0.1)}, ValueError, "lr of shape"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Rprop([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_signature_and_defaults_are_torchs():
    import inspect

    ours = inspect.signature(Rprop.__init__).parameters
    theirs = inspect.signature(torch.optim.Rprop.__init__).parameters
    for name, parameter in theirs.items():
        assert name in ours, name
        assert ours[name].default == parameter.default, name
        assert ours[name].kind == parameter.kind, name
    assert ours["variant"].default == "irprop-"


def test_spec():
    (entry,) = SPECS
    assert entry.key == "rprop" and entry.factory is Rprop
    assert entry.defaults == {
        "lr": 1e-2,
        "etas": (0.5, 1.2),
        "step_sizes": (1e-6, 50.0),
        "variant": "irprop-",
    }
    assert set(entry.hyperparameter("variant").choices) == set(VARIANTS)
    w = torch.ones(2, requires_grad=True)
    optimizer = entry.factory([w], **entry.defaults)
    (w * w).sum().backward()
    optimizer.step()
    names = {buffer.name for buffer in entry.state}
    assert {"prev", "step_size"} <= set(optimizer.state[w]) and set(optimizer.state[w]) - {
        "step"
    } <= names
