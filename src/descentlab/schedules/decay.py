"""Decay schedules: step, multi-step, piecewise constant, exponential, inverse time, inverse
square root, polynomial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim import lr_scheduler as torch_schedulers

from ._base import (
    D2L,
    ROBBINS_MONRO,
    Schedule,
    Steps,
    as_steps,
    check_increasing,
    check_real,
    check_step,
    count_passed,
)


@dataclass(frozen=True)
class Step(Schedule):
    """Step decay: :math:`\\eta_t = \\eta_0 \\gamma^{\\lfloor t / s \\rfloor}`, torch's ``StepLR``.

    Multiply the learning rate by ``gamma`` every ``step_size`` steps (course notes 000 and 004:
    "reduce by 0.1 after 100 epochs").
    """

    step_size: int
    gamma: float = 0.1

    name: ClassVar[str] = "step"
    formula: ClassVar[str] = r"\eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}"
    description: ClassVar[str] = "Multiply the learning rate by gamma every step_size steps."
    source: ClassVar[str] = D2L

    def __post_init__(self) -> None:
        check_step("step_size", self.step_size, 1)
        check_real("gamma", self.gamma, 0.0, 1.0, low_open=True)

    def factor(self, t: Steps) -> Steps:
        return self.gamma ** (as_steps(t) // self.step_size)

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        return torch_schedulers.StepLR(optimizer, self.step_size, self.gamma)


@dataclass(frozen=True)
class MultiStep(Schedule):
    """Multi-step decay: :math:`\\eta_t = \\eta_0 \\gamma^{|\\{m_i \\le t\\}|}`, torch's ``MultiStepLR``.

    Multiply by ``gamma`` at each milestone, as in He, Zhang, Ren & Sun (2016), *Deep Residual
    Learning for Image Recognition*, CVPR (lr divided by 10 at 32k and 48k iterations).
    """

    milestones: tuple[int, ...]
    gamma: float = 0.1

    name: ClassVar[str] = "multistep"
    formula: ClassVar[str] = r"\eta_t = \eta_0\,\gamma^{\#\{i \,:\, m_i \le t\}}"
    description: ClassVar[str] = "Multiply the learning rate by gamma at each milestone step."
    source: ClassVar[str] = (
        "He, Zhang, Ren & Sun (2016). Deep Residual Learning for Image Recognition. CVPR."
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", check_increasing("milestones", self.milestones))
        check_real("gamma", self.gamma, 0.0, 1.0, low_open=True)

    def factor(self, t: Steps) -> Steps:
        return self.gamma ** count_passed(self.milestones, as_steps(t))

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        return torch_schedulers.MultiStepLR(optimizer, list(self.milestones), self.gamma)


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise constant: :math:`\\eta_t = \\eta_0 f_i` for :math:`t_i \\le t < t_{i+1}`.

    ``f_0 = 1`` before the first boundary, then ``factors[i]`` from ``boundaries[i]`` on (course
    note 002, after Zhang et al. 2023). The factors are free, so a later piece may rise again;
    torch has no class for that, so the scheduler is ``LambdaLR``.
    """

    boundaries: tuple[int, ...]
    factors: tuple[float, ...]

    name: ClassVar[str] = "piecewise"
    formula: ClassVar[str] = r"\eta_t = \eta_0 f_i \quad \text{for } t_i \le t < t_{i+1},\ f_0 = 1"
    description: ClassVar[str] = "Hold the learning rate constant between boundaries, then jump."
    source: ClassVar[str] = D2L

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", check_increasing("boundaries", self.boundaries))
        if not isinstance(self.factors, Sequence) or len(self.factors) != len(self.boundaries):
            raise TypeError(
                f"factors must be a sequence of {len(self.boundaries)} numbers (one per boundary), "
                f"got {self.factors!r}"
            )
        for index, value in enumerate(self.factors):
            check_real(f"factors[{index}]", value, 0.0)
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))

    def factor(self, t: Steps) -> Steps:
        t = as_steps(t)
        piece = count_passed(self.boundaries, t)
        if isinstance(t, Tensor):
            return torch.tensor((1.0, *self.factors), dtype=t.dtype)[piece.long()]
        return (1.0, *self.factors)[piece]


@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential decay: :math:`\\eta_t = \\eta_0 \\gamma^t = \\eta_0 e^{-\\lambda t}`, torch's ``ExponentialLR``.

    The two forms are one schedule with :math:`\\gamma = e^{-\\lambda}`: note 000 writes
    ``0.98^epoch``, note 002 (after Zhang et al. 2023) ``e^{-lambda t}``; build the latter with
    :meth:`from_rate`.
    """

    gamma: float

    name: ClassVar[str] = "exponential"
    formula: ClassVar[str] = (
        r"\eta_t = \eta_0\,\gamma^{t} = \eta_0\,e^{-\lambda t},\ \gamma = e^{-\lambda}"
    )
    description: ClassVar[str] = "Multiply the learning rate by gamma every step."
    source: ClassVar[str] = D2L

    def __post_init__(self) -> None:
        check_real("gamma", self.gamma, 0.0, 1.0, low_open=True)

    @classmethod
    def from_rate(cls, rate: float) -> Exponential:
        """The schedule :math:`e^{-\\lambda t}` with decay rate ``rate`` = :math:`\\lambda \\ge 0`."""
        check_real("rate", rate, 0.0)
        return cls(math.exp(-rate))

    def factor(self, t: Steps) -> Steps:
        return self.gamma ** as_steps(t)

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        return torch_schedulers.ExponentialLR(optimizer, self.gamma)


@dataclass(frozen=True)
class InverseTime(Schedule):
    """Inverse-time decay: :math:`\\eta_t = \\eta_0 / (1 + d\\,t)`.

    Course notes 000 and 004 ("1/t decay"); note 000's ``1/(1 - decay * epoch)`` has a sign slip.
    Step sizes of order 1/t meet Robbins & Monro's (1951) conditions
    :math:`\\sum \\eta_t = \\infty,\\ \\sum \\eta_t^2 < \\infty`.
    """

    decay: float

    name: ClassVar[str] = "inverse_time"
    formula: ClassVar[str] = r"\eta_t = \frac{\eta_0}{1 + d\,t}"
    description: ClassVar[str] = "Shrink the learning rate like 1/t."
    source: ClassVar[str] = ROBBINS_MONRO

    def __post_init__(self) -> None:
        check_real("decay", self.decay, 0.0)

    def factor(self, t: Steps) -> Steps:
        return 1.0 / (1.0 + self.decay * as_steps(t))


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Inverse square-root decay: :math:`\\eta_t = \\eta_0 / \\sqrt{1 + d\\,t}`.

    Note 000's ``k / sqrt(epoch)`` shifted so that step 0 is defined and keeps ``eta_0``; the
    decay of Vaswani et al. (2017), *Attention Is All You Need*, NeurIPS, after its warmup.
    """

    decay: float

    name: ClassVar[str] = "inverse_sqrt"
    formula: ClassVar[str] = r"\eta_t = \frac{\eta_0}{\sqrt{1 + d\,t}}"
    description: ClassVar[str] = "Shrink the learning rate like 1/sqrt(t)."
    source: ClassVar[str] = "Vaswani et al. (2017). Attention Is All You Need. NeurIPS."

    def __post_init__(self) -> None:
        check_real("decay", self.decay, 0.0)

    def factor(self, t: Steps) -> Steps:
        return (1.0 + self.decay * as_steps(t)) ** -0.5


@dataclass(frozen=True)
class Polynomial(Schedule):
    """Polynomial decay: :math:`\\eta_t = \\eta_0 (\\beta t + 1)^{-\\alpha}` (note 002, Zhang et al. 2023).

    Not torch's ``PolynomialLR``, which is :math:`(1 - t/T)^p`, reaching zero at step ``T``; this
    one never reaches zero. ``alpha = 1`` is inverse-time and ``alpha = 0.5`` inverse-sqrt decay.
    """

    beta: float
    alpha: float = 0.5

    name: ClassVar[str] = "polynomial"
    formula: ClassVar[str] = r"\eta_t = \eta_0\,(\beta t + 1)^{-\alpha}"
    description: ClassVar[str] = "Shrink the learning rate like a power of t."
    source: ClassVar[str] = D2L

    def __post_init__(self) -> None:
        check_real("beta", self.beta, 0.0)
        check_real("alpha", self.alpha, 0.0)

    def factor(self, t: Steps) -> Steps:
        return (self.beta * as_steps(t) + 1.0) ** -self.alpha
