"""Learning-rate schedules: one definition for plots and for training.

A schedule is a small frozen dataclass of its parameters. Its :meth:`~Schedule.factor` maps a step
``t`` (a Python number, or a tensor of steps so a whole curve is one call) to the multiplier of the
base learning rate, ``eta_t = eta_0 * factor(t)``; :meth:`~Schedule.scheduler` attaches the same
schedule to an optimizer as a ``torch.optim.lr_scheduler.LRScheduler``. Where torch has the
schedule, that is torch's own class (``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``LinearLR``,
``CosineAnnealingLR``, ``SequentialLR``); otherwise it is ``LambdaLR`` over ``factor`` itself, so
the formula is written once. ``t`` counts ``scheduler.step()`` calls: the lr used by the first
optimizer step is ``eta_0 * factor(0)``.

torch's classes update the lr recursively (``lr *= ratio`` each step), so their lr can differ
from the closed form by rounding that grows with ``t`` (relative 1e-15 to 1e-13 over tens of steps).

Sources: the course notes (000, 002, 004); Zhang, Lipton, Li & Smola (2023), *Dive into Deep
Learning*, Cambridge University Press, section "Stochastic Gradient Descent: Dynamic Learning Rate";
the papers cited on each class. Note 000 writes inverse-time decay as ``1/(1 - decay * epoch)``:
the sign is a slip, the schedule is ``1/(1 + decay * epoch)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields

from ._base import Constant, Schedule
from .decay import (
    Exponential,
    InverseSqrt,
    InverseTime,
    MultiStep,
    Piecewise,
    Polynomial,
    Step,
)
from .warmup import Cosine, LinearWarmup, WarmupCosine

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "LinearWarmup",
    "MultiStep",
    "Piecewise",
    "Polynomial",
    "Schedule",
    "Step",
    "WarmupCosine",
    "create",
    "get",
    "names",
]

# ----------------------------------------------------------------------------- registry

_SCHEDULES: tuple[type[Schedule], ...] = (
    Constant,
    Step,
    MultiStep,
    Piecewise,
    Exponential,
    InverseTime,
    InverseSqrt,
    Polynomial,
    LinearWarmup,
    Cosine,
    WarmupCosine,
)
_REGISTRY: dict[str, type[Schedule]] = {cls.name: cls for cls in _SCHEDULES}


def names() -> tuple[str, ...]:
    """The registry keys, in teaching order."""
    return tuple(_REGISTRY)


def get(name: str) -> type[Schedule]:
    """The schedule class registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown schedule {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create(name: str, /, **params: object) -> Schedule:
    """Build the schedule ``name`` from its parameters, e.g. ``create("step", step_size=30)``.

    ``create("exponential", rate=0.1)`` builds :math:`e^{-0.1 t}` (:meth:`Exponential.from_rate`).
    """
    cls = get(name)
    accepted = [field.name for field in fields(cls)]
    build: Callable[..., Schedule] = cls
    if cls is Exponential and "rate" in params:
        if "gamma" in params:
            raise TypeError("Schedule 'exponential' takes gamma or rate, not both")
        accepted, build = ["rate"], Exponential.from_rate
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"Schedule {name!r} has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(accepted)}"
        )
    missing = [
        field.name
        for field in fields(cls)
        if field.name not in params and field.default is MISSING and build is cls
    ]
    if missing:
        raise TypeError(f"Schedule {name!r} needs {', '.join(missing)}")
    return build(**params)
