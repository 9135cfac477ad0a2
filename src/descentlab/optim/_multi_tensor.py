"""The multi-tensor (``foreach=True``) path: one algorithm, written once, run over lists of tensors.

The body of an elementwise update's per-parameter loop runs once for a whole bucket of alike
parameters, over :class:`~._tensor_list.TensorList` and :class:`~._tensor_list.StateList`
(see ``_tensor_list``): each tensor operation becomes one call of torch's ``_foreach_`` kernels.
Where a body would take many more passes over lists than needed (per-tensor comparisons, or
number factors applied one pass each), the algorithm checks ``isinstance(param, TensorList)`` and
takes a foreach form of the same formula: RAdam, Adadelta and Quickprop do (see each one's notes
on how its result compares with the loop's).

The body sees one step count and one value of every scalar state entry (Schedule-Free's ``lr_max``,
ASGD's ``eta``), so :func:`multi_tensor_update` first splits the parameters into buckets that agree
on them (and on device and dtype, as torch's foreach path does); after the first step a group is
usually one bucket (plus one per 0-d parameter). Tensor hyperparameters (per-run or per-coordinate
values) broadcast differently against each parameter; :func:`applies` sends those groups to the
single-tensor loop.

Finding the buckets reads every scalar entry of every state (a ``.item()`` per step counter): 2 to
5 ms a step for 1000 parameters, as much as Adam's arithmetic on 1000 tensors of 1000 floats. A
:class:`BucketCache` (one per param group) keeps the buckets between steps and checks cheaply
that what they were computed from is unchanged: the same parameters in the same order, with the
same dtypes, the same state dicts with as many entries, and the same scalar entries (the same
objects, 0-d tensors not written since the last step: their version counters). The update itself
keeps a bucket alike (it treats every member the same way), so anything else that changes those
(a parameter without a gradient this step, ``load_state_dict``, a state entry assigned or written
in place from outside) makes the next step compute the buckets again.

The design follows torch.optim's ``_foreach`` implementations (torch/optim/adam.py,
``_multi_tensor_adam``) in what it calls, but not in how: torch writes each algorithm a second
time for lists, descentlab runs the one body over lists.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._tensor_list import StateList, TensorList

# C-level readers for the per-step checks of the cache (a Python loop over 1000 parameters costs
# a visible part of a small step).
_DTYPE = operator.attrgetter("dtype")
_VERSION = operator.attrgetter("_version")
# A tensor given new memory in place (``step.data = ...``) keeps its object and version counter.
_DATA_PTR = torch._C.TensorBase.data_ptr

__all__ = [
    "BucketCache",
    "StateList",
    "TensorList",
    "applies",
    "has_tensor_hyperparameter",
    "multi_tensor_update",
]


def _bucket_key(index: int, param: Tensor, grad: Tensor, state: dict[str, Any]) -> tuple:
    """What the elements of one list must share: device, dtypes and every scalar state entry.

    A 0-d parameter's buffers are 0-d too and would read as scalar entries: it steps alone.
    """
    if param.dim() == 0:
        return ("alone", index)
    scalars = tuple(
        (key, None)
        if value is None
        else (key, value.item())
        if isinstance(value, Tensor) and value.dim() == 0
        else (key, value.dtype)
        if isinstance(value, Tensor)
        else (key, value)
        for key, value in state.items()
    )
    return (param.device, param.dtype, grad.dtype, scalars)


def _is_scalar_entry(value: Any) -> bool:
    """Whether a state entry reads as one value per bucket: None, a number or a 0-d tensor."""
    return not isinstance(value, Tensor) or value.dim() == 0


@dataclass
class _Bucket:
    """Parameters that step together: their positions in the group's list, and the state keys
    whose values they share (step counters, numbers, None)."""

    indices: list[int]
    scalar_keys: tuple[str, ...]
    #: For each scalar key: the entry of every member as last seen (the objects themselves).
    values: list[list[Any]]
    #: For each scalar key holding 0-d tensors: their version counters and data pointers as last
    #: seen (a tensor given new memory in place keeps both object and counter), else None.
    versions: list[tuple[list[int], list[int]] | None]


def _find_buckets(params: list[Tensor], grads: list[Tensor], states: list[dict]) -> list[_Bucket]:
    members: dict[tuple, list[int]] = {}
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        members.setdefault(_bucket_key(index, param, grad, state), []).append(index)
    buckets = []
    for indices in members.values():
        first = states[indices[0]]
        keys = tuple(key for key, value in first.items() if _is_scalar_entry(value))
        buckets.append(_Bucket(indices, keys, [], []))
    return buckets


def _read_entries(bucket: _Bucket, states: list[dict]) -> tuple[list, list] | None:
    """The bucket's scalar entries and version counters now; None if one is no longer a scalar
    entry (SGD's momentum buffer after the first step) or is missing."""
    values, versions = [], []
    for key in bucket.scalar_keys:
        try:
            entries = list(map(operator.itemgetter(key), map(states.__getitem__, bucket.indices)))
        except KeyError:
            return None
        first = entries[0]
        if isinstance(first, Tensor):
            if first.dim() != 0:
                return None
            versions.append((list(map(_VERSION, entries)), list(map(_DATA_PTR, entries))))
        else:
            versions.append(None)
        values.append(entries)
    return values, versions


def _same_objects(left: Sequence[Any], right: Sequence[Any]) -> bool:
    return len(left) == len(right) and all(map(operator.is_, left, right))


class BucketCache:
    """The buckets of one param group, kept between steps (see the module's docstring)."""

    __slots__ = ("buckets", "dtypes", "params", "sizes", "states")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.params: list[Tensor] = []
        self.states: list[dict] = []
        self.dtypes: list[torch.dtype] = []
        self.sizes: list[int] = []
        self.buckets: list[_Bucket] | None = None

    def buckets_for(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> list[_Bucket]:
        """The buckets of this step: the cached ones if still valid, else computed afresh."""
        if self.buckets is None or not self._still_valid(params, states):
            self.params, self.states = list(params), list(states)
            self.dtypes = list(map(_DTYPE, params))
            self.sizes = list(map(len, states))
            self.buckets = _find_buckets(params, grads, states)
        return self.buckets

    def _still_valid(self, params: list[Tensor], states: list[dict]) -> bool:
        if not (_same_objects(params, self.params) and _same_objects(states, self.states)):
            return False
        if list(map(_DTYPE, params)) != self.dtypes:
            return False
        if list(map(len, states)) != self.sizes:
            return False
        for bucket in self.buckets:
            now = _read_entries(bucket, states)
            if now is None:
                return False
            values, versions = now
            if versions != bucket.versions:
                return False
            for entries, seen in zip(values, bucket.values, strict=True):
                # Tensors by identity (their values by the version counters), numbers by value.
                if not all(map(operator.is_, entries, seen)) and entries != seen:
                    return False
        return True

    def remember(self, states: list[dict]) -> None:
        """Record the scalar entries as the update left them (it writes the step counters)."""
        for bucket in self.buckets or ():
            now = _read_entries(bucket, states)
            if now is None:
                self.buckets = None  # an entry changed kind: find the buckets again next step
                return
            bucket.values, bucket.versions = now
        self.sizes = list(map(len, states))


def multi_tensor_update(
    update: Callable[..., None],
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    cache: BucketCache | None = None,
    /,
    **hyperparameters: Any,
) -> None:
    """Run ``update`` (a functional update of descentlab) once per bucket of alike parameters.

    Each call sees one-element lists ``[TensorList]``, ``[TensorList]``, ``[StateList]``, so the
    body of the update's per-parameter loop runs once over the whole bucket. ``cache`` (the
    group's :class:`BucketCache`) spares finding the buckets again at every step; while
    torch.compile traces, it is not used.
    """
    if cache is None or torch.compiler.is_compiling():
        buckets = _find_buckets(params, grads, states)
        cache = None
    else:
        buckets = cache.buckets_for(params, grads, states)
    kept_uniform = True
    for bucket in buckets:
        indices = bucket.indices
        # The step counters (0-d tensors shared by the bucket) hold one value in every member.
        first = states[indices[0]]
        uniform = [key for key in bucket.scalar_keys if isinstance(first[key], Tensor)]
        if len(indices) == 1:
            uniform = []  # nothing to share; a 0-d parameter's 0-d buffers are not counters
        if len(indices) == len(params):
            members = (params, grads, states)
        else:
            members = tuple([items[i] for i in indices] for items in (params, grads, states))
        state_list = StateList(members[2], uniform)
        update([TensorList(members[0])], [TensorList(members[1])], [state_list], **hyperparameters)
        kept_uniform = kept_uniform and state_list.kept_uniform()
    if cache is not None:
        if kept_uniform:
            cache.remember(states)
        else:
            cache.clear()  # a step counter may now differ within a bucket: read them all again


def has_tensor_hyperparameter(hyperparameters: dict[str, Any]) -> bool:
    """Whether any hyperparameter (or an entry of a tuple such as ``betas``) is a tensor."""
    return any(
        isinstance(part, Tensor)
        for value in hyperparameters.values()
        for part in (value if isinstance(value, tuple | list) else (value,))
    )


def applies(foreach: bool | None, params: Sequence[Tensor], hyperparameters: dict) -> bool:
    """Whether to take the multi-tensor path.

    ``foreach=None`` means torch's default: on when every parameter is a CUDA tensor. Groups with
    tensor hyperparameters always take the single-tensor loop, whose broadcasting they need.
    """
    wanted = all(param.is_cuda for param in params) if foreach is None else bool(foreach)
    return wanted and not has_tensor_hyperparameter(hyperparameters)
