"""The multi-tensor (``foreach=True``) path: one algorithm, written once, run over lists of tensors.

Every elementwise update in descentlab is a loop whose body reads one parameter, its gradient and
its state. This module runs that same body once for a whole list: :class:`TensorList` holds the
list and turns each tensor operation of the body into one call of torch's multi-tensor kernels
(``torch._foreach_add_``, ``_foreach_lerp_``, ``_foreach_addcdiv_`` ...), and :class:`StateList`
shows a list of per-parameter state dicts as one dict of lists. An operation without a
``_foreach_`` form (comparisons, ``torch.where``, ``clamp``) runs tensor by tensor, so every body
works; the common ones take the fast form. On the CPU torch's ``_foreach_`` kernels apply the same
per-tensor kernels in a C++ loop, so the results are bit-identical to the single-tensor loop; on
CUDA they are fused kernels whose float rounding may differ in the last bit.

The body sees one step count and one value of every scalar state entry (Schedule-Free's ``lr_max``,
ASGD's ``eta``), so :func:`multi_tensor_update` first splits the parameters into buckets that agree
on them (and on device and dtype, as torch's foreach path does); after the first step a group is
usually one bucket (plus one per 0-d parameter). Tensor hyperparameters (per-run or per-coordinate values) broadcast differently
against each parameter; :func:`applies` sends those groups to the single-tensor loop.

The design follows torch.optim's ``_foreach`` implementations (torch/optim/adam.py,
``_multi_tensor_adam``) in what it calls, but not in how: torch writes each algorithm a second
time for lists, descentlab runs the one body over lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from numbers import Number
from typing import Any

import torch
from torch import Tensor


class TensorList:
    """A list of tensors that computes like one tensor: each operation applies to every element.

    Arithmetic with Python numbers or with another ``TensorList`` of the same length goes through
    ``torch._foreach_<name>`` when torch has that form; anything else runs element by element
    (a plain tensor or any other argument is then given unchanged to every element). In-place
    methods return the list itself, as tensors do. Attributes that are the same for every element
    (``dtype``, ``device``, ``dim()``, ``item()``) read as one value and are refused otherwise.
    """

    __slots__ = ("tensors",)

    def __init__(self, tensors: Iterable[Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return f"TensorList({len(self.tensors)} tensors)"

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a TensorList is ambiguous: it holds many tensors")

    # -- values every element shares --------------------------------------------------------

    def _common(self, name: str, values: Sequence[Any]) -> Any:
        first = values[0]
        if any(value != first for value in values[1:]):
            raise ValueError(f"{name} differs between the tensors of a TensorList")
        return first

    def item(self) -> Any:
        return self._common("item()", [tensor.item() for tensor in self.tensors])

    def dim(self) -> int:
        return self._common("dim()", [tensor.dim() for tensor in self.tensors])

    @property
    def dtype(self) -> torch.dtype:
        return self._common("dtype", [tensor.dtype for tensor in self.tensors])

    @property
    def device(self) -> torch.device:
        return self._common("device", [tensor.device for tensor in self.tensors])

    # -- operations ---------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        if not callable(getattr(Tensor, name, None)):
            raise AttributeError(f"TensorList has no attribute {name!r}")

        def method(*args: Any, **kwargs: Any) -> Any:
            return _apply(name, getattr(Tensor, name), (self, *args), kwargs)

        return method

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = dict(kwargs or {})
        out = kwargs.pop("out", None)
        name = getattr(func, "__name__", "")
        if out is not None and out is args[0] and not kwargs:
            # torch.maximum(a, b, out=a) is a's in-place update.
            return _apply(name + "_", func, args, {"out": out}, in_place=True)
        if out is not None:
            kwargs["out"] = out
        return _apply(name, func, args, kwargs)

    def __neg__(self) -> TensorList:
        return self.neg()

    def __abs__(self) -> TensorList:
        return self.abs()

    def __add__(self, other: Any) -> TensorList:
        return self.add(other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> TensorList:
        return self.sub(other)

    def __rsub__(self, other: Any) -> TensorList:
        # other - x is exactly (-x) + other in IEEE arithmetic.
        return self.neg().add_(other)

    def __mul__(self, other: Any) -> TensorList:
        return self.mul(other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> TensorList:
        return self.div(other)

    def __rtruediv__(self, other: Any) -> TensorList:
        return _elementwise(lambda tensor: other / tensor, (self,), {})

    def __pow__(self, other: Any) -> TensorList:
        return self.pow(other)

    def __iadd__(self, other: Any) -> TensorList:
        return self.add_(other)

    def __isub__(self, other: Any) -> TensorList:
        return self.sub_(other)

    def __imul__(self, other: Any) -> TensorList:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> TensorList:
        return self.div_(other)

    def _compare(self, other: Any, operator: Callable[[Tensor, Any], Tensor]) -> TensorList:
        return _elementwise(operator, (self, other), {})

    def __lt__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__lt__)

    def __le__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__le__)

    def __gt__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__gt__)

    def __ge__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__ge__)

    def __eq__(self, other: Any) -> TensorList:  # type: ignore[override]
        return self._compare(other, Tensor.__eq__)

    def __ne__(self, other: Any) -> TensorList:  # type: ignore[override]
        return self._compare(other, Tensor.__ne__)

    def __and__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__and__)

    def __or__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__or__)

    def __ior__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__ior__)

    def __iand__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__iand__)

    def __invert__(self) -> TensorList:
        return _elementwise(Tensor.__invert__, (self,), {})

    __hash__ = None  # type: ignore[assignment]


def _is_number(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def _apply(
    name: str, function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], *,
    in_place: bool | None = None,
) -> Any:  # fmt: skip
    """``function`` over the elements: one ``torch._foreach_<name>`` call when it can express it."""
    lists = [arg for arg in args if isinstance(arg, TensorList)]
    foreach = getattr(torch, f"_foreach_{name}", None)
    expressible = (
        foreach is not None
        and (in_place or "out" not in kwargs)
        and isinstance(args[0], TensorList)
        and all(isinstance(arg, TensorList) or _is_number(arg) for arg in args[1:])
        and all(_is_number(value) for key, value in kwargs.items() if key != "out")
        and all(len(arg) == len(lists[0]) for arg in lists)
    )
    if expressible:
        plain = [arg.tensors if isinstance(arg, TensorList) else arg for arg in args]
        settings = {key: value for key, value in kwargs.items() if key != "out"}
        result = foreach(*plain, **settings)
        if in_place or (in_place is None and name.endswith("_")):
            return args[0]
        return TensorList(result)
    return _elementwise(function, args, kwargs)


def _elementwise(function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``function`` applied element by element; non-list arguments are given to every element."""
    count = next(len(arg) for arg in (*args, *kwargs.values()) if isinstance(arg, TensorList))

    def pick(value: Any, index: int) -> Any:
        return value.tensors[index] if isinstance(value, TensorList) else value

    results = [
        function(*(pick(arg, i) for arg in args), **{k: pick(v, i) for k, v in kwargs.items()})
        for i in range(count)
    ]
    if all(result is None for result in results):
        return None
    if isinstance(results[0], tuple):
        return tuple(TensorList(parts) for parts in zip(*results, strict=True))
    return TensorList(results)


class StateList:
    """Per-parameter state dicts seen as one dict: ``state[key]`` is a ``TensorList``.

    Entries that are Python numbers or None are the same in every dict of a bucket (see
    :func:`multi_tensor_update`) and read as that one value; writing a ``TensorList`` stores each
    element in its parameter's dict, writing anything else stores it in every dict.
    """

    __slots__ = ("states",)

    def __init__(self, states: Sequence[dict[str, Any]]) -> None:
        self.states = list(states)

    def __getitem__(self, key: str) -> Any:
        values = [state[key] for state in self.states]
        if all(isinstance(value, Tensor) for value in values):
            return TensorList(values)
        return values[0]

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, TensorList):
            for state, element in zip(self.states, value.tensors, strict=True):
                state[key] = element
        else:
            for state in self.states:
                state[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.states[0]

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.states[0]:
            return default
        return self[key]


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


def multi_tensor_update(
    update: Callable[..., None],
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    **hyperparameters: Any,
) -> None:
    """Run ``update`` (a functional update of descentlab) once per bucket of alike parameters.

    Each call sees one-element lists ``[TensorList]``, ``[TensorList]``, ``[StateList]``, so the
    body of the update's per-parameter loop runs once over the whole bucket.
    """
    buckets: dict[tuple, list[int]] = {}
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        buckets.setdefault(_bucket_key(index, param, grad, state), []).append(index)
    for indices in buckets.values():
        update(
            [TensorList(params[i] for i in indices)],
            [TensorList(grads[i] for i in indices)],
            [StateList([states[i] for i in indices])],
            **hyperparameters,
        )


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
