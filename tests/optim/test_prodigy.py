"""Prodigy: the paper's algorithm (naive), the per-run estimate d when stacked, d growing from d0
to the scale of a good step size, resume, bad input, digits."""

from __future__ import annotations

import io

import pytest
import torch
from naive_modern_b import NaiveProdigy, gradient, relative_error, torch_loss
from test_training import _accuracy, _splits

from descentlab.optim.prodigy import SPECS, Prodigy

STEPS = 100
SHAPES = [(), (3,), (2, 3), (2, 2, 2)]
CASES = [
    {},
    {"lr": 0.5, "betas": (0.8, 0.99), "weight_decay": 0.1, "d_coef": 2.0},
    {"beta3": 0.9, "eps": 1e-6, "d0": 1e-4, "safeguard_warmup": True},
]


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
@pytest.mark.parametrize("kwargs", CASES, ids=str)
def test_matches_naive_reference(kwargs, shape):
    starts = _starts(shape)
    params = [p.clone().requires_grad_() for p in starts]
    optimizer = Prodigy(params, **kwargs)
    _steps(optimizer, params, 0, STEPS)
    reference = NaiveProdigy([p.reshape(-1).tolist() for p in starts], **kwargs)
    for step in range(STEPS):
        reference.step([gradient(x, step, i) for i, x in enumerate(reference.x)])
    for param, x, m in zip(params, reference.x, reference.m, strict=True):
        assert relative_error(param, x) < 1e-10
        assert relative_error(optimizer.state[param]["exp_avg"], m) < 1e-10
    d = optimizer.state[params[0]]["d"]
    assert d.shape == () and abs(d.item() / reference.d - 1) < 1e-10
    assert reference.d > 100 * kwargs.get("d0", 1e-6)  # the estimate did move


def test_one_estimate_over_all_groups_equals_one_group():
    """The paper's d is one estimate for the whole model: splitting the parameters into groups
    with the same settings changes nothing, to the bit."""
    starts = _starts((2, 3), count=3)
    whole = [p.clone().requires_grad_() for p in starts]
    _steps(Prodigy(whole, weight_decay=0.1), whole, 0, 30)
    split = [p.clone().requires_grad_() for p in starts]
    optimizer = Prodigy([{"params": split[:1]}, {"params": split[1:]}], weight_decay=0.1)
    _steps(optimizer, split, 0, 30)
    for expected, actual in zip(whole, split, strict=True):
        assert torch.equal(expected, actual)
    assert optimizer.state[split[0]]["d"] == optimizer.state[split[2]]["d"]


def test_groups_with_their_own_lr_and_decay_share_d_as_in_the_reference():
    starts = _starts((3,), count=3)
    params = [p.clone().requires_grad_() for p in starts]
    groups = [{"params": params[:1], "lr": 0.5, "weight_decay": 0.2}, {"params": params[1:]}]
    optimizer = Prodigy(groups, betas=(0.8, 0.99))
    _steps(optimizer, params, 0, STEPS)
    reference = NaiveProdigy(
        [p.tolist() for p in starts], lr=[0.5, 1.0, 1.0], weight_decay=[0.2, 0.0, 0.0],
        betas=(0.8, 0.99),
    )  # fmt: skip
    for step in range(STEPS):
        reference.step([gradient(x, step, i) for i, x in enumerate(reference.x)])
    for param, x in zip(params, reference.x, strict=True):
        assert relative_error(param, x) < 1e-10
    for param in params:
        assert abs(optimizer.state[param]["d"].item() / reference.d - 1) < 1e-10
    assert reference.d > 100 * 1e-6


def test_a_parameter_that_missed_steps_does_not_reset_d():
    starts = _starts((3,), count=2)
    params = [p.clone().requires_grad_() for p in starts]
    optimizer = Prodigy([{"params": params[:1]}, {"params": params[1:]}])
    for step in range(20):  # only the first parameter has a gradient
        optimizer.zero_grad()
        torch_loss(params[0], step, 0).sum().backward()
        optimizer.step()
    grown = optimizer.state[params[0]]["d"].item()
    assert grown > 100 * 1e-6
    optimizer.zero_grad()
    sum(torch_loss(p, 20, i).sum() for i, p in enumerate(params)).backward()
    optimizer.step()
    assert optimizer.state[params[1]]["d"].item() >= grown


@pytest.mark.parametrize(
    ("second", "name"),
    [({"d_coef": 0.5}, "d_coef"), ({"d0": 1e-3}, "d0"), ({"beta3": 0.5}, "beta3")],
)
def test_groups_must_agree_on_the_estimate_settings(second, name):
    params = [torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match=f"Invalid {name} in a second param group"):
        Prodigy([{"params": params[:1]}, {"params": params[1:], **second}])


def test_groups_must_share_the_stack_shape():
    first = torch.zeros(2, 3, requires_grad=True)
    second = torch.zeros(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="same stack shape"):
        Prodigy([{"params": [first], "stack_dims": 1}, {"params": [second], "stack_dims": 1}])


def test_stacked_groups_share_one_d_per_run():
    K = 2
    runs = [_starts((3,), count=2, seed=k) for k in range(K)]
    stacked = [torch.stack([run[i] for run in runs]).requires_grad_() for i in range(2)]
    lr = torch.tensor([1.0, 0.5], dtype=torch.float64).reshape(K, 1)
    optimizer = Prodigy(
        [{"params": stacked[:1], "stack_dims": 1}, {"params": stacked[1:], "stack_dims": 1}], lr=lr
    )
    _steps(optimizer, stacked, 0, 40, stack_dims=1)
    d = optimizer.state[stacked[0]]["d"]
    assert d.shape == (K,) and torch.equal(d, optimizer.state[stacked[1]]["d"])
    for k in range(K):
        params = [p.clone().requires_grad_() for p in runs[k]]
        alone = Prodigy(params, lr=float(lr[k]))
        _steps(alone, params, 0, 40)
        for together, single in zip(stacked, params, strict=True):
            torch.testing.assert_close(together[k], single, rtol=1e-12, atol=1e-14)


def test_stacked_runs_keep_one_d_each_and_equal_separate_runs():
    K = 3
    runs = [_starts((2, 3), count=2, seed=k) for k in range(K)]
    stacked = [torch.stack([run[i] for run in runs]).requires_grad_() for i in range(2)]
    lrs, coefs, beta1s = [1.0, 0.5, 2.0], [1.0, 2.0, 0.5], [0.9, 0.8, 0.95]

    def column(values):
        return torch.tensor(values, dtype=torch.float64).reshape(K, 1, 1)

    optimizer = Prodigy(
        [{"params": stacked, "stack_dims": 1}],
        lr=column(lrs),
        d_coef=column(coefs),
        betas=(column(beta1s), 0.999),
    )
    _steps(optimizer, stacked, 0, 60, stack_dims=1)
    d = optimizer.state[stacked[0]]["d"]
    assert d.shape == (K,)
    assert torch.equal(d, optimizer.state[stacked[1]]["d"])
    for k in range(K):
        params = [p.clone().requires_grad_() for p in runs[k]]
        alone = Prodigy(params, lr=lrs[k], d_coef=coefs[k], betas=(beta1s[k], 0.999))
        _steps(alone, params, 0, 60)
        for together, single in zip(stacked, params, strict=True):
            torch.testing.assert_close(together[k], single, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(d[k], alone.state[params[0]]["d"], rtol=1e-12, atol=0)
    assert len(set(d.tolist())) == K  # three runs, three different estimates


def test_d_grows_from_d0_to_the_scale_of_a_good_step_size():
    """On f(x) = 0.5 ||x - x*||^2 from x0 = 0, ||x* - x0||_inf = 1: Adam's good step size is of
    order the distance to travel per coordinate (~1). d starts at 1e-6, never decreases, and ends
    within a factor 10 of 1 while the run converges."""
    target = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64)
    param = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    optimizer = Prodigy([param])
    history = []
    for _ in range(200):
        optimizer.zero_grad()
        (0.5 * ((param - target) ** 2).sum()).backward()
        optimizer.step()
        history.append(optimizer.state[param]["d"].item())
    assert history[0] < 1e-3
    assert all(b >= a for a, b in zip(history, history[1:], strict=False))
    assert 0.1 < history[-1] < 10.0, history[-1]
    assert float((param.detach() - target).abs().max()) < 0.05


def test_resume_is_bit_identical_and_carries_d():
    starts = _starts((2, 3))
    straight = [p.clone().requires_grad_() for p in starts]
    _steps(Prodigy(straight), straight, 0, 50)
    half = [p.clone().requires_grad_() for p in starts]
    before = Prodigy(half)
    _steps(before, half, 0, 20)
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    assert "d" in saved["state"][0] and saved["state"][0]["d"].item() > 1e-6
    resumed = [p.detach().clone().requires_grad_() for p in half]
    after = Prodigy(resumed)
    after.load_state_dict(saved)
    _steps(after, resumed, 20, 50)
    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected, actual)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -1.0}, ValueError, r"Invalid lr: -1\.0"),
        ({"d0": 0.0}, ValueError, r"Invalid d0: 0\.0"),
        ({"d_coef": -1.0}, ValueError, r"Invalid d_coef"),
        ({"beta3": 1.0}, ValueError, r"Invalid beta3"),
        ({"betas": (0.9,)}, TypeError, r"betas must be a tuple of 2"),
        ({"safeguard_warmup": "yes"}, TypeError, r"safeguard_warmup must be True or False"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        Prodigy([torch.zeros(3, requires_grad=True)], **kwargs)


def test_per_coordinate_lr_is_refused_because_d_is_per_run():
    param = torch.zeros(2, 3, requires_grad=True)
    optimizer = Prodigy([{"params": [param], "stack_dims": 1}], lr=torch.full((2, 3), 1.0))
    param.grad = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"lr enters Prodigy's per-run estimate"):
        optimizer.step()


def test_trains_digits_to_90_percent_from_the_default():
    (train_x, train_y), _, test = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optimizer = Prodigy(model.parameters(), **SPECS[0].defaults)
    generator = torch.Generator().manual_seed(1)
    for _ in range(15):
        for batch in torch.randperm(len(train_y), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
    assert _accuracy(model, test) >= 0.9
