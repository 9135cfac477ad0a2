"""Warmup and cosine annealing, alone and together."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch.optim import Optimizer
from torch.optim import lr_scheduler as torch_schedulers

from ._base import Constant, Schedule, Steps, as_steps, at_most, check_real, check_step, cos, where


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """Linear warmup: :math:`\\eta_t = \\eta_0 (s + (1 - s) \\min(t, W) / W)`, torch's ``LinearLR``.

    Start at ``start_factor * eta_0`` and ramp linearly to ``eta_0`` over ``warmup`` steps, then
    hold: the gradual warmup of Goyal et al. (2017), *Accurate, Large Minibatch SGD: Training
    ImageNet in 1 Hour*, arXiv:1706.02677; the heuristic RAdam explains (Liu et al., ICLR 2020).
    torch's ``LinearLR`` needs ``start_factor > 0``; ``start_factor = 0`` or ``warmup = 0`` use
    ``LambdaLR``.
    """

    warmup: int
    start_factor: float = 0.1

    name: ClassVar[str] = "linear_warmup"
    formula: ClassVar[str] = r"\eta_t = \eta_0 \left(s + (1 - s)\,\frac{\min(t, W)}{W}\right)"
    description: ClassVar[str] = "Ramp the learning rate up linearly, then hold it."
    source: ClassVar[str] = (
        "Goyal et al. (2017). Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour. "
        "arXiv:1706.02677."
    )

    def __post_init__(self) -> None:
        check_step("warmup", self.warmup, 0)
        check_real("start_factor", self.start_factor, 0.0, 1.0)

    def factor(self, t: Steps) -> Steps:
        t = as_steps(t)
        if self.warmup == 0:
            return Constant().factor(t)
        progress = at_most(t, self.warmup) / self.warmup
        # Written as a lerp so both ends are exact: start_factor at t = 0, 1.0 from t = W on.
        return (1.0 - progress) * self.start_factor + progress

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        if self.warmup == 0 or self.start_factor == 0:
            return super().scheduler(optimizer)
        return torch_schedulers.LinearLR(optimizer, self.start_factor, 1.0, self.warmup)


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing: :math:`\\eta_t = \\eta_0 (m + (1 - m)(1 + \\cos(\\pi t / T)) / 2)`.

    From ``eta_0`` down to ``min_factor * eta_0`` at step ``total_steps``: SGDR without restarts,
    Loshchilov & Hutter (2017), *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR.
    Like torch's ``CosineAnnealingLR`` the factor keeps following the cosine after ``T`` (it rises
    again), so set ``total_steps`` to the length of the run. torch's class takes an absolute
    ``eta_min``; when param groups have different base lrs and ``min_factor > 0`` that cannot be
    expressed, and the scheduler is ``LambdaLR``.
    """

    total_steps: int
    min_factor: float = 0.0

    name: ClassVar[str] = "cosine"
    formula: ClassVar[str] = (
        r"\eta_t = \eta_0 \left(m + (1 - m)\,\frac{1 + \cos(\pi t / T)}{2}\right)"
    )
    description: ClassVar[str] = "Lower the learning rate along half a cosine wave."
    source: ClassVar[str] = (
        "Loshchilov & Hutter (2017). SGDR: Stochastic Gradient Descent with Warm Restarts. ICLR."
    )

    def __post_init__(self) -> None:
        check_step("total_steps", self.total_steps, 1)
        check_real("min_factor", self.min_factor, 0.0, 1.0)

    def factor(self, t: Steps) -> Steps:
        m = self.min_factor
        return m + (1.0 - m) * (1.0 + cos(math.pi * as_steps(t) / self.total_steps)) / 2.0

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        base_lrs = {group.get("initial_lr", group["lr"]) for group in optimizer.param_groups}
        if self.min_factor != 0 and len(base_lrs) != 1:
            return super().scheduler(optimizer)
        eta_min = self.min_factor * next(iter(base_lrs)) if self.min_factor else 0.0
        return torch_schedulers.CosineAnnealingLR(optimizer, self.total_steps, eta_min)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup over ``warmup`` steps, then cosine annealing to step ``total_steps``.

    :class:`LinearWarmup` for ``t < W``, then :class:`Cosine` over ``T - W`` steps started at
    ``t = W`` (torch: ``SequentialLR`` of the two). Goyal et al. (2017); Loshchilov & Hutter (2017).
    """

    warmup: int
    total_steps: int
    start_factor: float = 0.1
    min_factor: float = 0.0

    name: ClassVar[str] = "warmup_cosine"
    formula: ClassVar[str] = (
        r"\eta_t = \eta_0 \begin{cases} s + (1 - s)\,t / W & t < W \\"
        r" m + (1 - m)\,\frac{1 + \cos(\pi (t - W) / (T - W))}{2} & t \ge W \end{cases}"
    )
    description: ClassVar[str] = "Ramp up linearly, then lower along half a cosine wave."
    source: ClassVar[str] = f"{LinearWarmup.source} {Cosine.source}"

    def __post_init__(self) -> None:
        check_step("warmup", self.warmup, 0)
        check_step("total_steps", self.total_steps, self.warmup + 1)
        self.parts  # noqa: B018 -- building the parts checks start_factor and min_factor

    @property
    def parts(self) -> tuple[LinearWarmup, Cosine]:
        return (
            LinearWarmup(self.warmup, self.start_factor),
            Cosine(self.total_steps - self.warmup, self.min_factor),
        )

    def factor(self, t: Steps) -> Steps:
        t = as_steps(t)
        ramp, anneal = self.parts
        return where(t < self.warmup, ramp.factor(t), anneal.factor(t - self.warmup))

    def scheduler(self, optimizer: Optimizer) -> torch_schedulers.LRScheduler:
        ramp, anneal = self.parts
        if self.warmup == 0:
            return anneal.scheduler(optimizer)
        schedulers = [ramp.scheduler(optimizer), anneal.scheduler(optimizer)]
        return torch_schedulers.SequentialLR(optimizer, schedulers, milestones=[self.warmup])
