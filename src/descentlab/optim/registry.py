"""The registry: every optimizer descentlab knows, by key.

The lab, the arena and the course read facts about algorithms only from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from .spec import Spec

_SPECS: dict[str, Spec] = {}


def register(*specs: Spec) -> None:
    for entry in specs:
        if entry.key in _SPECS:
            raise ValueError(f"optimizer {entry.key!r} is registered twice")
        _SPECS[entry.key] = entry


def names(family: str | None = None) -> list[str]:
    """Registry keys in teaching order; ``family`` ("classic", "modern") keeps one family."""
    keys = list(_SPECS)
    if family is None:
        return keys
    families = sorted({entry.family for entry in _SPECS.values()})
    if family not in families:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(families)}")
    return [key for key in keys if _SPECS[key].family == family]


def spec(name: str) -> Spec:
    """The :class:`Spec` of a registry key."""
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {type(name).__name__}")
    try:
        return _SPECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(_SPECS)}") from None


def create(name: str, params: Iterable[Any], **hyperparameters: Any) -> Any:
    """Build the optimizer ``name`` over ``params``.

    Hyperparameters not given take the spec's defaults (``momentum`` is SGD with momentum 0.9);
    they may be given by constructor name (``betas=(0.9, 0.99)``) or spec name (``beta2=0.99``).
    The implementation switches ``foreach`` and ``fused`` pass through to the class, which checks
    whether it has them.
    """
    entry = spec(name)
    switches = {
        key: hyperparameters.pop(key) for key in IMPLEMENTATION_SWITCHES if key in hyperparameters
    }
    factory_arguments = inspect.signature(entry.factory).parameters
    for key in switches:
        if key not in factory_arguments:
            raise ValueError(f"{name} ({entry.factory.__name__}) has no {key} argument")
    return entry.factory(params, **entry.kwargs(hyperparameters), **switches)


#: Arguments that choose how an algorithm is computed, not what: not in the specs.
IMPLEMENTATION_SWITCHES = ("foreach", "fused")
