"""Deliberately naive references for Lion, AdaBelief, LAMB, LARS, Adafactor and ASGD.

Each reference holds one parameter (one run of it) as a flat row-major list of Python floats
(IEEE float64) and steps it in plain loops, following the paper's algorithm box line by line:
element by element for the elementwise methods, layer by layer (norms as square roots of sums)
for the trust ratios, matrix by matrix (rows and columns) for Adafactor's factors. Adafactor and
ASGD follow the algorithm boxes of torch.optim's documentation, whose arithmetic the library
promises. The references call neither descentlab nor torch; the driver at the bottom uses torch
only to evaluate the test loss and its gradient at the references' points.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def _norm(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


class NaiveLion:
    """Chen et al. (2023), Symbolic Discovery of Optimization Algorithms, Algorithm 2."""

    def __init__(self, shape, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        self.lr, self.wd, self.maximize = lr, weight_decay, maximize
        self.beta1, self.beta2 = betas
        self.m = [0.0] * math.prod(shape)

    def step(self, w: list[float], grads: list[float]) -> None:
        for i in range(len(w)):
            g = -grads[i] if self.maximize else grads[i]
            c = self.beta1 * self.m[i] + (1 - self.beta1) * g
            update = _sign(c) + self.wd * w[i]
            w[i] = w[i] - self.lr * update
            self.m[i] = self.beta2 * self.m[i] + (1 - self.beta2) * g


class NaiveAdaBelief:
    """Zhuang et al. (2020), AdaBelief Optimizer, Algorithm 2 (eps inside s_t and outside)."""

    def __init__(
        self,
        shape,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-16,
        weight_decay=0.0,
        decoupled=True,
        maximize=False,
    ):
        self.lr, self.eps, self.wd = lr, eps, weight_decay
        self.decoupled, self.maximize = decoupled, maximize
        self.beta1, self.beta2 = betas
        size = math.prod(shape)
        self.m, self.s, self.t = [0.0] * size, [0.0] * size, 0

    def step(self, w: list[float], grads: list[float]) -> None:
        self.t += 1
        for i in range(len(w)):
            g = -grads[i] if self.maximize else grads[i]
            if self.decoupled:
                w[i] = w[i] * (1 - self.lr * self.wd)
            else:
                g = g + self.wd * w[i]
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * g
            residual = g - self.m[i]
            self.s[i] = self.beta2 * self.s[i] + (1 - self.beta2) * residual**2 + self.eps
            m_hat = self.m[i] / (1 - self.beta1**self.t)
            s_hat = self.s[i] / (1 - self.beta2**self.t)
            w[i] = w[i] - self.lr * m_hat / (math.sqrt(s_hat) + self.eps)


class NaiveLAMB:
    """You et al. (2020), Large Batch Optimization for Deep Learning, Algorithm 2 (phi = id)."""

    def __init__(
        self, shape, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False
    ):
        self.lr, self.eps, self.wd, self.maximize = lr, eps, weight_decay, maximize
        self.beta1, self.beta2 = betas
        size = math.prod(shape)
        self.m, self.v, self.t = [0.0] * size, [0.0] * size, 0

    def step(self, w: list[float], grads: list[float]) -> None:
        self.t += 1
        u = []
        for i in range(len(w)):
            g = -grads[i] if self.maximize else grads[i]
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * g
            self.v[i] = self.beta2 * self.v[i] + (1 - self.beta2) * g * g
            m_hat = self.m[i] / (1 - self.beta1**self.t)
            v_hat = self.v[i] / (1 - self.beta2**self.t)
            u.append(m_hat / (math.sqrt(v_hat) + self.eps) + self.wd * w[i])
        w_norm, u_norm = _norm(w), _norm(u)
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        for i in range(len(w)):
            w[i] = w[i] - self.lr * ratio * u[i]


class NaiveLARS:
    """You, Gitman & Ginsburg (2017), Large Batch Training of Convolutional Networks,
    Algorithm 1 with the trust coefficient of eq. (6); Nesterov as in torch.optim.SGD."""

    def __init__(
        self,
        shape,
        lr=1.0,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=1e-3,
        nesterov=False,
        maximize=False,
    ):
        self.lr, self.momentum, self.wd = lr, momentum, weight_decay
        self.eta, self.nesterov, self.maximize = trust_coefficient, nesterov, maximize
        self.v = [0.0] * math.prod(shape)

    def step(self, w: list[float], grads: list[float]) -> None:
        g = [-x if self.maximize else x for x in grads]
        w_norm, g_norm = _norm(w), _norm(g)
        if w_norm > 0 and g_norm > 0:
            local_lr = self.eta * w_norm / (g_norm + self.wd * w_norm)
        else:
            local_lr = 1.0
        for i in range(len(w)):
            scaled = self.lr * local_lr * (g[i] + self.wd * w[i])
            self.v[i] = self.momentum * self.v[i] + scaled
            w[i] = w[i] - (scaled + self.momentum * self.v[i] if self.nesterov else self.v[i])


class NaiveAdafactor:
    """Shazeer & Stern (2018) in the form of torch.optim.Adafactor's algorithm box: relative
    step min(lr, 1/sqrt(t)) times max(eps2, RMS(theta)), decoupled decay lr * lambda, row and
    column means of G^2 for matrices (a batch of them for 3-D and up), eps1 as a floor."""

    def __init__(
        self,
        shape,
        lr=1e-2,
        beta2_decay=-0.8,
        eps=(None, 1e-3),
        d=1.0,
        weight_decay=0.0,
        maximize=False,
    ):
        self.shape, self.lr, self.decay, self.d = tuple(shape), lr, beta2_decay, d
        self.eps1 = sys.float_info.epsilon if eps[0] is None else eps[0]
        self.eps2, self.wd, self.maximize = eps[1], weight_decay, maximize
        self.t = 0
        if len(self.shape) >= 2:
            self.m, self.n = self.shape[-2:]
            self.batch = math.prod(self.shape[:-2])
            self.row = [[0.0] * self.m for _ in range(self.batch)]
            self.col = [[0.0] * self.n for _ in range(self.batch)]
        else:
            self.variance = [0.0] * math.prod(self.shape)

    def step(self, w: list[float], grads: list[float]) -> None:
        self.t += 1
        size = len(w)
        g = [-x if self.maximize else x for x in grads]
        weight = self.t**self.decay  # 1 - beta2_t
        rho = min(self.lr, 1 / math.sqrt(self.t))
        alpha = max(self.eps2, _norm(w) / math.sqrt(size)) * rho
        for i in range(size):
            w[i] = w[i] - self.lr * self.wd * w[i]
        v_hat = [0.0] * size
        if len(self.shape) >= 2:
            m, n = self.m, self.n
            for b in range(self.batch):
                at = lambda i, j, b=b: (b * m + i) * n + j  # noqa: E731
                row, col = self.row[b], self.col[b]
                for i in range(m):
                    mean = sum(g[at(i, j)] ** 2 for j in range(n)) / n
                    row[i] = (1 - weight) * row[i] + weight * mean
                for j in range(n):
                    mean = sum(g[at(i, j)] ** 2 for i in range(m)) / m
                    col[j] = (1 - weight) * col[j] + weight * mean
                row_mean = max(sum(row) / m, self.eps1)
                for i in range(m):
                    for j in range(n):
                        v_hat[at(i, j)] = row[i] * col[j] / row_mean
        else:
            for i in range(size):
                self.variance[i] = (1 - weight) * self.variance[i] + weight * g[i] ** 2
                v_hat[i] = self.variance[i]
        u = [g[i] / max(math.sqrt(v_hat[i]), self.eps1) for i in range(size)]
        clip = max(1.0, _norm(u) / math.sqrt(size) / self.d)
        for i in range(size):
            w[i] = w[i] - alpha * u[i] / clip


class NaiveASGD:
    """Averaged SGD in the form of torch.optim.ASGD's algorithm box (Polyak & Juditsky 1992;
    step-size schedule of Xu 2011). ``average`` is the averaged point ax."""

    def __init__(
        self, shape, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False
    ):
        self.lr, self.lambd, self.alpha, self.t0 = lr, lambd, alpha, t0
        self.wd, self.maximize = weight_decay, maximize
        self.eta, self.mu, self.t = lr, 1.0, 0
        self.average = [0.0] * math.prod(shape)

    def step(self, w: list[float], grads: list[float]) -> None:
        self.t += 1
        for i in range(len(w)):
            g = -grads[i] if self.maximize else grads[i]
            g = g + self.wd * w[i]
            w[i] = w[i] * (1 - self.lambd * self.eta) - self.eta * g
            if self.mu == 1:
                self.average[i] = w[i]
            else:
                self.average[i] = self.average[i] + self.mu * (w[i] - self.average[i])
        self.eta = self.lr / (1 + self.lambd * self.lr * self.t) ** self.alpha
        self.mu = 1 / max(1, self.t - self.t0)


# ----------------------------------------------------------------------------- driver

SHAPES = [(5, 3), (7,), (2, 3, 4), ()]
COUPLING = 0.05  # weight of (sum of a run's entries)^2: each gradient depends on its neighbours


def loss(params: Sequence[torch.Tensor], stack_dims: int = 0) -> torch.Tensor:
    """Smooth, non-quadratic, products only (vectorized and scalar transcendental kernels may
    differ in the last bit); separable across stacked runs, coupled within each run."""
    total = torch.zeros((), dtype=params[0].dtype)
    for index, param in enumerate(params):
        shifted = param - 0.3
        elementwise = shifted * shifted * shifted * shifted
        elementwise = elementwise + (0.5 + 0.1 * index) * param * param - 0.2 * param
        run_sums = param.reshape(*param.shape[:stack_dims], -1).sum(dim=-1)
        total = total + elementwise.sum() + COUPLING * (run_sums * run_sums).sum()
    return total


def starts(shapes=SHAPES, dtype=torch.float64, seed=0, scale=1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, dtype=dtype, generator=generator) for shape in shapes]


def step_library(optimizer, params, steps: int, stack_dims: int = 0) -> None:
    def closure():
        optimizer.zero_grad()
        value = loss(params, stack_dims)
        value.backward()
        return value

    for _ in range(steps):
        optimizer.step(closure)


def run_library(
    factory: Callable[..., torch.optim.Optimizer],
    groups: list[dict[str, Any]],
    steps: int,
    shapes=SHAPES,
    dtype=torch.float64,
) -> list[torch.Tensor]:
    """Run ``factory`` on the test loss; ``groups`` hold indices into ``shapes``."""
    params = [p.requires_grad_() for p in starts(shapes, dtype)]
    optimizer = factory(
        [{**group, "params": [params[i] for i in group["params"]]} for group in groups]
    )
    step_library(optimizer, params, steps)
    return [p.detach() for p in params]


def run_naive(
    reference: type, groups: list[dict[str, Any]], steps: int, shapes=SHAPES, values=None
) -> tuple[list[list[float]], dict[int, Any]]:
    """One ``reference`` per parameter with its group's settings, on the same loss."""
    if values is None:
        values = [p.flatten().tolist() for p in starts(shapes)]
    references = {}
    for group in groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        for i in group["params"]:
            references[i] = reference(shapes[i], **settings)
    for _ in range(steps):
        tensors = [
            torch.tensor(v, dtype=torch.float64).reshape(shape).requires_grad_()
            for v, shape in zip(values, shapes, strict=True)
        ]
        loss(tensors).backward()
        for i, optimizer in references.items():
            optimizer.step(values[i], tensors[i].grad.flatten().tolist())
    return values, references


# ----------------------------------------------------------------------------- stacked runs


def per_run_tensor(values: list[Any], stack: tuple[int, ...], own_rank: int) -> Any:
    """Per-run settings (one per run, row-major over ``stack``) as one group hyperparameter:
    numbers become a tensor of shape ``stack + (1,) * own_rank``, tuples componentwise; flags
    and None must agree across runs and stay as they are."""
    first = values[0]
    if isinstance(first, tuple):
        return tuple(
            per_run_tensor([v[i] for v in values], stack, own_rank) for i in range(len(first))
        )
    if first is None or isinstance(first, bool):
        assert all(v == first for v in values)
        return first
    return torch.tensor(values, dtype=torch.float64).reshape(*stack, *([1] * own_rank))


def as_zero_dim(settings: dict[str, Any]) -> dict[str, Any]:
    """One run's settings with every number as a 0-d float64 tensor (the stacked path alone)."""

    def convert(value):
        if isinstance(value, tuple):
            return tuple(convert(v) for v in value)
        if value is None or isinstance(value, bool):
            return value
        return torch.tensor(value, dtype=torch.float64)

    return {key: convert(value) for key, value in settings.items()}


def run_stacked(
    factory, stack: tuple[int, ...], own_shapes, runs: list[dict[str, Any]], steps: int
):
    """All runs at once: parameters of shape ``stack + own`` (all of one rank), one group with
    ``stack_dims = len(stack)`` and per-run hyperparameter tensors. Returns the final
    parameters, the optimizer and the starting points."""
    ranks = {len(shape) for shape in own_shapes}
    assert len(ranks) == 1, "one group's per-run tensors broadcast against one rank"
    full = [stack + tuple(shape) for shape in own_shapes]
    initial = starts(full, seed=7)
    params = [p.clone().requires_grad_() for p in initial]
    own_rank = ranks.pop()
    assert all(run.keys() == runs[0].keys() for run in runs), "give every run the same keys"
    settings = {key: per_run_tensor([r[key] for r in runs], stack, own_rank) for key in runs[0]}
    optimizer = factory([{"params": params, "stack_dims": len(stack), **settings}])
    step_library(optimizer, params, steps, stack_dims=len(stack))
    return [p.detach() for p in params], optimizer, initial


def run_slices(initial, stack, index):
    """The starting point of run ``index`` (row-major over ``stack``) of each parameter."""
    position = []
    for size in reversed(stack):
        position.append(index % size)
        index //= size
    position = tuple(reversed(position))
    return [p[position].clone() for p in initial], position


def check_stacked(factory, reference, stack, own_shapes, runs, steps=100, tolerance=1e-10):
    """K stacked runs equal K separate library runs bit for bit, and K naive runs to 1e-10."""
    together, _, initial = run_stacked(factory, stack, own_shapes, runs, steps)
    assert len(runs) == math.prod(stack)
    for index, settings in enumerate(runs):
        alone, position = run_slices(initial, stack, index)
        alone = [p.requires_grad_() for p in alone]
        optimizer = factory([{"params": alone, **as_zero_dim(settings)}])
        step_library(optimizer, alone, steps)
        naive, _ = run_naive(
            reference,
            [{"params": list(range(len(own_shapes))), **settings}],
            steps,
            shapes=list(own_shapes),
            values=[p.detach().flatten().tolist() for p in run_slices(initial, stack, index)[0]],
        )
        for stacked_param, separate, expected, shape in zip(
            together, alone, naive, own_shapes, strict=True
        ):
            assert torch.equal(stacked_param[position], separate.detach()), (index, shape)
            torch.testing.assert_close(
                stacked_param[position],
                torch.tensor(expected, dtype=torch.float64).reshape(shape),
                rtol=tolerance,
                atol=tolerance,
            )


# ----------------------------------------------------------------------------- resume, training


def check_resume(factory, groups, shapes=SHAPES, total=60, saved_at=25, stack_dims=0):
    """Save after ``saved_at`` steps, load into a fresh optimizer over fresh copies, continue:
    bit-identical to the uninterrupted run (parameters and every state tensor)."""
    import io

    def build(params):
        return factory(
            [{**group, "params": [params[i] for i in group["params"]]} for group in groups]
        )

    straight = [p.requires_grad_() for p in starts(shapes, seed=3)]
    uninterrupted = build(straight)
    step_library(uninterrupted, straight, total, stack_dims)

    first = [p.requires_grad_() for p in starts(shapes, seed=3)]
    before = build(first)
    step_library(before, first, saved_at, stack_dims)
    buffer = io.BytesIO()
    torch.save(before.state_dict(), buffer)
    buffer.seek(0)
    resumed = [p.detach().clone().requires_grad_() for p in first]
    after = build(resumed)
    after.load_state_dict(torch.load(buffer, weights_only=True))
    step_library(after, resumed, total - saved_at, stack_dims)

    for expected, actual in zip(straight, resumed, strict=True):
        assert torch.equal(expected.detach(), actual.detach())
        expected_state, actual_state = uninterrupted.state[expected], after.state[actual]
        assert expected_state.keys() == actual_state.keys()
        for key, value in expected_state.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, actual_state[key]), key


def _train_digits(entry, lr: float, epochs: int = 15, batch: int = 64) -> torch.nn.Linear:
    from tests.optim.test_training import _splits

    (train_x, train_y), _, _ = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optimizer = entry.factory(model.parameters(), **entry.kwargs({"lr": lr}))
    generator = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        for rows in torch.randperm(len(train_y), generator=generator).split(batch):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[rows]), train_y[rows]).backward()
            optimizer.step()
    return model


def digits_test_accuracy(entry) -> tuple[float, float]:
    """Multinomial logistic regression on scikit-learn's digits, as tests/optim/test_training.py
    does it: the spec's default lr first; if its validation accuracy is below 0.9, values over
    the spec's range (five, largest first, stopping at the first that reaches 0.9 on the
    validation split: cheaper than training all five). Returns (lr used, test accuracy)."""
    from tests.optim.test_training import _accuracy, _splits

    _, validation, test = _splits()
    lr_spec = entry.hyperparameter("lr")
    # One thread: tiny matrices, and intra-op threads on a shared machine cost 100x in waiting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for lr in [lr_spec.default, *reversed(lr_spec.grid(5))]:
            model = _train_digits(entry, lr)
            if _accuracy(model, validation) >= 0.9:
                break
    finally:
        torch.set_num_threads(threads)
    return lr, _accuracy(model, test)


def check_against_naive(factory, reference, groups, steps=100, tolerance=1e-10, shapes=SHAPES):
    """The library and the naive reference, side by side for ``steps`` steps, agree to
    ``tolerance`` (relative, with the same absolute floor) in every parameter."""
    params = run_library(factory, groups, steps, shapes=shapes)
    expected, references = run_naive(reference, groups, steps, shapes=shapes)
    for param, values in zip(params, expected, strict=True):
        assert torch.isfinite(param).all(), "the test settings diverge: pick a smaller lr"
        torch.testing.assert_close(
            param,
            torch.tensor(values, dtype=torch.float64).reshape(param.shape),
            rtol=tolerance,
            atol=tolerance,
        )
    start = starts(shapes)
    moved = max((p - s).abs().max().item() for p, s in zip(params, start, strict=True))
    assert moved > 1e-3, "the parameters barely moved: the comparison would prove little"
    return params, references
