"""The compiled fused path's arguments, built once and kept between steps (see ``_fused``).

The compiled update takes chunks of parameters, each parameter, gradient and parameter-shaped
state buffer as a 1-D alias of its memory. Building those aliases and the chunks' argument lists
anew at every step cost about 3 us per tensor (a third of RMSprop's per-call overhead on 100
tensors, profiled). A :class:`ChunkCache` (one per param group) builds them once and checks at
every step, cheaply, that they still stand for the group's tensors:

* the same parameters and state dicts, in the same order, on the same memory (their data
  pointers: ``param.data = ...`` moves a parameter), with as many numbers, contiguous;
* every state entry still the object it was after the last step, each tensor on the same memory:
  an entry assigned from outside (or by ``load_state_dict``, which also drops the cache) or
  moved in place (``value.data = value.data.to(...)``) makes the next step build again;
* each gradient contiguous, of its parameter's size, on the memory its alias points to: a
  gradient replaced by a new tensor (``zero_grad(set_to_none=True)`` gives new ones at every
  step) re-points its own alias only.

A gradient's alias does not keep a dropped gradient's memory alive: a weak reference to the
gradient empties the alias (and forgets its pointer) when the gradient is freed.

Entries the update assigns (rather than changes in place: none of the library's updates does
since their 0-d bookkeeping is written in place, but an optimizer of a user's may) are copied
into the parameter's state after every call, as :func:`write_back` says.
"""

from __future__ import annotations

import functools
import operator
import weakref
from collections.abc import Callable
from itertools import chain
from typing import Any

import torch
from torch import Tensor


def flat_alias(tensor: Tensor) -> Tensor:
    """A 1-D tensor on ``tensor``'s memory that is not a view of it: torch.compile traces a view
    from its base, whose rank it would then guard on (one graph per rank)."""
    alias = tensor.new_empty(0)
    return _point(alias, tensor)


def _point(alias: Tensor, tensor: Tensor) -> Tensor:
    """Make ``alias`` the 1-D tensor over ``tensor``'s (contiguous) memory."""
    return alias.set_(tensor.untyped_storage(), tensor.storage_offset(), (tensor.numel(),), (1,))


# Unbound methods of the C tensor type: faster than ``methodcaller``, which looks each name up
# through ``Tensor``'s attributes.
_DATA_PTR = torch._C.TensorBase.data_ptr
_NUMEL = torch._C.TensorBase.numel
_IS_CONTIGUOUS = torch._C.TensorBase.is_contiguous
_GRAD_POINTER = operator.attrgetter("grad_pointer")
_SEEN = operator.attrgetter("seen")
_TENSORS = operator.attrgetter("tensors")
_POINTERS = operator.attrgetter("pointers")

#: What ``dict.get`` gives for a key that is not there (None may be an entry's value).
_MISSING = object()


def _grad_freed(member_ref: weakref.ref, _grad_ref: weakref.ref) -> None:
    member = member_ref()
    if member is not None:
        member.release_grad()


class Member:
    """One parameter of a chunk: its aliases, the state dict handed to the update, and what its
    state held after the last step."""

    __slots__ = (
        "__weakref__",
        "flat_grad",
        "flat_param",
        "flat_state",
        "grad_pointer",
        "grad_watch",
        "handed",
        "on_grad_freed",
        "pointers",
        "seen",
        "shape",
        "state",
        "tensors",
    )

    def __init__(self, param: Tensor, grad: Tensor, state: dict, flat_state: dict) -> None:
        self.shape = param.shape
        self.state = state
        self.flat_param = flat_alias(param)
        self.flat_grad = param.new_empty(0)
        self.flat_state = flat_state
        self.on_grad_freed = functools.partial(_grad_freed, weakref.ref(self))
        self.point_grad(grad)
        self.remember()

    def point_grad(self, grad: Tensor) -> None:
        _point(self.flat_grad, grad)
        self.grad_pointer = grad.data_ptr()
        self.grad_watch = weakref.ref(grad, self.on_grad_freed)

    def release_grad(self) -> None:
        self.flat_grad.set_()
        self.grad_pointer = None

    def remember(self) -> None:
        """Take note of the entries of both state dicts, as handed to the next call."""
        self.handed = dict(self.flat_state)
        self.taken()

    def take(self, key: str, value: Any) -> None:
        """Put what the update assigned to ``key`` (in the state handed to it) into the
        parameter's state, a parameter-sized tensor in the parameter's shape; call :meth:`taken`
        after the last one."""
        self.flat_state[key] = self.handed[key] = value
        if (
            isinstance(value, Tensor)
            and value.dim() == 1
            and value.numel() == self.flat_param.numel()
        ):
            value = value.view(self.shape)
        self.state[key] = value

    def taken(self) -> None:
        """Take note of the parameter's state entries, and of its tensors' memory: a tensor
        given new memory in place (``value.data = value.data.to(...)``) is the same object."""
        self.seen = tuple(self.state.values())
        self.tensors = tuple(value for value in self.seen if isinstance(value, Tensor))
        self.pointers = tuple(map(_DATA_PTR, self.tensors))

    def write_back(self) -> None:
        """Entries the update assigned (rather than changed in place) into the state handed to it
        go into the parameter's state: a parameter-sized one in the parameter's shape, a Python
        number as a 0-d tensor (so that a new value does not compile the update again)."""
        flat_state, handed = self.flat_state, self.handed
        if len(flat_state) == len(handed) and all(
            map(operator.is_, flat_state.values(), handed.values())
        ):
            return
        like = self.flat_param
        for key in handed.keys() - flat_state.keys():  # deleted by the update
            del handed[key]
            self.state.pop(key, None)
        for key, value in flat_state.items():
            if value is handed.get(key, _MISSING):
                continue
            if isinstance(value, float):
                value = torch.tensor(value, dtype=like.dtype, device=like.device)
            self.take(key, value)
        self.taken()


def flat_member(param: Tensor, grad: Tensor, state: dict[str, Any]) -> Member | None:
    """The aliases of a parameter, its gradient and its parameter-shaped state buffers, so that
    one compiled graph serves parameters of every rank; None where that is not possible (a
    non-contiguous tensor, or a 0-d parameter, whose buffers look like its step counter)."""
    if param.dim() == 0 or not (param.is_contiguous() and grad.is_contiguous()):
        return None
    flat_state = {}
    for key, value in state.items():
        if isinstance(value, Tensor) and value.shape == param.shape:
            if not value.is_contiguous():
                return None
            value = flat_alias(value)
        flat_state[key] = value
    return Member(param, grad, state, flat_state)


class Chunk:
    """The arguments of one call of the compiled update."""

    __slots__ = ("grads", "members", "params", "runner", "states")

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.params = [member.flat_param for member in members]
        self.grads = [member.flat_grad for member in members]
        self.states = [member.flat_state for member in members]
        #: The compiled graph that steps this chunk and its argument list (``_fused_graph``).
        self.runner: Any = None


class ChunkCache:
    """A param group's chunks, kept between steps (see the module's docstring)."""

    __slots__ = ("alone", "by_position", "chunks", "numels", "param_pointers", "params", "states")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.params: list[Tensor] = []
        self.states: list[dict] = []
        self.param_pointers: list[int] = []
        #: For each parameter its Member, or None where it steps alone in its own shape.
        self.by_position: list[Member | None] = []
        #: Positions of the parameters that step alone.
        self.alone: list[int] = []
        #: Numbers in each member's parameter, in order.
        self.numels: list[int] = []
        self.chunks: list[Chunk] | None = None

    def build(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict],
        split: Callable[[int], list[int]],
    ) -> list[Chunk]:
        """Aliases and chunks for these tensors: ``split(count)`` gives the sizes of the chunks
        of ``count`` flattened parameters (``_fused.chunk_sizes``)."""
        self.clear()
        self.params, self.states = list(params), list(states)
        self.param_pointers = list(map(_DATA_PTR, params))
        self.by_position = [
            flat_member(param, grad, state)
            for param, grad, state in zip(params, grads, states, strict=True)
        ]
        self.alone = [index for index, member in enumerate(self.by_position) if member is None]
        members = [member for member in self.by_position if member is not None]
        self.numels = [member.flat_param.numel() for member in members]
        self.chunks, start = [], 0
        for size in split(len(members)):
            self.chunks.append(Chunk(members[start : start + size]))
            start += size
        if start != len(members):
            raise ValueError(f"chunk sizes cover {start} of {len(members)} parameters")
        return self.chunks

    def reuse(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> list[Chunk] | None:
        """The chunks for this step if the tensors they stand for are unchanged (gradients
        replaced by new ones are re-pointed); None if they must be built again."""
        if self.chunks is None or not (
            len(params) == len(self.params)
            and all(map(operator.is_, params, self.params))
            and all(map(operator.is_, states, self.states))
            and list(map(_DATA_PTR, params)) == self.param_pointers
        ):
            return None
        members = self.by_position
        if self.alone:  # leave out the parameters that step alone (None in by_position)
            kept = [index for index, member in enumerate(members) if member is not None]
            members = [members[index] for index in kept]
            params = [params[index] for index in kept]
            grads = [grads[index] for index in kept]
            states = [states[index] for index in kept]
        # C-level maps over the members (on 1000 small tensors a Python loop over them cost as
        # much as the compiled step), then a loop over the gradients that moved, if any. The
        # states hold what they held after the last step: as many entries each, the same objects,
        # their tensors on the same memory. Parameters and gradients keep their sizes and stay
        # contiguous (a transposed one on the same memory would be read in the wrong order).
        seen = list(map(_SEEN, members))
        if (
            list(map(len, states)) != list(map(len, seen))
            or not all(
                map(
                    operator.is_,
                    chain.from_iterable(map(dict.values, states)),
                    chain.from_iterable(seen),
                )
            )
            or list(map(_DATA_PTR, chain.from_iterable(map(_TENSORS, members))))
            != list(chain.from_iterable(map(_POINTERS, members)))
        ):
            return None
        numels = list(map(_NUMEL, params))
        if (
            numels != self.numels
            or list(map(_NUMEL, grads)) != numels
            or not all(map(_IS_CONTIGUOUS, params))
            or not all(map(_IS_CONTIGUOUS, grads))
        ):
            return None
        pointers = list(map(_DATA_PTR, grads))
        if pointers != list(map(_GRAD_POINTER, members)):
            for member, grad, pointer in zip(members, grads, pointers, strict=True):
                if pointer == member.grad_pointer:
                    continue
                if grad.dtype != member.flat_param.dtype:
                    return None
                member.point_grad(grad)
        return self.chunks
