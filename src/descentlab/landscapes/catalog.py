"""The registry of built-in landscapes: ``names()`` lists them, ``get(name, dim)`` builds one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import classic, teaching
from ._base import Landscape


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., Landscape]
    n_dimensional: bool = False
    min_dim: int = 1


_CATALOG: dict[str, _Entry] = {
    "ravine": _Entry(teaching.ravine),
    "anisotropic_well": _Entry(teaching.anisotropic_well),
    "saddle": _Entry(teaching.saddle),
    "monkey_saddle": _Entry(teaching.monkey_saddle),
    "plateau": _Entry(teaching.plateau),
    "x_cos_x": _Entry(teaching.x_cos_x),
    "double_well": _Entry(teaching.double_well),
    "rosenbrock": _Entry(classic.rosenbrock, n_dimensional=True, min_dim=2),
    "beale": _Entry(classic.beale),
    "himmelblau": _Entry(classic.himmelblau),
    "rastrigin": _Entry(classic.rastrigin, n_dimensional=True),
    "ackley": _Entry(classic.ackley, n_dimensional=True),
    "booth": _Entry(classic.booth),
    "goldstein_price": _Entry(classic.goldstein_price),
    "six_hump_camel": _Entry(classic.six_hump_camel),
    "styblinski_tang": _Entry(classic.styblinski_tang, n_dimensional=True),
}


def names() -> tuple[str, ...]:
    """Keys of all built-in landscapes, in catalog order."""
    return tuple(_CATALOG)


def n_dimensional_names() -> tuple[str, ...]:
    """Keys of the landscapes defined for any number of dimensions (``get(name, dim=D)``)."""
    return tuple(key for key, entry in _CATALOG.items() if entry.n_dimensional)


def get(name: str, dim: int | None = None) -> Landscape:
    """The built-in landscape ``name``; ``dim`` picks D for N-dimensional ones (default 2).

    Raises:
        ValueError: unknown ``name``, or a ``dim`` the landscape is not defined for.
        TypeError: ``name`` not a string or ``dim`` not an integer.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    entry = _CATALOG.get(name)
    if entry is None:
        raise ValueError(f"name: unknown landscape {name!r}; known: {', '.join(_CATALOG)}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"dim must be an integer or None, got {type(dim).__name__}")
    if not entry.n_dimensional:
        landscape = entry.build()
        if dim is not None and dim != landscape.dim:
            raise ValueError(f"dim: landscape {name!r} is {landscape.dim}-D only, got dim={dim}")
        return landscape
    dim = 2 if dim is None else dim
    if dim < entry.min_dim:
        raise ValueError(f"dim: landscape {name!r} needs dim >= {entry.min_dim}, got {dim}")
    return entry.build(dim)
