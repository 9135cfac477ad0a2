"""Muon: torch.optim.Muon's numbers, the naive per-matrix reference, batched stacks, resume, bad
input, and digits."""

from __future__ import annotations

import io

import pytest
import torch
from naive_modern_b import NaiveMuon, gradient, relative_error, torch_loss
from test_training import _accuracy, _splits

import descentlab.optim as optim
from descentlab.optim.muon import NS_COEFFICIENTS, Muon, orthogonalize

STEPS = 100
SHAPES = [(3, 5), (6, 4), (4, 4)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # bfloat16 matrix products of tiny matrices spend their time waking worker threads (30x
    # slower on a busy 2-core machine); one thread computes the same numbers.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _matrices(shape, count=2, seed=0):
    generator = torch.Generator().manual_seed(seed + sum(shape))
    return [
        torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1 for _ in range(count)
    ]


def _run(make, starts, steps=STEPS, two_groups=False, stack_dims=0):
    params = [p.clone().requires_grad_() for p in starts]
    if two_groups:
        optimizer = make([{"params": params[:1]}, {"params": params[1:], "lr": 0.004}])
    else:
        optimizer = make([{"params": params, "stack_dims": stack_dims}])
    for step in range(steps):
        optimizer.zero_grad()
        sum(torch_loss(p, step, i, stack_dims).sum() for i, p in enumerate(params)).backward()
        optimizer.step()
    return params, optimizer


TORCH_CASES = [
    {},
    {"lr": 0.02, "nesterov": False, "weight_decay": 0.0},
    {"lr": 0.01, "momentum": 0.9, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.01, "ns_steps": 3, "adjust_lr_fn": "original", "weight_decay": 0.3},
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kwargs", TORCH_CASES, ids=str)
@pytest.mark.parametrize("two_groups", [False, True], ids=["one-group", "two-groups"])
def test_matches_torch_muon(shape, kwargs, two_groups):
    starts = _matrices(shape)
    ours, ours_opt = _run(lambda g: Muon(g, **kwargs), starts, two_groups=two_groups)
    theirs, theirs_opt = _run(
        lambda g: torch.optim.Muon(g, **kwargs), starts, two_groups=two_groups
    )
    for mine, reference in zip(ours, theirs, strict=True):
        # Same operations in the same order (bfloat16 iteration included): equal to 1e-12.
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-14)
        assert set(ours_opt.state[mine]) == set(theirs_opt.state[reference])
        torch.testing.assert_close(
            ours_opt.state[mine]["momentum_buffer"],
            theirs_opt.state[reference]["momentum_buffer"],
            rtol=1e-12,
            atol=1e-14,
        )


def test_loads_torch_state_dict():
    starts = _matrices((3, 4))
    theirs, theirs_opt = _run(lambda g: torch.optim.Muon(g, lr=0.02), starts, steps=10)
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    ours_opt = Muon(ours, lr=0.02)
    ours_opt.load_state_dict(theirs_opt.state_dict())
    assert torch.equal(
        ours_opt.state[ours[0]]["momentum_buffer"], theirs_opt.state[theirs[0]]["momentum_buffer"]
    )


NAIVE_CASES = [
    {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True},
    {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.8, "nesterov": False},
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kwargs", NAIVE_CASES, ids=str)
def test_matches_naive_reference_in_float64(shape, kwargs):
    starts = _matrices(shape)
    ours, _ = _run(lambda g: Muon(g, **kwargs, ns_dtype=None), starts)
    reference = NaiveMuon(
        [p.tolist() for p in starts],
        kwargs["lr"], kwargs["weight_decay"], kwargs["momentum"], kwargs["nesterov"],
        NS_COEFFICIENTS, 1e-7, 5,
    )  # fmt: skip
    rows, cols = shape
    for step in range(STEPS):
        grads = []
        for index, matrix in enumerate(reference.params):
            flat = gradient([v for row in matrix for v in row], step, index)
            grads.append([flat[i * cols : (i + 1) * cols] for i in range(rows)])
        reference.step(grads)
    for mine, expected in zip(ours, reference.params, strict=True):
        assert relative_error(mine, [v for row in expected for v in row]) < 1e-10


def test_orthogonalization_flattens_the_singular_values():
    matrix = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    result = orthogonalize(matrix, NS_COEFFICIENTS, 5, 1e-7, None)
    singular = torch.linalg.svdvals(result)
    # The quintic is tuned for speed, not exactness: singular values land near 1 (0.6 .. 1.25).
    assert singular.min() > 0.6 and singular.max() < 1.25
    assert torch.linalg.svdvals(matrix).max() / torch.linalg.svdvals(matrix).min() > 2


def test_stacked_matrices_are_orthogonalized_in_one_batch_and_equal_separate_runs():
    K, shape = 3, (4, 5)
    starts = [torch.stack(_matrices(shape, count=K, seed=5))]
    lrs = torch.tensor([0.01, 0.02, 0.005], dtype=torch.float64).reshape(K, 1, 1)
    moms = torch.tensor([0.9, 0.95, 0.8], dtype=torch.float64).reshape(K, 1, 1)
    decays = torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64).reshape(K, 1, 1)
    stacked, optimizer = _run(
        lambda g: Muon(g, lr=lrs, momentum=moms, weight_decay=decays, ns_dtype=None),
        starts,
        stack_dims=1,
    )
    assert optimizer.state[stacked[0]]["momentum_buffer"].shape == (K, *shape)
    for k in range(K):
        alone, _ = _run(
            lambda g, k=k: Muon(
                g, lr=lrs[k].item(), momentum=moms[k].item(), weight_decay=decays[k].item(),
                ns_dtype=None,
            ),
            [starts[0][k]],
        )  # fmt: skip
        torch.testing.assert_close(stacked[0][k], alone[0], rtol=1e-12, atol=1e-14)
    # The batched iteration itself equals the per-matrix one.
    batch = torch.randn(K, *shape, dtype=torch.float64)
    together = orthogonalize(batch, NS_COEFFICIENTS, 5, 1e-7, None)
    for k in range(K):
        single = orthogonalize(batch[k], NS_COEFFICIENTS, 5, 1e-7, None)
        torch.testing.assert_close(together[k], single, rtol=1e-12, atol=1e-14)


def test_resume_from_state_dict_is_bit_identical():
    starts = _matrices((4, 3))
    straight, _ = _run(lambda g: Muon(g, lr=0.02), starts, steps=50)
    half, before = _run(lambda g: Muon(g, lr=0.02), starts, steps=20)
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)
    resumed = [p.detach().clone().requires_grad_() for p in half]
    after = Muon(resumed, lr=0.02)
    after.load_state_dict(torch.load(buffer, weights_only=False))
    for step in range(20, 50):
        after.zero_grad()
        sum(torch_loss(p, step, i).sum() for i, p in enumerate(resumed)).backward()
        after.step()
    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected, actual)


def _matrix():
    return torch.zeros(3, 4, requires_grad=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, r"Invalid lr: -0\.1"),
        ({"momentum": 1.0}, ValueError, r"Invalid momentum"),
        ({"weight_decay": "0.1"}, TypeError, r"weight_decay must be a number"),
        ({"ns_steps": 100}, ValueError, r"Invalid ns_steps"),
        ({"ns_coefficients": (1.0, 2.0)}, TypeError, r"ns_coefficients must be a tuple of 3"),
        ({"adjust_lr_fn": "fast"}, ValueError, r"Invalid adjust_lr_fn"),
        ({"ns_dtype": torch.int32}, TypeError, r"ns_dtype must be None or a floating"),
        ({"nesterov": 1}, TypeError, r"nesterov must be True or False"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        Muon([_matrix()], **kwargs)


def test_non_matrix_parameters_are_refused():
    with pytest.raises(ValueError, match=r"Muon only supports 2-D parameters.*\(3,\)"):
        Muon([torch.zeros(3, requires_grad=True)])
    stacked = torch.zeros(2, 3, requires_grad=True)  # with stack_dims=1: one vector per run
    with pytest.raises(ValueError, match="stack_dims=1"):
        Muon([{"params": [stacked], "stack_dims": 1}])


def _train_digits(lr: float) -> torch.nn.Linear:
    """Muon on the weight matrix; the bias (not a matrix) on descentlab's AdamW at its defaults,
    as Muon's authors and torch's documentation recommend for non-matrix parameters."""
    (train_x, train_y), _, _ = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    muon = Muon([model.weight], lr=lr)
    adamw = optim.AdamW([model.bias])
    generator = torch.Generator().manual_seed(1)
    for _ in range(15):
        for batch in torch.randperm(len(train_y), generator=generator).split(64):
            muon.zero_grad()
            adamw.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            muon.step()
            adamw.step()
    return model


def test_trains_digits_to_90_percent():
    from descentlab.optim.muon import SPECS

    _, validation, test = _splits()
    lr_spec = SPECS[0].hyperparameter("lr")
    model = _train_digits(lr_spec.default)
    if _accuracy(model, validation) < 0.9:
        candidates = [_train_digits(lr) for lr in lr_spec.grid(5)]
        model = max(candidates, key=lambda m: _accuracy(m, validation))
    assert _accuracy(model, test) >= 0.9
