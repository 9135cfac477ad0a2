"""Stack dimensions: many independent runs in one tensor.

The rule, the same for every algorithm: in a param group with ``stack_dims = s``, the first ``s``
dimensions of every parameter index independent runs (a stack of shape ``S``), and the remaining
dimensions are the run's own coordinates. Every parameter of the group must share the stack shape
``S``. Elementwise updates need nothing from this; any reduction (a norm, a dot product, a line
search, a Hessian solve) runs per slice, and its result has shape ``S`` padded with singleton
dimensions so that it broadcasts back against the parameter.

With ``s = 0`` the whole group is a single run, exactly as in torch.optim.

Per-run hyperparameters: a tensor hyperparameter whose shape is exactly the stack shape ``S`` (for
example ``(K,)``) holds one value per run and applies to every parameter of the group, whatever the
parameter's rank (:func:`fit` shapes it against each one). Every other tensor broadcasts against
the parameters as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def stack_shape(params: Sequence[Tensor], stack_dims: int) -> torch.Size:
    """The stack shape shared by ``params``; ``ValueError`` when they disagree."""
    if not isinstance(stack_dims, int) or isinstance(stack_dims, bool) or stack_dims < 0:
        raise ValueError(f"Invalid stack_dims: {stack_dims!r}; it must be an integer >= 0")
    shape = None
    for index, param in enumerate(params):
        if param.dim() < stack_dims:
            raise ValueError(
                f"stack_dims={stack_dims} but parameter {index} has only {param.dim()} dimensions"
            )
        own = param.shape[:stack_dims]
        if shape is None:
            shape = own
        elif own != shape:
            raise ValueError(
                f"parameters of one group must share their stack shape: parameter {index} has "
                f"{tuple(own)}, an earlier one {tuple(shape)}"
            )
    return shape if shape is not None else torch.Size()


def is_per_run(value: object, stack: torch.Size) -> bool:
    """Whether ``value`` is a per-run hyperparameter of a stack of shape ``stack`` (or holds one)."""
    if isinstance(value, tuple | list):
        return any(is_per_run(part, stack) for part in value)
    return bool(stack) and isinstance(value, Tensor) and value.shape == stack


def fit(value: Any, like: Tensor, stack_dims: int) -> Any:
    """A per-run hyperparameter (shape ``S``) viewed as ``S + (1,) * k`` to broadcast against
    ``like``; any other value as it is (tuples element by element)."""
    if isinstance(value, tuple):
        return tuple(fit(part, like, stack_dims) for part in value)
    if stack_dims and isinstance(value, Tensor) and value.shape == like.shape[:stack_dims]:
        return value.reshape(value.shape + (1,) * (like.dim() - stack_dims))
    return value


def _reduced_dims(tensor: Tensor, stack_dims: int) -> list[int]:
    return list(range(stack_dims, tensor.dim()))


def slice_sum(tensor: Tensor, stack_dims: int) -> Tensor:
    """Sum over each run's own coordinates; the result broadcasts against ``tensor``."""
    dims = _reduced_dims(tensor, stack_dims)
    return tensor.sum(dim=dims, keepdim=True) if dims else tensor.clone()


def slice_dot(left: Tensor, right: Tensor, stack_dims: int) -> Tensor:
    """Per-run dot product of two tensors of the same shape, broadcastable against them."""
    return slice_sum(left * right, stack_dims)


def slice_norm(tensor: Tensor, stack_dims: int) -> Tensor:
    """Per-run Euclidean norm, broadcastable against ``tensor``."""
    dims = _reduced_dims(tensor, stack_dims)
    if not dims:
        return tensor.abs()
    return torch.linalg.vector_norm(tensor, dim=dims, keepdim=True)


def as_stack(value: Tensor, stack_dims: int) -> Tensor:
    """Drop the singleton run-coordinate dimensions of a per-slice result: shape ``S``."""
    return value.reshape(value.shape[:stack_dims])


def expand_to(value: Tensor, target: Tensor) -> Tensor:
    """View a stack-shaped value (shape ``S``) so it broadcasts against ``target``."""
    return value.reshape(value.shape + (1,) * (target.dim() - value.dim()))


def flatten(tensors: Sequence[Tensor], stack_dims: int) -> Tensor:
    """Concatenate every run's coordinates of all tensors: shape ``S + (D,)``."""
    shape = stack_shape(tensors, stack_dims)
    return torch.cat([t.reshape(*shape, -1) for t in tensors], dim=-1)


def unflatten(flat: Tensor, like: Sequence[Tensor], stack_dims: int) -> list[Tensor]:
    """Split a ``S + (D,)`` tensor back into tensors shaped like ``like``."""
    sizes = [math.prod(t.shape[stack_dims:]) for t in like]
    pieces = torch.split(flat, sizes, dim=-1)
    return [piece.reshape(t.shape) for piece, t in zip(pieces, like, strict=True)]
