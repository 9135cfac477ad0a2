"""Lookahead: the paper's Algorithm 1 around a naive heavy ball, around torch's and descentlab's
optimizers, registry construction, lr schedulers, stacked runs, resume, bad input, digits."""

from __future__ import annotations

import io

import pytest
import torch
from naive_modern_b import NaiveLookahead, NaiveMomentumSGD, gradient, relative_error, torch_loss
from test_training import _accuracy, _splits

import descentlab.optim as optim
from descentlab.optim.lookahead import SPECS, Lookahead

STEPS = 100
SHAPES = [(), (3,), (2, 3), (2, 2, 2)]
ENTRY = SPECS[0]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors: worker threads only add waiting on a busy 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _starts(shape, count=2, seed=0):
    generator = torch.Generator().manual_seed(sum(shape) + seed)
    return [
        torch.rand(shape, generator=generator, dtype=torch.float64) * 3 - 1.5 for _ in range(count)
    ]


def _steps(optimizer, params, first, last, stack_dims=0):
    for step in range(first, last):
        optimizer.zero_grad()
        sum(torch_loss(p, step, i, stack_dims).sum() for i, p in enumerate(params)).backward()
        optimizer.step()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("inner", [torch.optim.SGD, optim.SGD], ids=["torch", "descentlab"])
@pytest.mark.parametrize(("k", "alpha"), [(5, 0.5), (3, 0.8)])
def test_matches_naive_reference(shape, inner, k, alpha):
    starts = _starts(shape)
    params = [p.clone().requires_grad_() for p in starts]
    optimizer = Lookahead(inner(params, lr=0.01, momentum=0.9), k=k, alpha=alpha)
    _steps(optimizer, params, 0, STEPS + 2)  # 102 steps: ends between two synchronizations
    reference = NaiveLookahead(
        NaiveMomentumSGD([p.reshape(-1).tolist() for p in starts], 0.01, 0.9), k, alpha
    )
    for step in range(STEPS + 2):
        reference.step([gradient(x, step, i) for i, x in enumerate(reference.x)])
    for param, fast, slow in zip(params, reference.x, reference.slow, strict=True):
        assert relative_error(param, fast) < 1e-10
        assert relative_error(optimizer.state[param]["slow_param"], slow) < 1e-10


def test_groups_share_dicts_with_the_inner_optimizer_and_may_differ_in_alpha():
    starts = _starts((3,))
    params = [p.clone().requires_grad_() for p in starts]
    inner = optim.SGD(
        [{"params": params[:1]}, {"params": params[1:], "alpha": 0.3}], lr=0.01, momentum=0.9
    )
    optimizer = Lookahead(inner, k=4, alpha=0.6)
    assert optimizer.param_groups is inner.param_groups
    assert [g["alpha"] for g in optimizer.param_groups] == [0.6, 0.3]
    _steps(optimizer, params, 0, 40)
    for index, alpha in enumerate((0.6, 0.3)):
        reference = NaiveLookahead(NaiveMomentumSGD([starts[index].tolist()], 0.01, 0.9), 4, alpha)
        for step in range(40):
            reference.step([gradient(reference.x[0], step, index)])
        assert relative_error(params[index], reference.x[0]) < 1e-10


def test_lr_schedulers_on_either_optimizer_act_on_both():
    param = torch.zeros(3, requires_grad=True)
    optimizer = Lookahead(optim.Adam([param], lr=0.1))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    param.grad = torch.ones(3)
    optimizer.step()
    scheduler.step()
    assert optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    on_inner = torch.optim.lr_scheduler.StepLR(optimizer.optimizer, step_size=1, gamma=0.5)
    optimizer.step()
    on_inner.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_registry_spec_builds_a_named_inner_optimizer():
    assert ENTRY.defaults["k"] == 5 and ENTRY.defaults["alpha"] == 0.5
    assert ENTRY.defaults["betas"] == (0.9, 0.999)  # the default inner optimizer is Adam
    kwargs = ENTRY.kwargs({"inner": "momentum", "lr": 0.1, "momentum": 0.8, "k": 10})
    assert kwargs["inner"] == "momentum" and kwargs["momentum"] == 0.8 and kwargs["k"] == 10
    param = torch.zeros(3, requires_grad=True)
    optimizer = ENTRY.factory([param], **kwargs)
    assert isinstance(optimizer.optimizer, optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.8 and optimizer.param_groups[0]["k"] == 10
    with pytest.raises(ValueError, match="sgd has no hyperparameter 'betas'"):
        ENTRY.kwargs({"inner": "sgd", "betas": (0.9, 0.99)})
    with pytest.raises(ValueError, match="Invalid inner: 'lookahead'"):
        ENTRY.kwargs({"inner": "lookahead"})


def test_stacked_runs_with_tensor_alpha_and_lr_equal_separate_runs():
    K = 3
    runs = [_starts((4,), count=1, seed=k)[0] for k in range(K)]
    stacked = torch.stack(runs).requires_grad_()
    lrs, alphas = [0.01, 0.003, 0.02], [0.5, 0.2, 0.9]

    def column(values):
        return torch.tensor(values, dtype=torch.float64).reshape(K, 1)

    inner = optim.Adam([{"params": [stacked], "stack_dims": 1}], lr=column(lrs))
    optimizer = Lookahead(inner, k=3, alpha=column(alphas))
    _steps(optimizer, [stacked], 0, 40, stack_dims=1)
    for k in range(K):
        single = runs[k].clone().requires_grad_()
        alone = Lookahead(optim.Adam([single], lr=lrs[k]), k=3, alpha=alphas[k])
        _steps(alone, [single], 0, 40)
        torch.testing.assert_close(stacked[k], single, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("inner", ["adam", "torch-sgd"])
def test_resume_is_bit_identical_and_keeps_the_slow_weights(inner):
    def make(params):
        if inner == "adam":
            return Lookahead(params, lr=0.01)
        return Lookahead(torch.optim.SGD(params, lr=0.01, momentum=0.9))

    starts = _starts((2, 3))
    straight = [p.clone().requires_grad_() for p in starts]
    _steps(make(straight), straight, 0, 50)
    half = [p.clone().requires_grad_() for p in starts]
    before = make(half)
    _steps(before, half, 0, 17)  # between synchronizations: slow weights differ from fast ones
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)
    resumed = [p.detach().clone().requires_grad_() for p in half]
    after = make(resumed)
    after.load_state_dict(torch.load(buffer, weights_only=False))
    assert not torch.equal(after.state[resumed[0]]["slow_param"], resumed[0].detach())
    _steps(after, resumed, 17, 50)
    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected, actual)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {"k": 0}, ValueError, r"Invalid k: 0"),
        ((), {"k": 2.5}, ValueError, r"Invalid k: 2\.5"),
        ((), {"alpha": 1.5}, ValueError, r"Invalid alpha: 1\.5"),
        ((), {"alpha": "half"}, TypeError, r"alpha must be a number"),
        ((), {"inner": 3}, TypeError, r"inner must be a registry key"),
        ((), {"inner": "newton"}, ValueError, r"Invalid inner: 'newton'"),
        ((), {"inner": "adamm"}, ValueError, r"unknown optimizer 'adamm'"),
        ((), {"lr": -0.1}, ValueError, r"Invalid lr: -0\.1"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Lookahead([torch.zeros(3, requires_grad=True)], *args, **kwargs)


def test_wrapping_an_optimizer_and_naming_an_inner_one_is_refused():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="an optimizer was given"):
        Lookahead(optim.SGD([param], lr=0.1), inner="adam")


def _train_digits(lr: float):
    (train_x, train_y), _, _ = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optimizer = ENTRY.factory(model.parameters(), **ENTRY.kwargs({"lr": lr}))  # Adam inside
    generator = torch.Generator().manual_seed(1)
    for _ in range(15):
        for batch in torch.randperm(len(train_y), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
    return model


def test_trains_digits_to_90_percent():
    """As test_training.py chooses: the default lr first (Adam's 1e-3, slowed by alpha = 0.5,
    reaches ~0.85 in 15 epochs), else the best of the spec's lr grid on validation."""
    _, validation, test = _splits()
    lr = ENTRY.hyperparameter("lr")
    model = _train_digits(lr.default)
    if _accuracy(model, validation) < 0.9:
        model = max((_train_digits(v) for v in lr.grid(5)), key=lambda m: _accuracy(m, validation))
    assert _accuracy(model, test) >= 0.9
