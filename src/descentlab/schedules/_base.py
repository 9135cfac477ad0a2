"""The shared part of every schedule: the base class, number-or-tensor math, validation."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim import lr_scheduler as torch_schedulers

Steps = int | float | Tensor

ROBBINS_MONRO = "Robbins & Monro (1951). A Stochastic Approximation Method. Ann. Math. Stat."
D2L = "Zhang, Lipton, Li & Smola (2023). Dive into Deep Learning. Cambridge University Press."


# ----------------------------------------------------------------------------- number-or-tensor math


def as_steps(t: object) -> Steps:
    """Accept a real number or a tensor of steps; integer tensors become floating point."""
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    if isinstance(t, bool) or not isinstance(t, Real):
        raise TypeError(f"t must be a number or a tensor of steps, got {type(t).__name__}")
    return t


def cos(x: Steps) -> Steps:
    return torch.cos(x) if isinstance(x, Tensor) else math.cos(x)


def at_most(x: Steps, high: float) -> Steps:
    return x.clamp(max=high) if isinstance(x, Tensor) else min(x, high)


def where(condition: bool | Tensor, if_true: Steps, if_false: Steps) -> Steps:
    if isinstance(condition, Tensor):
        return torch.where(condition, if_true, if_false)
    return if_true if condition else if_false


def count_passed(boundaries: tuple[int, ...], t: Steps) -> Steps:
    """How many boundaries are <= t (``bisect_right``, elementwise for a tensor of t's dtype)."""
    if isinstance(t, Tensor):
        passed = torch.bucketize(t, torch.tensor(boundaries, dtype=t.dtype), right=True)
        # bucketize counts in int64; a float ``gamma ** int64`` would drop to the default dtype.
        return passed.to(t.dtype)
    return bisect_right(boundaries, t)


# ----------------------------------------------------------------------------- validation


def check_real(name: str, value: object, low: float, high: float = math.inf, *, low_open=False):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high or math.isnan(value) or math.isinf(value):
        interval = f"{'(' if low_open else '['}{low}, {high}{']' if high < math.inf else ')'}"
        raise ValueError(f"Invalid {name}: {value!r}; it must be finite and lie in {interval}")


def check_step(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer number of steps, got {value!r}")
    if value < low:
        raise ValueError(f"Invalid {name}: {value!r}; it must be >= {low}")


def check_increasing(name: str, values: object) -> tuple[int, ...]:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise TypeError(f"{name} must be a non-empty sequence of steps, got {values!r}")
    for index, value in enumerate(values):
        check_step(f"{name}[{index}]", value, 1)
    if any(a >= b for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"Invalid {name}: {values!r}; it must be strictly increasing")
    return tuple(int(v) for v in values)


# ----------------------------------------------------------------------------- the base class


class Schedule:
    """A learning-rate schedule: ``eta_t = eta_0 * factor(t)``.

    Subclasses are frozen dataclasses of their parameters and set ``name`` (the registry key),
    ``formula`` (LaTeX for the course), ``description`` (one line) and ``source`` (a citation).
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    description: ClassVar[str]
    source: ClassVar[str]

    def factor(self, t: Steps) -> Steps:
        """The multiplier of the base learning rate at step ``t``."""
        raise NotImplementedError

    def lr(self, t: Steps, base_lr: float) -> Steps:
        """The learning rate at step ``t`` for base learning rate ``eta_0 = base_lr``."""
        return base_lr * self.factor(as_steps(t))

    __call__ = lr

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        """This schedule as a torch LRScheduler over every param group of ``optimizer``."""
        # A bound method, not a lambda, so LambdaLR.state_dict() stays picklable.
        return torch_schedulers.LambdaLR(optimizer, self.factor)


@dataclass(frozen=True)
class Constant(Schedule):
    """No schedule: :math:`\\eta_t = \\eta_0`. The baseline every other schedule is compared to."""

    name: ClassVar[str] = "constant"
    formula: ClassVar[str] = r"\eta_t = \eta_0"
    description: ClassVar[str] = "The learning rate never changes."
    source: ClassVar[str] = ROBBINS_MONRO

    def factor(self, t: Steps) -> Steps:
        t = as_steps(t)
        return torch.ones_like(t) if isinstance(t, Tensor) else 1.0
