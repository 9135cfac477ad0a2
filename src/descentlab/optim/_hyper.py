"""Hyperparameters that are Python numbers or tensors broadcasting against a parameter.

Every functional update in descentlab accepts each hyperparameter either as a Python number (the
path that reproduces torch.optim's arithmetic exactly) or as a tensor that broadcasts against the
parameter (K stacked runs, each with its own value). The few tensor operations whose scale factor
must be a Python number in torch (``add_(alpha=)``, ``addcdiv_(value=)``, ``addcmul_(value=)``) go
through the helpers below, so an algorithm is written once for both cases.

The checks turn bad arguments into errors that name the argument and the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import torch
from torch import Tensor

Hyper = float | Tensor


# ----------------------------------------------------------------------------- arithmetic


def add_(target: Tensor, source: Tensor, alpha: Hyper) -> Tensor:
    """``target += alpha * source`` in place."""
    if isinstance(alpha, Tensor):
        return target.add_(source * alpha)
    return target.add_(source, alpha=alpha)


def sub_(target: Tensor, source: Tensor, alpha: Hyper) -> Tensor:
    """``target -= alpha * source`` in place. A tensor ``alpha`` (per-run values) on a tensor
    target is one ``addcmul_`` with no temporaries: a fresh (runs, D) temporary costs page
    faults that outweigh the arithmetic in a 100,000-run race (measured: Adam's step with
    per-run learning rates took 2.4 ms against 0.6 ms with one shared number)."""
    if isinstance(alpha, Tensor):
        if isinstance(target, Tensor):
            return target.addcmul_(source, alpha, value=-1)
        return target.add_(source * -alpha)
    return target.add_(source, alpha=-alpha)


def subcdiv_(target: Tensor, numerator: Tensor, denominator: Tensor, value: Hyper) -> Tensor:
    """``target -= value * numerator / denominator`` in place (one temporary for a tensor
    ``value``, see :func:`sub_`)."""
    if isinstance(value, Tensor):
        return target.addcdiv_(numerator * value, denominator, value=-1)
    return target.addcdiv_(numerator, denominator, value=-value)


def addcdiv_(target: Tensor, numerator: Tensor, denominator: Tensor, value: Hyper) -> Tensor:
    """``target += value * numerator / denominator`` in place."""
    if isinstance(value, Tensor):
        return target.addcdiv_(numerator * value, denominator)
    return target.addcdiv_(numerator, denominator, value=value)


def addcmul_(target: Tensor, left: Tensor, right: Tensor, value: Hyper) -> Tensor:
    """``target += value * left * right`` in place."""
    if isinstance(value, Tensor):
        return target.addcmul_(left * value, right)
    return target.addcmul_(left, right, value=value)


def divide_temporary(temporary: Tensor, divisor: Hyper) -> Tensor:
    """``temporary / divisor``, in place on ``temporary`` (a tensor no one else holds) when the
    divisor is a number: the same values with one allocation less. A tensor divisor may promote
    the dtype (a float64 per-run value against a float32 parameter), so it gets a new tensor."""
    if isinstance(divisor, Tensor):
        return temporary / divisor
    return temporary.div_(divisor)


def multiply_temporary(temporary: Tensor, factor: Hyper) -> Tensor:
    """``temporary * factor``, in place on ``temporary`` when the factor is a number (see
    :func:`divide_temporary`)."""
    if isinstance(factor, Tensor):
        return temporary * factor
    return temporary.mul_(factor)


def is_nonzero(value: Hyper) -> bool:
    """Whether a hyperparameter switches its term on (any element nonzero for a tensor)."""
    if isinstance(value, Tensor):
        return bool(torch.any(value != 0))
    return value != 0


# ----------------------------------------------------------------------------- validation


def _describe(value: Hyper) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def check_number(name: str, value: object) -> None:
    """A hyperparameter must be a real number or a real floating-point tensor."""
    if isinstance(value, bool) or not isinstance(value, Real | Tensor):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.requires_grad:
            raise TypeError(f"{name} must not require grad")


def check_range(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless every element of ``value`` lies in the interval."""
    check_number(name, value)
    values = value.detach().flatten().tolist() if isinstance(value, Tensor) else [value]
    for element in values:
        too_low = element <= low if low_open else element < low
        too_high = element >= high if high_open else element > high
        if too_low or too_high or math.isnan(element):
            interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            where = f" (an element of {_describe(value)})" if isinstance(value, Tensor) else ""
            raise ValueError(f"Invalid {name}: {element}{where}; it must lie in {interval}")


def check_nonnegative(name: str, value: object) -> None:
    check_range(name, value, 0.0)


def check_betas(name: str, betas: object, count: int = 2) -> None:
    """``betas`` is a tuple of ``count`` values, each in [0, 1)."""
    if not isinstance(betas, tuple | list) or len(betas) != count:
        raise TypeError(f"{name} must be a tuple of {count} numbers, got {betas!r}")
    for index, beta in enumerate(betas):
        check_range(f"{name}[{index}]", beta, 0.0, 1.0, high_open=True)


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"Invalid {name}: {value!r}; choose one of {', '.join(map(repr, choices))}"
        )


def check_integer(name: str, value: object, low: int = 0, *, optional: bool = False) -> None:
    """A count or seed: an integer >= ``low`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        nothing = "None or " if optional else ""
        raise ValueError(f"Invalid {name}: {value!r}; it must be {nothing}an integer >= {low}")


def check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_broadcast(name: str, value: Tensor, param: Tensor, index: int) -> None:
    """A tensor hyperparameter must broadcast to the parameter's shape without growing it."""
    try:
        shape = torch.broadcast_shapes(value.shape, param.shape)
    except RuntimeError:
        shape = None
    if shape != param.shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast against parameter {index} "
            f"of shape {tuple(param.shape)}"
        )
    if value.device != param.device:
        raise ValueError(f"{name} is on {value.device} but parameter {index} is on {param.device}")


def add(target: Tensor, source: Tensor, alpha: Hyper) -> Tensor:
    """``target + alpha * source`` as a new tensor."""
    if isinstance(alpha, Tensor):
        return target + source * alpha
    return target.add(source, alpha=alpha)
