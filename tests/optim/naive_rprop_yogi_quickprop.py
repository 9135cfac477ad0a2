"""Deliberately naive references for Rprop, Yogi and Quickprop, written from the papers.

Each reference holds one parameter as a flat list of Python floats (IEEE float64) and one state
dictionary per element, and updates element after element in a plain loop, following the paper's
algorithm box branch by branch. The references call neither descentlab nor torch; the driver at
the bottom uses torch only to evaluate the test loss and its gradient at the references' points,
and to run the library beside them on the same loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


class NaiveRprop:
    """Rprop in the four forms of Igel & Hüsken (2000), "Improving the Rprop Learning Algorithm".

    Riedmiller, M. and Braun, H. (1993). A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm. ICNN. Igel, C. and Hüsken, M. (2000), NC 2000. The branches
    below are their pseudo-code for Rprop+, Rprop-, iRprop+ and iRprop-; ``maximize`` runs the
    method on the negated objective (negated gradient and loss).
    """

    def __init__(
        self,
        size: int,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
        variant: str = "irprop-",
        maximize: bool = False,
    ) -> None:
        self.eta_minus, self.eta_plus = etas
        self.delta_min, self.delta_max = step_sizes
        self.variant, self.maximize = variant, maximize
        self.state = [{"prev_grad": 0.0, "delta": lr, "prev_update": 0.0} for _ in range(size)]
        self.prev_loss = math.nan

    def step(self, values: list[float], grads: list[float], loss: float | None = None) -> None:
        if self.maximize and loss is not None:
            loss = -loss
        for i in range(len(values)):
            g = -grads[i] if self.maximize else grads[i]
            values[i] = self._element(values[i], g, self.state[i], loss)
        if loss is not None:
            self.prev_loss = loss

    def _element(self, w: float, g: float, s: dict, loss: float | None) -> float:
        change = s["prev_grad"] * g
        if change > 0:
            s["delta"] = min(s["delta"] * self.eta_plus, self.delta_max)
        elif change < 0:
            s["delta"] = max(s["delta"] * self.eta_minus, self.delta_min)

        if self.variant == "rprop-":
            s["prev_grad"] = g
            return w - _sign(g) * s["delta"]
        if self.variant == "irprop-":
            if change < 0:
                g = 0.0
            s["prev_grad"] = g
            return w - _sign(g) * s["delta"]

        # Rprop+ and iRprop+: weight-backtracking where the sign flipped.
        if change < 0:
            s["prev_grad"] = 0.0
            if self.variant == "rprop+" or loss > self.prev_loss:
                # "go back to the previous location": undo the last update.
                s["prev_update"] = -s["prev_update"]
                return w + s["prev_update"]
            s["prev_update"] = 0.0
            return w
        s["prev_grad"] = g
        s["prev_update"] = -_sign(g) * s["delta"]
        return w + s["prev_update"]


class NaiveYogi:
    """Yogi (Zaheer, Reddi, Sachan, Kale & Kumar 2018, NeurIPS), Algorithm 2.

    m starts at 0 and v at ``initial_accumulator``; with ``bias_correction`` both moments are
    divided by ``1 - beta^t`` as in Adam. Coupled L2 weight decay and ``maximize`` as in torch.
    """

    def __init__(
        self,
        size: int,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-3,
        initial_accumulator: float = 1e-6,
        bias_correction: bool = True,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        self.lr, self.eps = lr, eps
        self.beta1, self.beta2 = betas
        self.bias_correction, self.weight_decay, self.maximize = (
            bias_correction,
            weight_decay,
            maximize,
        )
        self.t = 0
        self.m = [0.0] * size
        self.v = [initial_accumulator] * size

    def step(self, values: list[float], grads: list[float], loss: float | None = None) -> None:
        self.t += 1
        for i in range(len(values)):
            g = -grads[i] if self.maximize else grads[i]
            g = g + self.weight_decay * values[i]
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * g
            self.v[i] = self.v[i] - (1 - self.beta2) * _sign(self.v[i] - g * g) * (g * g)
            m_hat, v_hat = self.m[i], self.v[i]
            if self.bias_correction:
                m_hat = m_hat / (1 - self.beta1**self.t)
                v_hat = v_hat / (1 - self.beta2**self.t)
            values[i] = values[i] - self.lr * m_hat / (math.sqrt(v_hat) + self.eps)


class NaiveQuickprop:
    """Quickprop (Fahlman 1988, CMU-CS-88-162), written as the report's rules for one weight.

    ``d`` is the previous step, ``p`` the previous slope, ``g`` the slope now (with Fahlman's decay
    term ``weight_decay * w``). The secant step ``d * g / (p - g)`` is replaced by ``mu * d`` when
    it would be too large, infinite or uphill (the shrink-factor test ``mu / (1 + mu)``); the
    gradient term ``-lr * g`` is added while the slope still points along the previous step, and
    alone makes the step when the previous step is zero.
    """

    def __init__(
        self,
        size: int,
        lr: float = 1e-2,
        mu: float = 1.75,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        self.lr, self.mu, self.weight_decay, self.maximize = lr, mu, weight_decay, maximize
        self.shrink = mu / (1 + mu)
        self.prev_grad = [0.0] * size
        self.prev_update = [0.0] * size

    def step(self, values: list[float], grads: list[float], loss: float | None = None) -> None:
        for i in range(len(values)):
            g = -grads[i] if self.maximize else grads[i]
            g = g + self.weight_decay * values[i]
            d, p = self.prev_update[i], self.prev_grad[i]
            step = 0.0
            if d < 0:
                if g > 0:  # the slope still points along the last (negative) step
                    step -= self.lr * g
                if g >= self.shrink * p or p == g:
                    step += self.mu * d
                else:
                    step += d * g / (p - g)
            elif d > 0:
                if g < 0:
                    step -= self.lr * g
                if g <= self.shrink * p or p == g:
                    step += self.mu * d
                else:
                    step += d * g / (p - g)
            else:
                step -= self.lr * g
            values[i] = values[i] + step
            self.prev_update[i] = step
            self.prev_grad[i] = g


# ----------------------------------------------------------------------------- driver

SHAPES = [(5, 3), (7,), (2, 2, 2), ()]


def wavy_total_loss(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """A smooth non-quadratic loss whose gradient depends on the parameters, products only
    (vectorized and scalar transcendental kernels may differ in the last bit)."""
    total = torch.zeros((), dtype=params[0].dtype)
    for index, param in enumerate(params):
        shifted = param - 0.3
        quartic = shifted * shifted * shifted * shifted
        total = total + (quartic + (0.5 + 0.1 * index) * param * param - 0.2 * param).sum()
    return total


def starts(dtype: torch.dtype = torch.float64, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, dtype=dtype, generator=generator) for shape in SHAPES]


def run_library(
    factory: Callable[..., torch.optim.Optimizer],
    groups: list[dict[str, Any]],
    steps: int,
    sign: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """Run ``factory`` on the test loss (times ``sign``); ``groups`` hold indices into SHAPES."""
    params = [p.requires_grad_() for p in starts(dtype)]
    param_groups = [{**group, "params": [params[i] for i in group["params"]]} for group in groups]
    optimizer = factory(param_groups)

    def closure():
        optimizer.zero_grad()
        loss = sign * wavy_total_loss(params)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return [p.detach() for p in params]


def run_naive(
    reference: type, groups: list[dict[str, Any]], steps: int, sign: float = 1.0
) -> list[list[float]]:
    """Run one ``reference`` per parameter with its group's settings on the same loss."""
    values = [p.flatten().tolist() for p in starts()]
    references = {}
    for group in groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        for i in group["params"]:
            references[i] = reference(len(values[i]), **settings)
    for _ in range(steps):
        tensors = [
            torch.tensor(v, dtype=torch.float64).reshape(shape).requires_grad_()
            for v, shape in zip(values, SHAPES, strict=True)
        ]
        loss = sign * wavy_total_loss(tensors)
        loss.backward()
        for i, optimizer in references.items():
            optimizer.step(values[i], tensors[i].grad.flatten().tolist(), loss.item())
    return values
