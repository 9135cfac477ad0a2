"""Quickprop's step for a list of parameters (``foreach=True``), computed on flat tensors.

The step's tests and choices take 23 operations (Adam's step takes 8): as ``_foreach_``
operations each would pay a kernel call per tensor, which made this the slowest foreach step by
far (``benchmarks/foreach_ratio.py`` compares every method's with Adam's). Here instead:

* the two state buffers are kept as consecutive views of one flat tensor per list
  (:func:`flat_state`): made by the first foreach step, found again by every later one, and
  each parameter's state entry still a tensor of its own shape, so the state dict, the loop
  path and the inspector see what they always did;
* the gradients are concatenated (one ``torch.cat``);
* the step runs on blocks of ``BLOCK`` elements of the flat tensors, its temporaries in scratch
  buffers kept per thread and reused: so it allocates no temporaries, they stay in the cache,
  and the flat tensors are read and written about once (a fresh temporary the size of the
  parameters costs page faults that outweigh its arithmetic);
* the step goes back to the parameters with one list operation.

The block avoids comparisons and ``torch.where``, which run on this CPU's boolean tensors much
slower than float arithmetic: each test becomes a 0/1 mask built from ``sign`` and a
clamp, and each choice a product with a mask (``x * 1 = x`` and ``y * 0 = 0`` exactly, so the
choice is exact while the discarded value is finite). The secant the loop discards may not be
finite: where ``p = g`` (its denominator is made 1 first) and where it overflows (it is clamped to
the finite range). So the result equals the loop's (``quickprop.update``) bit for bit
(``tests/optim/test_foreach.py`` and ``test_quickprop.py``) unless ``mu * d`` or ``lr * g``
overflows, or a secant the loop takes does; a NaN gradient gives NaN steps, by other branches
(``sign`` reads NaN as 0). The step is built negated, ``-q - [dg <= 0] * (-lr g)``, because
``sign`` and a clamp give ``-[test]`` in one operation less than ``[test]``; negation is exact.
"""

from __future__ import annotations

import itertools
import threading

import torch
from torch import Tensor

from ._tensor_list import TensorList

#: Elements per block: four float32 temporaries of 256 KB, cache-sized on this machine's CPUs.
BLOCK = 1 << 16


class _Scratch(threading.local):
    """Each thread's temporaries, by (dtype, device): four rows of ``BLOCK`` elements."""

    def __init__(self) -> None:
        self.rows: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def get(self, like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in self.rows or self.rows[key].shape[1] < BLOCK:
            self.rows[key] = torch.empty((4, BLOCK), dtype=like.dtype, device=like.device)
        return self.rows[key]


_SCRATCH = _Scratch()


def flat_step(
    state, params: TensorList, grads: TensorList, lr: float, growth: float, shrink: float
) -> None:
    """One Quickprop step of the parameters ``params`` (one list of the foreach path), whose
    ``state`` (a ``StateList``) holds ``prev_grad`` and ``prev_update``."""
    sizes = [tensor.numel() for tensor in params.tensors]
    grad = torch.cat([t if t.dim() == 1 else t.reshape(-1) for t in grads.tensors])
    prev_grad = flat_state(state, "prev_grad", sizes)
    prev_update = flat_state(state, "prev_update", sizes)
    scratch = _SCRATCH.get(grad)
    largest = torch.finfo(grad.dtype).max
    for begin in range(0, grad.numel(), BLOCK):
        end = min(begin + BLOCK, grad.numel())
        g, p, d = grad[begin:end], prev_grad[begin:end], prev_update[begin:end]
        slope_product, minus_with_gradient, minus_uncapped, nonzero = scratch[:, : end - begin]
        torch.mul(d, g, out=slope_product)  # d g
        # -[d g <= 0]: sign(d g) - 1 is -2, -1 or 0; clamped to -1 it is -1 where d g <= 0.
        torch.sign(slope_product, out=minus_with_gradient).sub_(1).clamp_min_(-1)
        # -d (g - shrink p) = d (shrink p - g): negative exactly where the loop's test is positive.
        torch.mul(p, shrink, out=minus_uncapped).sub_(g).mul_(d)
        minus_uncapped.sign_().clamp_max_(0)  # -[d (g - shrink p) > 0]
        difference = p.sub_(g)  # p - g, in prev_grad's block, which takes g at the end
        torch.sign(difference, out=nonzero).abs_()  # [p != g] (finite p, g: p - g = 0 iff p = g)
        minus_uncapped.mul_(nonzero)  # -[not capped]
        difference.sub_(nonzero.sub_(1))  # p - g, and 1 where p = g: a finite secant everywhere
        secant = slope_product.div_(difference)
        # A secant the loop discards may still overflow (d g does first when a run diverges):
        # brought back to the largest finite number, it is finite and its product with 0 is 0.
        secant.clamp_(-largest, largest)
        minus_step = secant.mul_(minus_uncapped)  # -secant where not capped, else 0
        capped = minus_uncapped.add_(1)
        minus_step.addcmul_(d, capped, value=-growth)  # - mu d where capped
        minus_step.addcmul_(g, minus_with_gradient, value=-lr)  # - (-lr g) where d g <= 0
        torch.neg(minus_step, out=d)  # the step, prev_update from now on
        p.copy_(g)
    params.add_(TensorList(_parts(prev_update, params.tensors, sizes)))


def _parts(flat: Tensor, like: list[Tensor], sizes: list[int]) -> list[Tensor]:
    """Views of consecutive parts of ``flat``, shaped like the tensors ``like``."""
    return [
        part if part.shape == tensor.shape else part.view(tensor.shape)
        for part, tensor in zip(flat.split_with_sizes(sizes), like, strict=True)
    ]


def flat_state(state, key: str, sizes: list[int]) -> Tensor:
    """The parameters' ``key`` buffers as one flat tensor whose consecutive parts they are.

    The first foreach step (or the first after the buffers were replaced: a loaded state dict)
    copies them into one new tensor and stores its parts as the parameters' buffers; every later
    step finds them there and reads and writes the flat tensor in place, without a copy.
    """
    buffers = state[key].tensors
    flat = _consecutive_parts_of(buffers, sizes)
    if flat is None:
        flat = torch.cat([t.reshape(-1) for t in buffers])
        state[key] = TensorList(_parts(flat, buffers, sizes))
    return flat


def _consecutive_parts_of(tensors: list[Tensor], sizes: list[int]) -> Tensor | None:
    """The 1-D tensor whose consecutive contiguous parts ``tensors`` (of ``sizes`` elements)
    are, in order, or None."""
    base = tensors[0]._base
    if base is None or base.dim() != 1 or not base.is_contiguous():
        return None
    if base.numel() != sum(sizes) or any(t._base is not base for t in tensors):
        return None
    # By address, not storage offset alone: a part given new memory in place (``.data = ...``)
    # still names the flat tensor as its ``_base``, and a first part's new offset is 0 as well.
    start, width = base.data_ptr(), base.element_size()
    offsets = itertools.accumulate(sizes[:-1], initial=0)
    if [t.data_ptr() for t in tensors] != [start + offset * width for offset in offsets]:
        return None
    return base if all(t.is_contiguous() for t in tensors) else None
