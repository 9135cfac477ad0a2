"""Schedule-Free AdamW and SGD: the paper's three sequences (naive), train/eval, stacked runs,
resume, bad input, digits, and the averaged point beating the gradient point on a noisy quadratic."""

from __future__ import annotations

import io

import pytest
import torch
from naive_modern_b import NaiveScheduleFree, gradient, relative_error, torch_loss
from test_training import _accuracy, _splits

from descentlab.optim.schedulefree import (
    SPECS,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    averaged_point,
)

STEPS = 100
SHAPES = [(), (3,), (2, 3), (2, 2, 2)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors: worker threads only add waiting on a busy 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CASES = [
    ("adamw", {}),
    ("adamw", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "warmup_steps": 10}),
    ("adamw", {"lr": 0.005, "r": 1.0, "weight_lr_power": 1.0, "eps": 1e-6}),
    ("sgd", {"lr": 0.01}),
    ("sgd", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.05, "warmup_steps": 20, "r": 0.5}),
]
CLASSES = {"adamw": ScheduleFreeAdamW, "sgd": ScheduleFreeSGD}


def _starts(shape, count=2):
    generator = torch.Generator().manual_seed(sum(shape) + 11)
    return [
        torch.rand(shape, generator=generator, dtype=torch.float64) * 3 - 1.5 for _ in range(count)
    ]


def _naive(kind, kwargs, params):
    if kind == "adamw":
        beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
        return NaiveScheduleFree(
            params, kwargs.get("lr", 0.0025), beta1, kwargs.get("weight_decay", 0.0),
            kwargs.get("warmup_steps", 0), kwargs.get("r", 0.0), kwargs.get("weight_lr_power", 2.0),
            adam=True, beta2=beta2, eps=kwargs.get("eps", 1e-8),
        )  # fmt: skip
    return NaiveScheduleFree(
        params, kwargs.get("lr", 0.1), kwargs.get("momentum", 0.9), kwargs.get("weight_decay", 0.0),
        kwargs.get("warmup_steps", 0), kwargs.get("r", 0.0), kwargs.get("weight_lr_power", 2.0),
    )  # fmt: skip


def _steps(optimizer, params, first, last, stack_dims=0):
    for step in range(first, last):
        optimizer.zero_grad()
        sum(torch_loss(p, step, i, stack_dims).sum() for i, p in enumerate(params)).backward()
        optimizer.step()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("kind", "kwargs"), CASES, ids=str)
def test_matches_naive_reference(kind, kwargs, shape):
    starts = _starts(shape)
    params = [p.clone().requires_grad_() for p in starts]
    optimizer = CLASSES[kind](params, **kwargs)
    _steps(optimizer, params, 0, STEPS)
    reference = _naive(kind, kwargs, [p.reshape(-1).tolist() for p in starts])
    for step in range(STEPS):
        reference.step([gradient(y, step, i) for i, y in enumerate(reference.y)])
    beta = kwargs.get("betas", (0.9,))[0] if kind == "adamw" else kwargs.get("momentum", 0.9)
    for param, y, x, z in zip(params, reference.y, reference.x, reference.z, strict=True):
        assert relative_error(param, y) < 1e-10  # train mode: the gradient point
        assert relative_error(optimizer.state[param]["z"], z) < 1e-10
        assert relative_error(averaged_point(param, optimizer.state[param], beta), x) < 1e-10
    optimizer.eval()
    for param, x in zip(params, reference.x, strict=True):
        assert relative_error(param, x) < 1e-10  # eval mode: the averaged point
    optimizer.train()
    for param, y in zip(params, reference.y, strict=True):
        assert relative_error(param, y) < 1e-10


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_two_param_groups_match_two_references(kind):
    starts = _starts((3,))
    params = [p.clone().requires_grad_() for p in starts]
    first, second = {"lr": 0.01}, {"lr": 0.003, "weight_decay": 0.1}
    optimizer = CLASSES[kind]([{"params": params[:1], **first}, {"params": params[1:], **second}])
    _steps(optimizer, params, 0, STEPS)
    for index, settings in enumerate((first, second)):
        reference = _naive(kind, settings, [starts[index].tolist()])
        for step in range(STEPS):
            reference.step([gradient(reference.y[0], step, index)])
        assert relative_error(params[index], reference.y[0]) < 1e-10


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_stacked_runs_with_tensor_hyperparameters_equal_separate_runs(kind):
    K = 3
    starts = _starts((4,), count=K)
    lrs = [0.01, 0.003, 0.02]
    betas = [0.9, 0.7, 0.95]
    column = lambda values: torch.tensor(values, dtype=torch.float64).reshape(K, 1)  # noqa: E731
    stacked = torch.stack(starts).requires_grad_()
    if kind == "adamw":
        kwargs = {"lr": column(lrs), "betas": (column(betas), 0.999), "warmup_steps": 5}
    else:
        kwargs = {"lr": column(lrs), "momentum": column(betas), "warmup_steps": 5}
    optimizer = CLASSES[kind]([{"params": [stacked], "stack_dims": 1}], **kwargs)
    _steps(optimizer, [stacked], 0, 60, stack_dims=1)
    optimizer.eval()
    for k in range(K):
        single = starts[k].clone().requires_grad_()
        if kind == "adamw":
            alone = {"lr": lrs[k], "betas": (betas[k], 0.999), "warmup_steps": 5}
        else:
            alone = {"lr": lrs[k], "momentum": betas[k], "warmup_steps": 5}
        separate = CLASSES[kind]([single], **alone)
        _steps(separate, [single], 0, 60)
        separate.eval()
        torch.testing.assert_close(stacked[k], single, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_resume_is_bit_identical_and_modes_survive(kind):
    starts = _starts((2, 3))
    straight = [p.clone().requires_grad_() for p in starts]
    _steps(CLASSES[kind](straight, lr=0.01), straight, 0, 50)

    half = [p.clone().requires_grad_() for p in starts]
    before = CLASSES[kind](half, lr=0.01)
    _steps(before, half, 0, 20)
    before.eval()  # checkpoints are taken in eval mode, as the authors advise
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)
    resumed = [p.detach().clone().requires_grad_() for p in half]
    after = CLASSES[kind](resumed, lr=0.01)
    after.load_state_dict(torch.load(buffer, weights_only=False))
    assert not after.training
    after.train()
    _steps(after, resumed, 20, 50)
    for expected, actual in zip(straight, resumed, strict=True):
        # eval() then train() moves y -> x -> y: equal up to the rounding of the round trip.
        torch.testing.assert_close(expected, actual, rtol=1e-13, atol=1e-15)

    # Saved and resumed in train mode, nothing is rounded: bit-identical.
    half = [p.clone().requires_grad_() for p in starts]
    before = CLASSES[kind](half, lr=0.01)
    _steps(before, half, 0, 20)
    state = before.state_dict()
    resumed = [p.detach().clone().requires_grad_() for p in half]
    after = CLASSES[kind](resumed, lr=0.01)
    after.load_state_dict(state)
    _steps(after, resumed, 20, 50)
    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected, actual)


def test_step_in_eval_mode_is_refused():
    param = torch.zeros(3, requires_grad=True)
    optimizer = ScheduleFreeAdamW([param])
    optimizer.eval()
    param.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=r"eval mode: call optimizer.train\(\)"):
        optimizer.step()


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    [
        (ScheduleFreeAdamW, {"lr": -1.0}, ValueError, r"Invalid lr: -1\.0"),
        (ScheduleFreeAdamW, {"betas": (0.0, 0.999)}, ValueError, r"Invalid betas\[0\]: 0\.0"),
        (ScheduleFreeAdamW, {"betas": (0.9, 1.0)}, ValueError, r"Invalid betas\[1\]"),
        (ScheduleFreeAdamW, {"warmup_steps": 2.5}, ValueError, r"Invalid warmup_steps"),
        (ScheduleFreeAdamW, {"eps": "tiny"}, TypeError, r"eps must be a number"),
        (ScheduleFreeSGD, {"momentum": 0.0}, ValueError, r"Invalid momentum: 0\.0"),
        (ScheduleFreeSGD, {"r": -1.0}, ValueError, r"Invalid r"),
        (ScheduleFreeSGD, {"weight_lr_power": -2.0}, ValueError, r"Invalid weight_lr_power"),
    ],
)
def test_bad_input_names_the_argument(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls([torch.zeros(3, requires_grad=True)], **kwargs)


def test_averaged_point_beats_gradient_point_on_a_noisy_quadratic():
    """With a constant step size the iterates keep bouncing in the gradient noise; the average x
    settles. On f(p) = 0.5 sum a_i p_i^2 with noisy gradients, averaged over the last 200 of 600
    steps, f(x) < f(y) < f(z): y sits between z (the raw steps) and x, weighted beta towards x."""
    curvature = torch.linspace(0.5, 2.0, 20, dtype=torch.float64)

    def loss(point):
        return float(0.5 * (curvature * point.detach() ** 2).sum())

    for cls, lr, beta in ((ScheduleFreeSGD, 0.3, 0.9), (ScheduleFreeAdamW, 0.05, 0.9)):
        generator = torch.Generator().manual_seed(0)
        param = torch.full((20,), 2.0, dtype=torch.float64, requires_grad=True)
        optimizer = cls([param], lr=lr)
        totals = {"x": 0.0, "y": 0.0, "z": 0.0}
        for step in range(600):
            noise = torch.randn(20, generator=generator, dtype=torch.float64)
            param.grad = (curvature * param + noise).detach()
            optimizer.step()
            if step >= 400:
                state = optimizer.state[param]
                totals["y"] += loss(param)
                totals["z"] += loss(state["z"])
                totals["x"] += loss(averaged_point(param, state, beta))
        assert totals["x"] < totals["y"] < totals["z"], (cls.__name__, totals)
        assert totals["x"] < 0.2 * totals["z"], (cls.__name__, totals)
        at_y = loss(param)
        optimizer.eval()  # eval() puts the parameters at x
        assert loss(param) != at_y


def _train_digits(key: str, lr: float):
    (train_x, train_y), _, _ = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    factory = ScheduleFreeAdamW if key == "schedulefree_adamw" else ScheduleFreeSGD
    optimizer = factory(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(1)
    for _ in range(15):
        for batch in torch.randperm(len(train_y), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
    optimizer.eval()  # evaluate at the averaged point
    return model


@pytest.mark.parametrize("entry", SPECS, ids=lambda entry: entry.key)
def test_trains_digits_to_90_percent_from_the_default(entry):
    _, _, test = _splits()
    model = _train_digits(entry.key, entry.hyperparameter("lr").default)
    assert _accuracy(model, test) >= 0.9
