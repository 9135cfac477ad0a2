"""Small pieces of per-parameter state shared by several algorithms."""

from __future__ import annotations

import torch
from torch import Tensor

from ._hyper import Hyper, add, is_nonzero
from ._tensor_list import TensorList


def write_entry(state: dict, key: str, value: object) -> None:
    """``state[key] = value``, but into the tensor already there when ``value`` is a tensor of
    its shape, dtype and device: under a compiler the 0-d bookkeeping (a step-dependent number,
    the last loss) then stays the same tensor, and the fused path's graph returns no new tensor
    per parameter and step. Otherwise the entry becomes a copy of ``value`` (which may be shared:
    the caller's loss, another parameter's entry)."""
    current = state.get(key)
    if not isinstance(value, Tensor):
        state[key] = value
    elif isinstance(current, Tensor) and (current.shape, current.dtype, current.device) == (
        value.shape,
        value.dtype,
        value.device,
    ):
        current.copy_(value)
    else:
        state[key] = value.clone()


def scalar_dtype() -> torch.dtype:
    """The dtype torch.optim keeps step counters in: float64 under a float64 default, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def step_counter() -> Tensor:
    """A fresh step counter, a 0-d CPU tensor as in torch.optim (so state_dicts interchange)."""
    return torch.tensor(0.0, dtype=scalar_dtype())


def advance(state: dict) -> float | Tensor:
    """Count one more step in ``state['step']`` and return the new count (see :func:`count`)."""
    counter = state["step"]
    counter += 1
    return count(counter)


def count(counter: Tensor | TensorList) -> float | Tensor:
    """A step counter's value: a Python number, or, while torch.compile traces, a float64 0-d
    tensor, so that the compiled step neither breaks its graph on ``.item()`` nor bakes in the
    count (which would recompile it at every step). The updates compute with either. On the
    foreach path ``counter`` is the list of a bucket's counters, which all hold one count."""
    if torch.compiler.is_compiling():
        if isinstance(counter, TensorList):
            counter = counter.tensors[0]
        return counter.to(torch.float64)
    return counter.item()


def zeroed(param: Tensor, *names: str) -> dict[str, Tensor]:
    """A step counter and, for each name, a zero buffer shaped like ``param``."""
    state = {"step": step_counter()}
    for name in names:
        state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def decayed_gradient(
    grad: Tensor, param: Tensor, lr: Hyper, weight_decay: Hyper, decoupled: bool, maximize: bool
) -> Tensor:
    """The gradient the update sees, with weight decay applied one of the two ways.

    Decoupled (Loshchilov & Hutter, 2019, as torch scales it): shrink ``param`` by ``lr * wd`` in
    place and leave the gradient alone. Coupled: add ``wd * param`` to the gradient (L2).
    """
    if not decoupled:
        return apply_weight_decay(grad, param, weight_decay, maximize)
    if is_nonzero(weight_decay):
        param.mul_(1 - lr * weight_decay)
    return -grad if maximize else grad


def apply_weight_decay(grad: Tensor, param: Tensor, weight_decay: Hyper, maximize: bool) -> Tensor:
    """The gradient the update sees: negated when maximizing, plus coupled L2 decay ``wd * param``."""
    if maximize:
        grad = -grad
    if is_nonzero(weight_decay):
        grad = add(grad, param, weight_decay)
    return grad
