"""A racer's learning-rate schedule as the course receives it: a registry name and its parameters.

The same Pydantic model checks a lesson's front matter and a race request, so both refuse the
same things with the same words: an unknown name, a parameter the schedule does not have, a
value the schedule rejects (``descentlab.schedules`` checks its own ranges), and numbers or
lists too large for a small web race. A checked setting becomes a hashable tuple
(:data:`ScheduleSetting`), so it can be part of the race service's cache keys.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from .. import schedules

#: At most this many parameters, each a number or a list of at most MAX_LIST_LENGTH numbers,
#: each number within +-MAX_VALUE: schedule parameters are step counts and factors, never huge.
MAX_PARAMETERS = 4
MAX_LIST_LENGTH = 16
MAX_VALUE = 10_000

#: ``(name, ((parameter, value), ...))`` with parameters sorted and lists as tuples.
ScheduleSetting = tuple[str, tuple[tuple[str, Any], ...]]

Number = int | float
ParameterName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
ParameterValue = Number | Annotated[list[Number], Field(min_length=1, max_length=MAX_LIST_LENGTH)]


class ScheduleIn(BaseModel):
    """``{"name": "step", "params": {"step_size": 50, "gamma": 0.2}}``: one racer's schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    params: dict[ParameterName, ParameterValue] = Field(
        default_factory=dict, max_length=MAX_PARAMETERS
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in schedules.names():
            raise ValueError(
                f"unknown schedule {name!r}; choose from {', '.join(schedules.names())}"
            )
        return name

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any]) -> dict[str, Any]:
        for parameter, value in params.items():
            for number in value if isinstance(value, list) else [value]:
                if not math.isfinite(number) or abs(number) > MAX_VALUE:
                    raise ValueError(
                        f"{parameter} must be a finite number between -{MAX_VALUE} and "
                        f"{MAX_VALUE}, got {number!r}"
                    )
        return params

    @model_validator(mode="after")
    def _builds(self) -> ScheduleIn:
        # descentlab.schedules raises TypeError for a wrong kind of value (50.0 steps) and
        # ValueError for one out of range; both are the request's fault, hence ValueError here.
        try:
            build(self.setting())
        except (TypeError, ValueError) as error:
            raise ValueError(f"{self.name}: {error}") from None
        return self

    def setting(self) -> ScheduleSetting:
        """The hashable form the race service keys its caches with."""
        items = (
            (name, tuple(value) if isinstance(value, list) else value)
            for name, value in self.params.items()
        )
        return (self.name, tuple(sorted(items)))


@lru_cache(maxsize=256)
def build(setting: ScheduleSetting) -> schedules.Schedule:
    """The ``descentlab.schedules`` object of a setting; TypeError or ValueError if it is bad."""
    name, params = setting
    return schedules.create(name, **dict(params))


def as_dict(setting: ScheduleSetting) -> dict[str, Any]:
    """The setting as JSON: ``{"name": ..., "params": {...}}`` (lists for tuples)."""
    name, params = setting
    return {
        "name": name,
        "params": {key: list(v) if isinstance(v, tuple) else v for key, v in params},
    }


def lr_factors(setting: ScheduleSetting, steps: int) -> list[float]:
    """The multiplier of the base lr used by each of the ``steps`` steps (step 0 first), to six
    significant digits (plenty for drawing, a third of the JSON)."""
    schedule = build(setting)
    factors = schedule.factor(torch.arange(steps, dtype=torch.float64))
    return [float(f"{value:.6g}") for value in factors.tolist()]
