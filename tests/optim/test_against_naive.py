"""The library's classic optimizers against the naive, written-from-the-paper references.

``naive.py`` holds one plain-loop float64 reference per algorithm. Here each descentlab optimizer
runs 100 steps next to its reference on a non-quadratic loss whose gradient depends on the
parameters, for every hyperparameter setting below, every parameter shape (scalar, vector, matrix,
3-D) and two param groups with different learning rates, and must agree to 1e-10 relative, in the
parameters and in every state buffer. The references are also run against torch.optim itself, so
a reference that misreads torch's conventions fails on its own, not only against the library.
Modules the lead has not written yet are skipped (``pytest.importorskip``).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from naive import REFERENCES, NaiveAdam, NaiveOptimizer

STEPS = 100
TOLERANCE = 1e-10
COUPLING = 0.05  # weight of the (sum p)^2 term that makes each gradient depend on its neighbours

#: descentlab module that holds each class (the class name is torch.optim's).
MODULES = {
    "SGD": "sgd",
    "Adagrad": "adagrad",
    "Adadelta": "adadelta",
    "RMSprop": "rmsprop",
    "Adam": "adam",
    "AdamW": "adam",
    "NAdam": "nadam",
    "Adamax": "adamax",
    "RAdam": "radam",
}

#: (class name, hyperparameters): defaults, each variant flag, weight decay and maximize.
CASES = [
    ("SGD", {"lr": 0.01}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.8}),  # the EWA form of the notes
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "maximize": True}),
    (
        "SGD",
        {"lr": 0.02, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.05, "maximize": True},
    ),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.95, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 2.0, "eps": 1e-4, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.005, "momentum": 0.9, "maximize": True}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "centered": True, "momentum": 0.5}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("NAdam", {"lr": 0.01, "betas": (0.95, 0.9)}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-3}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.99), "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {"lr": 0.01, "betas": (0.9, 0.9)}),  # rho_inf = 19: rectification starts at t = 6
]
CASE_IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items()) or 'defaults'}"
    for name, kwargs in CASES
]
SHAPES = [(), (3,), (2, 3), (2, 2, 2)]
SHAPE_IDS = ["scalar", "vector", "matrix", "3d"]


@pytest.fixture(autouse=True)
def float64_default():
    # torch.optim keeps step counters and NAdam's mu_product in the default dtype's precision;
    # under a float32 default, NAdam on float64 params is ~6e-10 off a float64 reference after
    # 100 steps, from the float32 mu_product alone.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def library_class(name: str) -> type:
    module = pytest.importorskip(f"descentlab.optim.{MODULES[name]}")
    return getattr(module, name)


# ----------------------------------------------------------------------------- the loss
#
# f_t(p) = sum((p - 0.3)^4) + sum(sin(p) p) + c (sum p)^2 + sum(d_t * p). The first three terms
# make the gradient depend on the parameters (non-quadratic, non-convex, coupled within a tensor);
# d_t is a deterministic drift, different for every step and element, that plays the part of
# mini-batch noise. Without it the adaptive methods reach the minimum within 100 steps, where the
# gradient is a cancellation of O(0.1) terms and g / sqrt(v) (or centered RMSprop's v - gbar^2)
# amplifies last-bit differences between any two correct implementations chaotically.


def drift(step: int, param_index: int, size: int) -> list[float]:
    return [0.5 * math.sin(0.9 * step + 1.3 * i + 0.7 * param_index) for i in range(size)]


def loss(param: torch.Tensor, step: int, param_index: int) -> torch.Tensor:
    noise = torch.tensor(drift(step, param_index, param.numel()), dtype=param.dtype)
    return (
        ((param - 0.3) ** 4).sum()
        + (param.sin() * param).sum()
        + COUPLING * param.sum() ** 2
        + (param.reshape(-1) * noise).sum()
    )


def naive_gradient(values: list[float], step: int, param_index: int) -> list[float]:
    """The gradient of :func:`loss`, by hand, in plain Python (no autograd)."""
    total = sum(values)
    noise = drift(step, param_index, len(values))
    return [
        4 * (x - 0.3) ** 3 + math.sin(x) + x * math.cos(x) + 2 * COUPLING * total + d
        for x, d in zip(values, noise, strict=True)
    ]


# ----------------------------------------------------------------------------- the runs


def initial_groups(shape: tuple[int, ...], two_groups: bool) -> list[list[torch.Tensor]]:
    """Two float64 parameters of ``shape`` with values in [-1.5, 1.5], in one or two groups."""
    generator = torch.Generator().manual_seed(sum(shape) + 7 * len(shape))
    params = [
        (torch.rand(shape, generator=generator, dtype=torch.float64) * 3 - 1.5) for _ in range(2)
    ]
    return [params[:1], params[1:]] if two_groups else [params]


def second_group(name: str, kwargs: dict) -> dict:
    """The second param group's own settings: 0.3x the learning rate, 0.05 more weight decay."""
    defaults = REFERENCES[name].defaults
    return {
        "lr": 0.3 * float(kwargs.get("lr", defaults["lr"])),
        "weight_decay": kwargs.get("weight_decay", defaults["weight_decay"]) + 0.05,
    }


def run_tensor_optimizer(cls, name, kwargs, groups, steps=STEPS):
    """``steps`` steps of a torch-style optimizer; the loss is negated when maximizing."""
    groups = [[p.clone().requires_grad_(True) for p in params] for params in groups]
    dicts = [{"params": params} for params in groups]
    if len(dicts) == 2:
        dicts[1].update(second_group(name, kwargs))
    optimizer = cls(dicts, **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    flat = [p for params in groups for p in params]
    for step in range(steps):
        optimizer.zero_grad()
        total = sum(loss(p, step, index) for index, p in enumerate(flat))
        (sign * total).backward()
        optimizer.step()
    return groups, optimizer


def run_naive(name, kwargs, groups, steps=STEPS) -> NaiveOptimizer:
    dicts = [{"params": [p.flatten().tolist() for p in params]} for params in groups]
    if len(dicts) == 2:
        dicts[1].update(second_group(name, kwargs))
    reference = REFERENCES[name](dicts, **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for step in range(steps):
        grads, index = [], 0
        for params in reference.params():
            grads.append([])
            for values in params:
                grads[-1].append([sign * d for d in naive_gradient(values, step, index)])
                index += 1
        reference.step(grads)
    return reference


def relative_error(actual: torch.Tensor, expected: list[float]) -> float:
    """max |a - e| / max(|e|, 1e-3) over the elements (the floor keeps near-zero entries fair)."""
    expected_tensor = torch.tensor(expected, dtype=torch.float64)
    actual = actual.detach().reshape(-1).to(torch.float64)
    assert actual.shape == expected_tensor.shape
    scale = expected_tensor.abs().clamp_min(1e-3)
    return float(((actual - expected_tensor).abs() / scale).max())


def assert_matches_reference(groups, optimizer, reference: NaiveOptimizer) -> None:
    """Parameters and every state buffer the reference keeps agree to ``TOLERANCE``."""
    for params, ref_params, ref_states in zip(
        groups, reference.params(), reference.state, strict=True
    ):
        for param, ref_values, element_states in zip(params, ref_params, ref_states, strict=True):
            error = relative_error(param, ref_values)
            assert error <= TOLERANCE, f"parameter off by {error:.2e}"
            state = optimizer.state[param]
            for key in element_states[0]:
                assert key in state, f"state buffer {key!r} missing"
                buffer = torch.as_tensor(state[key])
                expected = [element[key] for element in element_states]
                if buffer.numel() == 1 and len(expected) > 1:
                    # torch keeps step (and NAdam's mu_product) once per parameter.
                    assert len(set(expected)) == 1
                    expected = expected[:1]
                error = relative_error(buffer, expected)
                assert error <= TOLERANCE, f"state {key!r} off by {error:.2e}"


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_library_matches_naive_reference(name, kwargs, shape):
    """Two params of ``shape`` in two groups (the second at 0.3x the lr), STEPS steps."""
    cls = library_class(name)
    groups = initial_groups(shape, two_groups=True)
    trained, optimizer = run_tensor_optimizer(cls, name, kwargs, groups)
    reference = run_naive(name, kwargs, groups)
    assert_matches_reference(trained, optimizer, reference)
    # Both groups must have gone somewhere, or matching would prove nothing.
    for trained_params, initial_params in zip(trained, groups, strict=True):
        for param, initial in zip(trained_params, initial_params, strict=True):
            assert float((param.detach() - initial).abs().max()) > 1e-3


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_naive_reference_matches_torch_optim(name, kwargs):
    """The references follow torch's conventions: checked against torch.optim itself."""
    groups = [[torch.linspace(-1.4, 1.3, 6).reshape(2, 3)], [torch.linspace(1.2, -0.9, 8)]]
    trained, optimizer = run_tensor_optimizer(getattr(torch.optim, name), name, kwargs, groups)
    reference = run_naive(name, kwargs, groups)
    assert_matches_reference(trained, optimizer, reference)


IMPLEMENTATION_FLAGS = {"foreach", "capturable", "differentiable", "fused", "stack_dims"}


def effective_defaults(cls) -> dict:
    """The hyperparameters a group gets when the caller sets none (torch.optim's ``defaults``)."""
    optimizer = cls([torch.zeros(2, requires_grad=True)])
    return {k: v for k, v in optimizer.defaults.items() if k not in IMPLEMENTATION_FLAGS}


def argument_names(cls) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_defaults_are_torchs(name):
    """Each reference's defaults are torch.optim's; the library has torch's argument names too."""
    reference = REFERENCES[name]
    expected = {**reference.defaults, **reference.fixed}
    assert effective_defaults(getattr(torch.optim, name)) == expected
    library = library_class(name)
    assert effective_defaults(library) == expected
    ours, theirs = argument_names(library), argument_names(getattr(torch.optim, name))
    assert ours[: len(theirs)] == theirs
    assert set(ours[len(theirs) :]) <= {"fused"}  # keyword-only, where torch's class lacks it


def test_reference_rejects_unknown_hyperparameter():
    with pytest.raises(TypeError, match="betaz"):
        NaiveAdam([{"params": [[1.0]]}], betaz=(0.9, 0.999))
    with pytest.raises(TypeError, match="momentum"):
        NaiveAdam([{"params": [[1.0]], "momentum": 0.9}])


def test_radam_threshold_is_rho_above_five():
    """Step 5 with beta2 = 0.999 has rho_5 = 4.996: an unrectified step (paper: rectified)."""
    reference = REFERENCES["RAdam"]([{"params": [[1.0]]}], lr=0.1)
    for _ in range(4):
        reference.step([[[0.5]]])
    before = reference.params()[0][0][0]
    reference.step([[[0.5]]])
    state = reference.state[0][0][0]
    m_hat = state["exp_avg"] / (1 - 0.9**5)
    # Unrectified step: x -= lr * mhat (a rectified one would divide by sqrt(vhat) ~ 0.5).
    assert reference.params()[0][0][0] == pytest.approx(before - 0.1 * m_hat, rel=1e-14)


def test_tensor_learning_rate_matches_float():
    """A 0-d tensor lr (what schedulers and the lab pass) gives the reference's float trajectory."""
    cls = library_class("Adam")
    groups = initial_groups((2, 3), two_groups=False)
    trained, optimizer = run_tensor_optimizer(cls, "Adam", {"lr": torch.tensor(0.01)}, groups)
    reference = run_naive("Adam", {"lr": 0.01}, groups)
    assert_matches_reference(trained, optimizer, reference)
