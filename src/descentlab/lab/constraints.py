"""Constrained optimization by projection: after each step, move every run back into the set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..optim import _stack


class Constraint:
    def project_(self, position: Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Constraint):
    """The box low <= x <= high (per coordinate; numbers or one value per coordinate)."""

    low: Any
    high: Any

    def tensors(self, dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        low = torch.as_tensor(self.low, dtype=dtype).expand(dim)
        high = torch.as_tensor(self.high, dtype=dtype).expand(dim)
        if not (low <= high).all():
            raise ValueError(f"Box needs low <= high, got low={self.low!r}, high={self.high!r}")
        return low, high

    def project_(self, position: Tensor) -> None:
        low, high = self.tensors(position.shape[-1], position.dtype)
        torch.clamp(position, low, high, out=position)


@dataclass(frozen=True)
class Ball(Constraint):
    """The Euclidean ball of ``radius`` around ``center`` (the origin by default)."""

    radius: float
    center: Any = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.radius, int | float) or not self.radius > 0:
            raise ValueError(f"Ball radius must be a number > 0, got {self.radius!r}")

    def project_(self, position: Tensor) -> None:
        center = torch.as_tensor(self.center, dtype=position.dtype)
        offset = position - center
        norm = _stack.slice_norm(offset, 1)
        scale = (self.radius / norm.clamp(min=self.radius)).nan_to_num_(1.0)
        position.copy_(center + offset * scale)


def resolve_constraint(project: Any, surface, dtype: torch.dtype) -> Constraint | None:
    if project is None:
        return None
    if project == "domain":
        bounds = torch.tensor(surface.domain, dtype=dtype)
        return Box(bounds[:, 0], bounds[:, 1])
    if isinstance(project, Box):
        project.tensors(surface.dim, dtype)  # validate now, not at the first step
        return project
    if isinstance(project, Ball):
        return project
    raise ValueError(f"project must be None, 'domain', a Box or a Ball, got {project!r}")
