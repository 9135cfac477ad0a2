"""What descentlab knows about an algorithm, written once.

A :class:`Spec` sits beside each optimizer class. The lab labels and colours runs with it, the arena
tunes inside its ranges, the course renders its equations and the review page is generated from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SCALES = ("log", "linear", "log1m", "choice", "fixed")


@dataclass(frozen=True)
class Paper:
    authors: str
    year: int
    title: str
    venue: str = ""
    url: str = ""

    def cite(self) -> str:
        venue = f" {self.venue}." if self.venue else ""
        return f"{self.authors} ({self.year}). {self.title}.{venue}"


@dataclass(frozen=True)
class Hyperparameter:
    """One tunable knob.

    ``argument`` and ``index`` say where the value goes in the constructor: ``beta1`` is
    ``betas[0]``. ``low``/``high`` bound the tuning range on ``scale``: ``log`` samples
    log-uniformly, ``log1m`` samples ``1 - value`` log-uniformly (momentum-like values near 1),
    ``choice`` picks from ``choices``, ``fixed`` is not tuned.
    """

    name: str
    default: Any
    meaning: str
    symbol: str = ""
    low: float | None = None
    high: float | None = None
    scale: str = "fixed"
    choices: tuple[Any, ...] = ()
    argument: str = ""
    index: int | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"{self.name}: unknown scale {self.scale!r}")
        if self.scale in ("log", "linear", "log1m"):
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{self.name}: a tuned range needs low < high")
            if self.scale == "log" and self.low <= 0:
                raise ValueError(f"{self.name}: a log range needs low > 0")
        if not self.argument:
            object.__setattr__(self, "argument", self.name)

    @property
    def tuned(self) -> bool:
        return self.scale != "fixed"

    def grid(self, count: int) -> list[float]:
        """``count`` values spread evenly over the tuning range on its scale."""
        if self.scale == "choice":
            return list(self.choices)
        if not self.tuned or count < 1:
            return [self.default]
        if count == 1:
            return [self.default]
        fractions = [i / (count - 1) for i in range(count)]
        if self.scale == "linear":
            return [self.low + f * (self.high - self.low) for f in fractions]
        if self.scale == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            return [math.exp(lo + f * (hi - lo)) for f in fractions]
        lo, hi = math.log(1 - self.high), math.log(1 - self.low)  # log1m
        return [1 - math.exp(lo + f * (hi - lo)) for f in fractions]


def decay_rate(index: int, default: float, meaning: str, low: float, high: float) -> Hyperparameter:
    """``beta1`` or ``beta2``: component ``index`` of a ``betas`` argument, tuned as
    ``1 - beta`` on a log scale (0.9, 0.99 and 0.999 are equally far apart)."""
    number = index + 1
    return Hyperparameter(
        f"beta{number}", default, meaning, rf"\beta_{number}", low, high, "log1m",
        argument="betas", index=index,
    )  # fmt: skip


@dataclass(frozen=True)
class StateBuffer:
    name: str
    meaning: str
    symbol: str = ""


@dataclass(frozen=True)
class Spec:
    """Facts about one registry entry (``key``) and how to build it."""

    key: str
    title: str
    summary: str
    paper: Paper
    equations: tuple[str, ...]
    hyperparameters: tuple[Hyperparameter, ...]
    state: tuple[StateBuffer, ...]
    factory: Callable[..., Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    family: str = "classic"
    order: int = 1
    needs_closure: bool = False
    #: Designed for exact gradients: mini-batch noise defeats it (sign or secant logic, line searches).
    full_batch: bool = False
    #: Each run's own coordinates must form a matrix (Muon orthogonalizes 2-D weights).
    matrices_only: bool = False
    #: Every coordinate is updated from its own gradient and state alone (no norms, no matrices).
    elementwise: bool = False
    teaches: str = ""

    def hyperparameter(self, name: str) -> Hyperparameter:
        for hyper in self.hyperparameters:
            if hyper.name == name:
                return hyper
        raise KeyError(f"{self.key} has no hyperparameter {name!r}")

    @property
    def defaults(self) -> dict[str, Any]:
        """The constructor arguments this entry uses when none are given."""
        return self.kwargs({})

    def kwargs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from spec names (``beta1``) or constructor names (``betas``).

        Unnamed hyperparameters take their defaults; tuple arguments are assembled from their
        components.
        """
        known = {h.name for h in self.hyperparameters} | {h.argument for h in self.hyperparameters}
        unknown = sorted(set(values) - known)
        if unknown:
            choices = ", ".join(sorted(known))
            raise ValueError(f"{self.key} has no hyperparameter {unknown[0]!r}; it has: {choices}")
        result: dict[str, Any] = dict(self.fixed)
        tuples: dict[str, list[Any]] = {}
        for hyper in self.hyperparameters:
            value = values.get(hyper.name, hyper.default)
            if hyper.index is None:
                result[hyper.argument] = value
            else:
                tuples.setdefault(hyper.argument, [])
                parts = tuples[hyper.argument]
                parts.extend([None] * (hyper.index + 1 - len(parts)))
                parts[hyper.index] = value
        for argument, parts in tuples.items():
            result[argument] = values[argument] if argument in values else tuple(parts)
        return result
