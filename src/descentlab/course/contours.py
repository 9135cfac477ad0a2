"""Contour lines of a landscape for the widget, computed on the server with contourpy.

The browser gets polylines in the landscape's own coordinates and only draws them. Levels sit at
quantiles of the loss over the grid, so a function whose values span many orders of magnitude
(Rosenbrock, Goldstein-Price) still gets lines spread over the whole picture. A 1-D landscape gets
its curve instead.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import contourpy
import torch

from .content import resolve_landscape

RESOLUTION = 140
LEVELS = 18
CURVE_POINTS = 400


def _rounded(values) -> list[float]:
    return [round(float(v), 5) for v in values]


@lru_cache(maxsize=256)
def contours(landscape_text: str) -> dict[str, Any]:
    """``{"dim": 2, "domain", "levels": [{"value", "lines": [[x...], [y...]]...}]}`` or, for 1-D,
    ``{"dim": 1, "domain", "curve": [[x...], [f(x)...]]}``. ValueError for a bad landscape."""
    surface = resolve_landscape(landscape_text)
    domain = [list(pair) for pair in surface.domain]
    if surface.dim == 1:
        ((low, high),) = surface.domain
        xs = torch.linspace(low, high, CURVE_POINTS, dtype=torch.float64)
        with torch.no_grad():
            ys = surface(xs.reshape(-1, 1))
        ys = torch.where(torch.isfinite(ys), ys, torch.nan)
        return {"dim": 1, "domain": domain, "curve": [_rounded(xs), _finite(ys)]}
    (x_low, x_high), (y_low, y_high) = surface.domain
    xs = torch.linspace(x_low, x_high, RESOLUTION, dtype=torch.float64)
    ys = torch.linspace(y_low, y_high, RESOLUTION, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        values = surface(torch.stack([grid_x, grid_y], dim=-1))
    finite = values[torch.isfinite(values)]
    if finite.numel() == 0:
        raise ValueError("the landscape is not finite anywhere in its domain")
    # Cap extreme values so one huge corner does not hide every other line.
    quantiles = torch.linspace(0.02, 0.98, LEVELS, dtype=torch.float64)
    levels = sorted(set(torch.quantile(finite, quantiles).tolist()))
    filled = torch.where(torch.isfinite(values), values, finite.max()).numpy()
    generator = contourpy.contour_generator(
        xs.numpy(), ys.numpy(), filled, line_type=contourpy.LineType.Separate
    )
    result = []
    for level in levels:
        lines = [[_rounded(line[:, 0]), _rounded(line[:, 1])] for line in generator.lines(level)]
        result.append({"value": level, "lines": lines})
    return {"dim": 2, "domain": domain, "levels": result}


def _finite(values) -> list[float | None]:
    return [round(float(v), 6) if math.isfinite(float(v)) else None for v in values]
