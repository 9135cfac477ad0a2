"""Where runs start: the landscape's suggestions, seeded random points, or the user's points."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

MAX_RANDOM_STARTS = 10_000_000


def resolve_starts(starts: Any, surface, dtype: torch.dtype, generator: torch.Generator) -> Tensor:
    """Start points as an (M, D) tensor."""
    dim = surface.dim
    if isinstance(starts, str):
        if starts == "suggested":
            points = torch.tensor(surface.starts, dtype=dtype).reshape(-1, dim)
            if points.shape[0] == 0:
                raise ValueError(f"{surface.key} suggests no start points; give starts")
            return points
        kind, _, count_text = starts.partition(":")
        if kind != "random" or not count_text.strip().isdigit():
            raise ValueError(f"starts must be 'suggested', 'random:N' or points, got {starts!r}")
        count = int(count_text)
        if not 1 <= count <= MAX_RANDOM_STARTS:
            raise ValueError(f"random:N needs 1 <= N <= {MAX_RANDOM_STARTS}, got {count}")
        bounds = torch.tensor(surface.domain, dtype=dtype)
        low, high = bounds[:, 0], bounds[:, 1]
        return low + (high - low) * torch.rand((count, dim), generator=generator, dtype=dtype)
    try:
        points = torch.as_tensor(starts, dtype=dtype)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"starts must be points of {dim} coordinates, got {starts!r}") from None
    if points.dim() == 1:
        points = points.unsqueeze(0)
    if points.dim() != 2 or points.shape[1] != dim or points.shape[0] == 0:
        raise ValueError(
            f"starts must be points of {dim} coordinates (shape (M, {dim})), got shape "
            f"{tuple(points.shape)}"
        )
    if not torch.isfinite(points).all():
        raise ValueError("starts must be finite")
    return points.clone()
