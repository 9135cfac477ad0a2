"""Deliberately naive references for Muon, Prodigy, Sophia, Lookahead and Schedule-Free, written
from the papers' algorithm boxes in plain Python floats (IEEE float64), element by element.

Nothing here calls descentlab or vectorizes anything. A parameter is a flat list of floats (with
its shape where the algorithm needs it: Muon's matrices), the state is lists of floats, every loop
is written out. Where an implementation detail is not in the algorithm box the reference follows the
authors' code and says so. The library must reproduce these to 1e-10 over 100 steps.

The test problem (also here, so every test file uses the same one): per parameter, per run,

    f_t(p) = sum (p_i - 0.3)^4 + sum p_i sin p_i + c (sum p_i)^2 + sum d_{t,i} p_i

non-quadratic and coupled within a tensor, with a deterministic drift d_t standing in for
mini-batch noise; its gradient and Hessian are written out by hand below.
"""

from __future__ import annotations

import math

import torch

COUPLING = 0.05


# ----------------------------------------------------------------------------- the problem


def drift(step: int, param_index: int, size: int) -> list[float]:
    return [0.5 * math.sin(0.9 * step + 1.3 * i + 0.7 * param_index) for i in range(size)]


def torch_loss(param: torch.Tensor, step: int, param_index: int, stack_dims: int = 0):
    """The loss of one parameter; with stacked runs, one loss per run (shape ``S``)."""
    runs = param.reshape(*param.shape[:stack_dims], -1)
    noise = torch.tensor(drift(step, param_index, runs.shape[-1]), dtype=param.dtype)
    return (
        ((runs - 0.3) ** 4).sum(-1)
        + (runs.sin() * runs).sum(-1)
        + COUPLING * runs.sum(-1) ** 2
        + (runs * noise).sum(-1)
    )


def gradient(values: list[float], step: int, param_index: int) -> list[float]:
    total = sum(values)
    noise = drift(step, param_index, len(values))
    return [
        4 * (x - 0.3) ** 3 + math.sin(x) + x * math.cos(x) + 2 * COUPLING * total + d
        for x, d in zip(values, noise, strict=True)
    ]


def hessian_times(values: list[float], vector: list[float]) -> list[float]:
    """H v for one parameter: a diagonal part plus the coupling's 2c in every entry."""
    total = sum(vector)
    return [
        (12 * (x - 0.3) ** 2 + 2 * math.cos(x) - x * math.sin(x)) * v + 2 * COUPLING * total
        for x, v in zip(values, vector, strict=True)
    ]


# ----------------------------------------------------------------------------- Muon


def _matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [
        [sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
        for i in range(len(a))
    ]


def _transpose(a: list[list[float]]) -> list[list[float]]:
    return [list(column) for column in zip(*a, strict=True)]


def newton_schulz(matrix: list[list[float]], coefficients, steps: int, eps: float):
    """Jordan et al. (2024): X <- a X + (b A + c A^2) X with A = X X^T, from X = M / ||M||_F."""
    a, b, c = coefficients
    tall = len(matrix) > len(matrix[0])
    x = _transpose(matrix) if tall else [row[:] for row in matrix]
    norm = math.sqrt(sum(v * v for row in x for v in row))
    x = [[v / max(norm, eps) for v in row] for row in x]
    for _ in range(steps):
        gram = _matmul(x, _transpose(x))
        gram2 = _matmul(gram, gram)
        poly = [
            [b * gram[i][j] + c * gram2[i][j] for j in range(len(gram))] for i in range(len(gram))
        ]
        px = _matmul(poly, x)
        x = [[a * x[i][j] + px[i][j] for j in range(len(x[0]))] for i in range(len(x))]
    return _transpose(x) if tall else x


class NaiveMuon:
    """Muon on a list of matrices (lists of rows), one matrix at a time.

    Momentum and Nesterov as torch.optim.Muon writes them (B <- B + (1 - mu)(G - B), the
    Nesterov direction G + mu (B - G)); the shape factor sqrt(max(1, rows / cols)).
    """

    def __init__(self, matrices, lr, weight_decay, momentum, nesterov, coefficients, eps, steps):
        self.params = [[row[:] for row in m] for m in matrices]
        self.buffers = [[[0.0] * len(m[0]) for _ in m] for m in matrices]
        self.h = dict(
            lr=lr, wd=weight_decay, mu=momentum, nesterov=nesterov, abc=coefficients, eps=eps,
            steps=steps,
        )  # fmt: skip

    def step(self, grads) -> None:
        h = self.h
        for w, buf, g in zip(self.params, self.buffers, grads, strict=True):
            rows, cols = len(w), len(w[0])
            direction = [[0.0] * cols for _ in range(rows)]
            for i in range(rows):
                for j in range(cols):
                    buf[i][j] = buf[i][j] + (1 - h["mu"]) * (g[i][j] - buf[i][j])
                    if h["nesterov"]:
                        direction[i][j] = g[i][j] + h["mu"] * (buf[i][j] - g[i][j])
                    else:
                        direction[i][j] = buf[i][j]
            ortho = newton_schulz(direction, h["abc"], h["steps"], h["eps"])
            ratio = math.sqrt(max(1, rows / cols))
            for i in range(rows):
                for j in range(cols):
                    w[i][j] = w[i][j] * (1 - h["lr"] * h["wd"]) - h["lr"] * ratio * ortho[i][j]


# ----------------------------------------------------------------------------- Schedule-Free


class NaiveScheduleFree:
    """Defazio et al. (2024), Algorithm 1, with the explicit sequences x, y, z.

    ``adam=True``: Schedule-Free AdamW (z steps along g / (sqrt(v) + eps), step size
    lr sqrt(1 - beta2^t) min(1, t / warmup)); else Schedule-Free SGD (z steps along g, step size
    lr min(1, t / warmup)). Weight decay lambda y is added to the step's direction. The averaging
    weight is t^r lr_max^p with lr_max the largest step size so far (the authors' code).
    """

    def __init__(self, params, lr, beta, weight_decay=0.0, warmup_steps=0, r=0.0, power=2.0,
                 adam=False, beta2=0.999, eps=1e-8):  # fmt: skip
        self.x = [p[:] for p in params]
        self.z = [p[:] for p in params]
        self.y = [p[:] for p in params]
        self.v = [[0.0] * len(p) for p in params]
        self.h = dict(lr=lr, beta=beta, wd=weight_decay, warmup=warmup_steps, r=r, power=power,
                      adam=adam, beta2=beta2, eps=eps)  # fmt: skip
        self.t = 0
        self.lr_max = -1.0
        self.weight_sum = 0.0

    def step(self, grads) -> None:
        h = self.h
        self.t += 1
        t = self.t
        step_size = h["lr"] * (t / h["warmup"] if t <= h["warmup"] else 1.0)
        if h["adam"]:
            step_size *= math.sqrt(1 - h["beta2"] ** t)
        self.lr_max = max(self.lr_max, step_size)
        weight = t ** h["r"] * self.lr_max ** h["power"]
        self.weight_sum += weight
        c = weight / self.weight_sum if self.weight_sum else 0.0
        for x, y, z, v, g in zip(self.x, self.y, self.z, self.v, grads, strict=True):
            for i in range(len(x)):
                if h["adam"]:
                    v[i] = h["beta2"] * v[i] + (1 - h["beta2"]) * g[i] * g[i]
                    direction = g[i] / (math.sqrt(v[i]) + h["eps"])
                else:
                    direction = g[i]
                direction += h["wd"] * y[i]
                z[i] = z[i] - step_size * direction
                x[i] = (1 - c) * x[i] + c * z[i]
                y[i] = (1 - h["beta"]) * z[i] + h["beta"] * x[i]


# ----------------------------------------------------------------------------- Prodigy


class NaiveProdigy:
    """Mishchenko & Defazio (2024), Prodigy (Adam version), element by element.

    ``lr`` and ``weight_decay`` may be lists, one value per parameter (param groups): each
    parameter's terms of r and s are weighted by its own lr, and d is one estimate over all.

    r and s accumulate gamma d^2 <g, x0 - x> and gamma d^2 g without the (1 - beta3) factor,
    which cancels in r / ||s||_1 (as in the authors' code). Decoupled weight decay
    x <- x (1 - lambda gamma d) (the authors' default). ``safeguard_warmup`` drops gamma from s.
    """

    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8,
                 weight_decay=0.0, d0=1e-6, d_coef=1.0, safeguard_warmup=False):  # fmt: skip
        self.x = [p[:] for p in params]
        self.x0 = [p[:] for p in params]
        self.m = [[0.0] * len(p) for p in params]
        self.v = [[0.0] * len(p) for p in params]
        self.s = [[0.0] * len(p) for p in params]
        self.r = 0.0
        self.d = d0
        self.h = dict(lr=lr, beta1=betas[0], beta2=betas[1],
                      beta3=math.sqrt(betas[1]) if beta3 is None else beta3, eps=eps,
                      wd=weight_decay, coef=d_coef, safeguard=safeguard_warmup)  # fmt: skip

    def _each(self, name):
        """A setting per parameter: a list gives each parameter its own (param groups)."""
        value = self.h[name]
        return value if isinstance(value, list) else [value] * len(self.x)

    def step(self, grads) -> None:
        h, d = self.h, self.d
        gammas, decays = self._each("lr"), self._each("wd")
        weighted_inner = 0.0
        for x, x0, g, gamma in zip(self.x, self.x0, grads, gammas, strict=True):
            for i in range(len(x)):
                weighted_inner += gamma * g[i] * (x0[i] - x[i])
        self.r = h["beta3"] * self.r + d * d * weighted_inner
        s_norm = 0.0
        for x, m, v, s, g, gamma in zip(self.x, self.m, self.v, self.s, grads, gammas, strict=True):
            for i in range(len(x)):
                m[i] = h["beta1"] * m[i] + (1 - h["beta1"]) * d * g[i]
                v[i] = h["beta2"] * v[i] + (1 - h["beta2"]) * d * d * g[i] * g[i]
                s[i] = h["beta3"] * s[i] + (1.0 if h["safeguard"] else gamma) * d * d * g[i]
                s_norm += abs(s[i])
        for x, m, v, gamma, wd in zip(self.x, self.m, self.v, gammas, decays, strict=True):
            for i in range(len(x)):
                x[i] = x[i] * (1 - wd * gamma * d)
                x[i] = x[i] - gamma * d * m[i] / (math.sqrt(v[i]) + d * h["eps"])
        if s_norm > 0:
            self.d = max(d, h["coef"] * self.r / s_norm)


# ----------------------------------------------------------------------------- Sophia


class NaiveSophia:
    """Liu et al. (2024), Algorithm 3 with the Hutchinson estimator, element by element.

    The estimate u * (H u) is passed in by the caller on the steps t = 1, k + 1, 2k + 1, ...
    (``estimate_due``); h starts at 0 (h_{1-k} = 0).
    """

    def __init__(self, params, lr=1e-4, betas=(0.965, 0.99), rho=0.04, weight_decay=0.1,
                 update_interval=10, eps=1e-12):  # fmt: skip
        self.x = [p[:] for p in params]
        self.m = [[0.0] * len(p) for p in params]
        self.hess = [[0.0] * len(p) for p in params]
        self.h = dict(lr=lr, beta1=betas[0], beta2=betas[1], rho=rho, wd=weight_decay,
                      k=update_interval, eps=eps)  # fmt: skip
        self.t = 0

    def estimate_due(self) -> bool:
        return self.t % self.h["k"] == 0  # the coming step t + 1 satisfies (t + 1) mod k = 1

    def step(self, grads, estimates=None) -> None:
        h = self.h
        self.t += 1
        for n, (x, m, hs, g) in enumerate(zip(self.x, self.m, self.hess, grads, strict=True)):
            for i in range(len(x)):
                m[i] = h["beta1"] * m[i] + (1 - h["beta1"]) * g[i]
                if estimates is not None:
                    hs[i] = h["beta2"] * hs[i] + (1 - h["beta2"]) * estimates[n][i]
                x[i] = x[i] * (1 - h["lr"] * h["wd"])
                ratio = m[i] / max(h["rho"] * hs[i], h["eps"])
                x[i] = x[i] - h["lr"] * max(-1.0, min(1.0, ratio))


# ----------------------------------------------------------------------------- Lookahead


class NaiveMomentumSGD:
    """Heavy-ball SGD, torch's form: b <- mu b + g (b_1 = g), x <- x - lr b (the inner optimizer)."""

    def __init__(self, params, lr, momentum):
        self.x = [p[:] for p in params]
        self.b = None
        self.lr, self.mu = lr, momentum

    def step(self, grads) -> None:
        if self.b is None:
            self.b = [g[:] for g in grads]
        else:
            self.b = [[self.mu * b + gi for b, gi in zip(bs, g, strict=True)]
                      for bs, g in zip(self.b, grads, strict=True)]  # fmt: skip
        for x, b in zip(self.x, self.b, strict=True):
            for i in range(len(x)):
                x[i] = x[i] - self.lr * b[i]


class NaiveLookahead:
    """Zhang et al. (2019), Algorithm 1: k inner steps, then phi <- phi + alpha (theta - phi),
    theta <- phi. The inner optimizer's state carries on across synchronizations."""

    def __init__(self, inner, k=5, alpha=0.5):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.slow = [p[:] for p in inner.x]
        self.t = 0

    @property
    def x(self):
        return self.inner.x

    def step(self, grads) -> None:
        self.inner.step(grads)
        self.t += 1
        if self.t % self.k == 0:
            for slow, fast in zip(self.slow, self.inner.x, strict=True):
                for i in range(len(slow)):
                    slow[i] = slow[i] + self.alpha * (fast[i] - slow[i])
                    fast[i] = slow[i]


def relative_error(actual: torch.Tensor, expected: list[float]) -> float:
    """max |a - e| / max(|e|, 1e-3) over the elements."""
    expected_tensor = torch.tensor(expected, dtype=torch.float64)
    actual = actual.detach().reshape(-1).to(torch.float64)
    assert actual.shape == expected_tensor.shape
    return float(((actual - expected_tensor).abs() / expected_tensor.abs().clamp_min(1e-3)).max())
