"""Turn a race's request (optimizer entries, start points) into stacked runs.

Every optimizer entry is crossed with every start, except that a hyperparameter given as a list or
a 1-D tensor of N values makes its entry N runs, the i-th with the i-th value; those runs pair with
the starts one to one when the starts number N too (a sweep where each run has its own start), and
are crossed with them otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import optim
from ..optim.spec import Spec


@dataclass(frozen=True)
class Entry:
    """One optimizer entry of a race, expanded to its runs (R of them).

    ``kwargs`` are constructor arguments in which every per-run value is a tensor of shape (R,);
    ``values`` keeps, per hyperparameter name as the user gave it, a tensor (R,) of the runs' values.
    """

    key: str
    spec: Spec
    kwargs: dict[str, Any]
    values: dict[str, Tensor]
    fixed: dict[str, Any]
    starts: Tensor

    @property
    def runs(self) -> int:
        return self.starts.shape[0]

    def shared_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters every run of the entry shares: the spec's defaults, then the
        values the user gave as single numbers, by the spec's name (``beta1``) or by the
        constructor's (``betas``, which then also gives ``beta1`` and ``beta2``)."""
        shared: dict[str, Any] = {}
        for h in self.spec.hyperparameters:
            if h.name in self.fixed:
                continue
            given = self.fixed.get(h.argument) if h.argument != h.name else None
            if given is not None and h.index is not None and isinstance(given, tuple | list):
                shared[h.name] = given[h.index] if h.index < len(given) else h.default
            elif given is not None and h.index is None:
                shared[h.name] = given
            else:
                shared[h.name] = h.default
        shared.update(self.fixed)
        return shared


def _is_sweep(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dim() == 1
    return isinstance(value, list)


def _sweep_values(name: str, value: Any, dtype: torch.dtype) -> Tensor:
    try:
        values = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: a swept hyperparameter must be a list of numbers") from None
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"{name}: a swept hyperparameter must be a non-empty 1-D list of numbers")
    return values


def _number(text: str) -> int | float:
    """``"20"`` as the integer 20 (counts such as max_iter must stay integers), else a float."""
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    return int(text) if digits.isdigit() else float(text)


def parse_entry(item: Any) -> tuple[str, dict[str, Any]]:
    """``"adam"`` or ``("adam", {"lr": 0.1})`` or ``"sgd:lr=0.01"`` to (key, hyperparameters)."""
    if isinstance(item, str):
        key, _, assignments = item.partition(":")
        hyperparameters: dict[str, Any] = {}
        for assignment in filter(None, assignments.split(",")):
            name, equals, text = assignment.partition("=")
            if not equals or not name.strip():
                raise ValueError(
                    f"{item!r}: write hyperparameters as name=value, got {assignment!r}"
                )
            try:
                hyperparameters[name.strip()] = _number(text)
            except ValueError:
                raise ValueError(
                    f"{item!r}: {name.strip()} must be a number, got {text!r}"
                ) from None
        return key.strip(), hyperparameters
    if isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], Mapping):
        key, hyperparameters = item
        if not isinstance(key, str):
            raise TypeError(f"optimizer name must be a string, got {type(key).__name__}")
        return key, dict(hyperparameters)
    raise TypeError(f"an optimizer entry is a name or a (name, hyperparameters) pair, got {item!r}")


def expand(item: Any, starts: Tensor) -> Entry:
    """The runs of one optimizer entry against the race's start points (M, D)."""
    key, given = parse_entry(item)
    entry_spec = optim.spec(key)
    dtype = starts.dtype
    swept = {name: _sweep_values(name, v, dtype) for name, v in given.items() if _is_sweep(v)}
    lengths = {name: values.numel() for name, values in swept.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name} has {count}" for name, count in lengths.items())
        raise ValueError(f"{key}: swept hyperparameters must have the same length ({detail})")
    sweep = next(iter(lengths.values()), 1)
    count = starts.shape[0]
    paired = swept and sweep == count
    if paired:
        run_starts, per_run = starts, {name: values for name, values in swept.items()}
    else:
        run_starts = starts.repeat(sweep, 1)
        per_run = {name: values.repeat_interleave(count) for name, values in swept.items()}
    fixed = {name: value for name, value in given.items() if name not in swept}
    kwargs = entry_spec.kwargs({**fixed, **per_run})
    return Entry(key, entry_spec, kwargs, per_run, fixed, run_starts.clone())
