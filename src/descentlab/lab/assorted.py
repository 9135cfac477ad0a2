"""Several landscapes in one race: each run (a row of the stacked positions) on a landscape of its
own, so that races on different landscapes share their optimizer updates and their records.

The course's race service gathers requests on four landscapes at once; racing them apart costs four
times the per-step operations of one race (each step of a small race is bound by per-operation
overhead, not by arithmetic). With :class:`Assorted` they are one race: each landscape evaluates
its own rows, gathered by one index, and the losses and gradients go back in run order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .result import distance_to_minima


class Assorted:
    """Landscapes of one dimension, with the landscape of each row: ``owner[i]`` is the index in
    ``surfaces`` of row i's landscape.

    Called like a landscape on points of shape (R, D), one row per run: each landscape computes
    its own rows, in one call for all of them. Differentiable (the closure-driven methods
    differentiate through it), and :meth:`value_and_grad` takes each landscape's closed form.
    """

    def __init__(self, surfaces: Sequence, owner: Tensor) -> None:
        self.surfaces = list(surfaces)
        self.owner = owner
        dims = {surface.dim for surface in self.surfaces}
        if len(dims) != 1:
            raise ValueError(
                "landscapes: every landscape of one race needs the same dimension, got "
                + ", ".join(f"{s.key} ({s.dim}-D)" for s in self.surfaces)
            )
        self.dim = dims.pop()
        # Each landscape's rows, and the permutation that puts their results back in row order.
        self.groups = [
            (surface, rows)
            for index, surface in enumerate(self.surfaces)
            if (rows := (owner == index).nonzero().squeeze(1)).numel()
        ]
        order = torch.cat([rows for _, rows in self.groups])
        self.back = torch.empty_like(order)
        self.back[order] = torch.arange(order.numel())

    def rows(self, begin: int, end: int):
        """The landscapes of rows ``begin:end`` (one optimizer entry's runs): the one landscape
        itself when they all lie on one."""
        return self._narrowed(self.owner[begin:end])

    def of_rows(self, index: Tensor):
        """The landscapes of the rows ``index``, in that order (one landscape when they all lie
        on one)."""
        return self._narrowed(self.owner[index])

    def _narrowed(self, owner: Tensor):
        kinds = owner.unique()
        if kinds.numel() == 1:
            return self.surfaces[int(kinds)]
        return Assorted(self.surfaces, owner)

    def __call__(self, points: Tensor) -> Tensor:
        parts = [surface(points.index_select(0, rows)) for surface, rows in self.groups]
        return torch.cat(parts).index_select(0, self.back)

    def value_and_grad(self, points: Tensor) -> tuple[Tensor, Tensor]:
        values, grads = [], []
        for surface, rows in self.groups:
            value, grad = surface.value_and_grad(points.index_select(0, rows))
            values.append(value)
            grads.append(grad)
        return (
            torch.cat(values).index_select(0, self.back),
            torch.cat(grads).index_select(0, self.back),
        )

    def per_row(self, values: Sequence[Tensor]) -> Tensor:
        """``values[k]`` (one tensor per landscape, all of one shape) given to each row of
        landscape k: shape (R, *shape)."""
        return torch.stack(list(values)).index_select(0, self.owner)


# The race's per-runner views: a landscape, or (several landscapes) the rows' own.


def rows_of(surface, begin: int, end: int):
    """The landscape of runs ``begin:end``: the race's, or (several landscapes) their own."""
    if not isinstance(surface, Assorted):
        return surface
    return surface.rows(begin, end)


def joint_rows(surface, direct: list, bounds, runners: list):
    """The landscape of the direct runners' runs, side by side in runner order."""
    if not isinstance(surface, Assorted):
        return surface
    begin_end = dict(zip(runners, bounds, strict=True))
    index = torch.cat([torch.arange(*begin_end[runner]) for runner in direct])
    return surface.of_rows(index)


def threshold_of(where, tolerance: float, dtype: torch.dtype) -> float | Tensor | None:
    """Within ``tolerance`` of the global minimum value: one number for a landscape, one per
    run for several (NaN, never reached, on a landscape with no known minimum)."""
    if not isinstance(where, Assorted):
        values = [m.value for m in where.minima]
        return min(values) + tolerance if values else None
    if not any(surface.minima for surface in where.surfaces):
        return None
    values = [
        torch.tensor(
            min(m.value for m in s.minima) + tolerance if s.minima else math.nan,
            dtype=torch.float64,  # not rounded to float32 first: a float64 race reads it
        )
        for s in where.surfaces
    ]
    return where.per_row(values).to(dtype)


def divergence_limits(where, dtype: torch.dtype, span: float) -> tuple[Tensor, Tensor]:
    """The domain's center and ``span`` times its half-widths: a run farther than that
    from the center on some axis has diverged. Per run (rows) with several landscapes."""
    if not isinstance(where, Assorted):
        bounds = torch.tensor(where.domain, dtype=dtype)
        low, high = bounds[:, 0], bounds[:, 1]
        return (low + high) / 2, span * (high - low) / 2
    centers, limits = zip(*(divergence_limits(s, dtype, span) for s in where.surfaces), strict=True)
    return where.per_row(centers), where.per_row(limits)


def distances_for(surface):
    """For several landscapes, each run's distance to its own landscape's nearest minimum
    (None: the result computes it on the race's one landscape)."""
    if not isinstance(surface, Assorted):
        return None

    def distances(final: Tensor) -> Tensor:
        out = torch.empty(final.shape[0], dtype=final.dtype)
        for landscape, rows in surface.groups:
            out[rows] = distance_to_minima(final[rows], landscape)
        return out

    return distances
