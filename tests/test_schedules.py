"""descentlab.schedules: each schedule's closed form, its torch LRScheduler, the registry, bad input."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_schedulers

from descentlab import schedules
from descentlab.schedules import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    LinearWarmup,
    MultiStep,
    Piecewise,
    Polynomial,
    Step,
    WarmupCosine,
)

STEPS = range(0, 300)
# torch's schedulers update the lr recursively (lr *= ratio). Over these 50-step runs the largest
# relative drift from the closed form was 2.0e-14 (CosineAnnealingLR near its zero at t = T),
# then 1.2e-14 (SequentialLR's cosine to a floor); ExponentialLR and LinearLR stayed below 1e-15;
# StepLR, MultiStepLR and every LambdaLR matched exactly. 1e-12 leaves room for other torch versions without hiding a wrong formula.
TORCH_RTOL = 1e-12


def close(got: float, want: float, rtol: float = 1e-14) -> bool:
    return math.isclose(got, want, rel_tol=rtol, abs_tol=1e-300)


# ----------------------------------------------------------------------------- closed forms

unit = st.floats(0.01, 1.0)
rate = st.floats(0.0, 5.0)
steps = st.integers(1, 60)


@given(step_size=steps, gamma=unit)
def test_step_is_gamma_to_the_number_of_completed_periods(step_size, gamma):
    schedule = Step(step_size, gamma)
    for t in STEPS:
        assert close(schedule.factor(t), gamma ** math.floor(t / step_size))


@given(milestones=st.lists(steps, min_size=1, max_size=4, unique=True), gamma=unit)
def test_multistep_is_gamma_to_the_number_of_milestones_passed(milestones, gamma):
    schedule = MultiStep(sorted(milestones), gamma)
    for t in STEPS:
        assert close(schedule.factor(t), gamma ** sum(m <= t for m in milestones))


def test_piecewise_holds_each_value_from_its_boundary_on():
    schedule = Piecewise((10, 20), (0.5, 2.0))
    expected = [1.0] * 10 + [0.5] * 10 + [2.0] * 30
    assert [schedule.factor(t) for t in range(50)] == expected


@given(gamma=unit)
def test_exponential_is_gamma_to_the_t(gamma):
    schedule = Exponential(gamma)
    for t in STEPS:
        assert close(schedule.factor(t), gamma**t)


@given(decay_rate=rate)
def test_exponential_from_rate_is_e_to_the_minus_rate_t(decay_rate):
    schedule = Exponential.from_rate(decay_rate)
    for t in STEPS:
        # gamma = e^-rate rounded once, then raised to t: a few ulps per factor of e.
        assert close(schedule.factor(t), math.exp(-decay_rate * t), rtol=1e-12)


@given(decay=rate)
def test_inverse_time_is_one_over_one_plus_decay_t(decay):
    schedule = InverseTime(decay)
    for t in STEPS:
        assert close(schedule.factor(t), 1 / (1 + decay * t))


def test_inverse_time_has_the_plus_sign_not_note_000s_minus():
    # 1/(1 - 0.1 t) would blow up at t = 10 and turn negative; the real schedule shrinks.
    schedule = InverseTime(0.1)
    assert schedule.factor(10) == pytest.approx(0.5)
    assert all(0 < schedule.factor(t) < 1 for t in range(1, 100))


@given(decay=rate)
def test_inverse_sqrt_is_one_over_root_of_one_plus_decay_t(decay):
    schedule = InverseSqrt(decay)
    for t in STEPS:
        assert close(schedule.factor(t), 1 / math.sqrt(1 + decay * t))


@given(beta=rate, alpha=st.floats(0.0, 3.0))
def test_polynomial_is_beta_t_plus_one_to_the_minus_alpha(beta, alpha):
    schedule = Polynomial(beta, alpha)
    for t in STEPS:
        assert close(schedule.factor(t), (beta * t + 1) ** -alpha)


@given(decay=rate)
def test_polynomial_contains_inverse_time_and_inverse_sqrt(decay):
    for t in STEPS:
        assert close(Polynomial(decay, 1.0).factor(t), InverseTime(decay).factor(t))
        assert close(Polynomial(decay, 0.5).factor(t), InverseSqrt(decay).factor(t))


@given(warmup=steps, start=st.floats(0.0, 1.0))
def test_linear_warmup_ramps_linearly_then_holds(warmup, start):
    schedule = LinearWarmup(warmup, start)
    assert schedule.factor(0) == start
    slope = (1 - start) / warmup
    for t in range(warmup):
        assert math.isclose(schedule.factor(t + 1) - schedule.factor(t), slope, abs_tol=1e-14)
    assert all(schedule.factor(t) == 1.0 for t in range(warmup, warmup + 50))


@given(total=steps, floor=st.floats(0.0, 1.0))
def test_cosine_is_half_a_cosine_wave_from_one_to_the_floor(total, floor):
    schedule = Cosine(total, floor)
    for t in range(total + 1):
        want = floor + (1 - floor) * (1 + math.cos(math.pi * t / total)) / 2
        assert close(schedule.factor(t), want)
    assert schedule.factor(0) == 1.0
    assert math.isclose(schedule.factor(total), floor, abs_tol=1e-15)


@given(warmup=st.integers(0, 30), length=steps, start=st.floats(0.0, 1.0), floor=unit)
def test_warmup_cosine_is_the_ramp_then_the_cosine(warmup, length, start, floor):
    total = warmup + length
    schedule = WarmupCosine(warmup, total, start, floor)
    for t in range(total + 1):
        if t < warmup:
            want = start + (1 - start) * t / warmup
        else:
            want = floor + (1 - floor) * (1 + math.cos(math.pi * (t - warmup) / length)) / 2
        assert close(schedule.factor(t), want)
    assert schedule.factor(warmup) == 1.0  # the peak sits where the ramp ends


# ----------------------------------------------------------------------------- properties

DECAYING = [
    Step(7, 0.5),
    MultiStep([5, 12, 30], 0.3),
    Exponential(0.93),
    Exponential.from_rate(0.05),
    InverseTime(0.3),
    InverseSqrt(0.3),
    Polynomial(0.5, 0.7),
    Cosine(50, 0.1),
]
EXAMPLES = [
    Constant(),
    *DECAYING,
    Piecewise((10, 20), (0.5, 2.0)),
    LinearWarmup(10, 0.1),
    LinearWarmup(10, 0.0),
    LinearWarmup(0),
    Cosine(30),
    WarmupCosine(10, 50),
    WarmupCosine(10, 40, 0.0, 0.1),
    WarmupCosine(0, 50),
]


@pytest.mark.parametrize("schedule", DECAYING, ids=repr)
def test_decaying_schedules_start_at_one_and_never_rise(schedule):
    values = [schedule.factor(t) for t in range(51)]  # Cosine(50) rises again after t = 50
    assert values[0] == 1.0
    assert all(later <= earlier for earlier, later in zip(values, values[1:], strict=False))
    assert values[-1] < 1.0


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_factor_of_a_tensor_of_steps_is_the_factor_of_each_step(schedule):
    t = torch.arange(120, dtype=torch.float64)
    curve = schedule.factor(t)
    assert curve.dtype == torch.float64 and curve.shape == t.shape
    for step in range(120):
        assert close(float(curve[step]), schedule.factor(step))
    # Integer steps (torch.arange(n)) come back in the default floating dtype.
    assert schedule.factor(torch.arange(5)).dtype == torch.get_default_dtype()
    assert torch.equal(schedule.lr(t, 0.5), 0.5 * curve)
    assert schedule(3, 0.5) == 0.5 * schedule.factor(3)


# ----------------------------------------------------------------------------- torch schedulers

TORCH_CLASS = {
    Step: torch_schedulers.StepLR,
    MultiStep: torch_schedulers.MultiStepLR,
    Exponential: torch_schedulers.ExponentialLR,
    LinearWarmup: torch_schedulers.LinearLR,
    Cosine: torch_schedulers.CosineAnnealingLR,
    WarmupCosine: torch_schedulers.SequentialLR,
}


def sgd(*lrs: float) -> torch.optim.SGD:
    groups = [
        {"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], "lr": lr}
        for lr in lrs
    ]
    return torch.optim.SGD(groups)


# One group, or groups with unequal lrs (where Cosine's floor falls back to LambdaLR).
@pytest.mark.parametrize("base_lrs", [(0.1,), (0.1, 0.03)], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_torch_scheduler_gives_sgd_the_pure_functions_lr_at_every_step(schedule, base_lrs):
    optimizer = sgd(*base_lrs)
    scheduler = schedule.scheduler(optimizer)
    params = [group["params"][0] for group in optimizer.param_groups]
    for t in range(50):
        before = [param.detach().clone() for param in params]
        for param in params:
            param.grad = torch.ones_like(param)
        optimizer.step()
        for group, base_lr, param, old in zip(
            optimizer.param_groups, base_lrs, params, before, strict=True
        ):
            want = schedule.lr(t, base_lr)
            assert close(group["lr"], want, rtol=TORCH_RTOL), (t, group["lr"], want)
            # SGD really stepped with that lr: p <- p - lr * 1.
            torch.testing.assert_close(old - param.detach(), torch.full_like(old, want))
        scheduler.step()


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_torch_class_is_reused_where_torch_has_the_schedule(schedule):
    scheduler = schedule.scheduler(sgd(0.1))
    uses_lambda = type(schedule) not in TORCH_CLASS or (
        isinstance(schedule, LinearWarmup) and 0 in (schedule.warmup, schedule.start_factor)
    )
    expected = torch_schedulers.LambdaLR if uses_lambda else TORCH_CLASS[type(schedule)]
    if isinstance(schedule, WarmupCosine) and schedule.warmup == 0:
        expected = torch_schedulers.CosineAnnealingLR
    assert type(scheduler) is expected


def test_cosine_floor_with_unequal_group_lrs_falls_back_to_lambda_and_still_matches():
    # torch's eta_min is one absolute lr; a relative floor over groups 0.1 and 0.03 needs LambdaLR.
    schedule = Cosine(20, 0.2)
    optimizer = sgd(0.1, 0.03)
    scheduler = schedule.scheduler(optimizer)
    assert type(scheduler) is torch_schedulers.LambdaLR
    for t in range(30):
        assert optimizer.param_groups[1]["lr"] == schedule.lr(t, 0.03)
        optimizer.step()
        scheduler.step()


def test_lambda_scheduler_state_dict_pickles_and_resumes():
    schedule = InverseTime(0.2)
    optimizer = sgd(0.1)
    scheduler = schedule.scheduler(optimizer)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = pickle.loads(pickle.dumps(scheduler.state_dict()))
    resumed_optimizer = sgd(0.1)
    resumed = schedule.scheduler(resumed_optimizer)
    resumed.load_state_dict(state)
    resumed_optimizer.step()
    resumed.step()
    assert resumed.get_last_lr() == [schedule.lr(8, 0.1)]


# ----------------------------------------------------------------------------- registry


def test_names_cover_every_schedule_in_the_issue():
    assert schedules.names() == (
        "constant",
        "step",
        "multistep",
        "piecewise",
        "exponential",
        "inverse_time",
        "inverse_sqrt",
        "polynomial",
        "linear_warmup",
        "cosine",
        "warmup_cosine",
    )


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_create_rebuilds_each_example_and_it_carries_its_course_text(schedule):
    params = {field.name: getattr(schedule, field.name) for field in dataclasses.fields(schedule)}
    assert schedules.create(schedule.name, **params) == schedule
    assert schedules.get(schedule.name) is type(schedule)
    for text in (schedule.formula, schedule.description, schedule.source):
        assert isinstance(text, str) and text.strip()
    assert r"\eta_t" in schedule.formula


def test_create_exponential_from_a_rate():
    assert schedules.create("exponential", rate=0.1) == Exponential(math.exp(-0.1))
    with pytest.raises(TypeError, match="gamma or rate"):
        schedules.create("exponential", rate=0.1, gamma=0.9)


def test_create_rejects_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="Unknown schedule 'linear'.*warmup_cosine"):
        schedules.create("linear")
    with pytest.raises(
        TypeError, match="'step' has no parameter decay; its parameters are step_size"
    ):
        schedules.create("step", step_size=3, decay=0.1)
    with pytest.raises(TypeError, match="'cosine' needs total_steps"):
        schedules.create("cosine")


@pytest.mark.parametrize(
    ("name", "params", "error", "argument"),
    [
        ("step", {"step_size": 0}, ValueError, "step_size"),
        ("step", {"step_size": 2.5}, TypeError, "step_size"),
        ("step", {"step_size": 3, "gamma": 0.0}, ValueError, "gamma"),
        ("step", {"step_size": 3, "gamma": 1.5}, ValueError, "gamma"),
        ("multistep", {"milestones": [5, 5]}, ValueError, "milestones"),
        ("multistep", {"milestones": []}, TypeError, "milestones"),
        ("multistep", {"milestones": [0, 3]}, ValueError, r"milestones\[0\]"),
        ("piecewise", {"boundaries": [3], "factors": [0.1, 0.2]}, TypeError, "factors"),
        ("piecewise", {"boundaries": [3], "factors": [-0.1]}, ValueError, r"factors\[0\]"),
        ("exponential", {"gamma": 1.01}, ValueError, "gamma"),
        ("exponential", {"gamma": -0.5}, ValueError, "gamma"),
        ("exponential", {"gamma": True}, TypeError, "gamma"),
        ("exponential", {"rate": -0.1}, ValueError, "rate"),
        ("inverse_time", {"decay": -0.1}, ValueError, "decay"),
        ("inverse_time", {"decay": math.nan}, ValueError, "decay"),
        ("inverse_sqrt", {"decay": math.inf}, ValueError, "decay"),
        ("polynomial", {"beta": 1.0, "alpha": -1.0}, ValueError, "alpha"),
        ("polynomial", {"beta": "1"}, TypeError, "beta"),
        ("linear_warmup", {"warmup": -1}, ValueError, "warmup"),
        ("linear_warmup", {"warmup": 5, "start_factor": 1.5}, ValueError, "start_factor"),
        ("cosine", {"total_steps": 0}, ValueError, "total_steps"),
        ("cosine", {"total_steps": 10, "min_factor": -0.1}, ValueError, "min_factor"),
        ("warmup_cosine", {"warmup": 10, "total_steps": 10}, ValueError, "total_steps"),
        ("warmup_cosine", {"warmup": -2, "total_steps": 10}, ValueError, "warmup"),
        (
            "warmup_cosine",
            {"warmup": 2, "total_steps": 10, "min_factor": 2.0},
            ValueError,
            "min_factor",
        ),
    ],
)
def test_bad_parameters_raise_errors_naming_the_argument(name, params, error, argument):
    with pytest.raises(error, match=argument):
        schedules.create(name, **params)


def test_steps_must_be_numbers_or_tensors():
    with pytest.raises(TypeError, match="t must be"):
        InverseTime(0.1).factor("3")
    with pytest.raises(TypeError, match="t must be"):
        Step(3).lr(None, 0.1)


@settings(max_examples=25)
@given(gamma=unit, t=st.integers(0, 500))
def test_schedules_are_frozen_values(gamma, t):
    schedule = Exponential(gamma)
    with pytest.raises(AttributeError):
        schedule.gamma = 0.5  # type: ignore[misc]
    assert schedule == Exponential(gamma) and hash(schedule) == hash(Exponential(gamma))
    assert schedule.factor(t) == Exponential(gamma).factor(t)
