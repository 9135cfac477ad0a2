"""Lists of tensors that compute like one tensor: the machinery of the ``foreach=True`` path.

Every elementwise update in descentlab is a loop whose body reads one parameter, its gradient and
its state. :class:`TensorList` lets that same body run once for a whole list: each tensor
operation becomes one call of torch's multi-tensor kernels (``torch._foreach_add_``,
``_foreach_lerp_``, ``_foreach_addcdiv_`` ...), and :class:`StateList` shows a list of
per-parameter state dicts as one dict of lists. An operation without a ``_foreach_`` form
(comparisons, ``torch.where``, ``clamp``) runs tensor by tensor, so every body works; the common
ones take the fast form. On the CPU torch's ``_foreach_`` kernels apply the same per-tensor
kernels in a C++ loop, so the results are bit-identical to the single-tensor loop; on CUDA they
are fused kernels whose float rounding may differ in the last bit.

On the CPU a ``_foreach_`` call with a Python number (``_foreach_mul_(tensors, 0.9)``) wraps the
number into a new tensor for every element, which costs more than the arithmetic on small
tensors (1.4 ms of 2 ms for 1000 tensors of 1000 floats, measured). So a number multiplying,
dividing, adding to or subtracting from a CPU float32/float64 list is wrapped once, in the list's
dtype, and the ``Tensor`` overload of the kernel is called: the same kernel on the same float
value, so the same bits (torch.optim does this for its step counters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
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

    __slots__ = ("tensors", "uniform")

    def __init__(self, tensors: Iterable[Tensor], *, uniform: bool = False) -> None:
        self.tensors = list(tensors)
        #: True when every element is known to hold the same value (step counters of one
        #: bucket, see ``StateList``): ``item()`` then reads one element instead of all.
        self.uniform = uniform

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
        if self.uniform:
            return self.tensors[0].item()
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
        if _is_number(other) and self.tensors and self.tensors[0].dtype in _WRAPPED_DTYPES:
            # torch computes number / tensor as tensor.reciprocal() * number (Tensor.__rdiv__);
            # in place on the new reciprocals is the same product in float32 and float64 (not
            # in bfloat16, whose in-place multiplication by a number rounds differently).
            return self.reciprocal().mul_(other)
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


#: The dtypes in which a number wrapped in a 0-d tensor of that dtype computes the same bits.
_WRAPPED_DTYPES = (torch.float32, torch.float64)
#: Operations whose ``_foreach_`` kernel also takes one 0-d tensor in place of a number, and the
#: sign the number gets (subtraction adds the negated number: exactly the same IEEE result).
_TENSOR_OPERAND_FORMS = {
    "add": ("add", 1), "add_": ("add_", 1), "sub": ("add", -1), "sub_": ("add_", -1),
    "mul": ("mul", 1), "mul_": ("mul_", 1), "div": ("div", 1), "div_": ("div_", 1),
}  # fmt: skip


def _apply(
    name: str, function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], *,
    in_place: bool | None = None,
) -> Any:  # fmt: skip
    """``function`` over the elements: one ``torch._foreach_<name>`` call when it can express it."""
    if name in ("clamp", "clamp_"):
        clamped = _clamp(args, kwargs, in_place=name == "clamp_")
        if clamped is not None:
            return clamped
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
    if not expressible:
        return _elementwise(function, args, kwargs)
    target = args[0]
    settings = {key: value for key, value in kwargs.items() if key != "out"}
    number = _wrapped_number(name, args, settings)
    if number is not None:
        form, _ = _TENSOR_OPERAND_FORMS[name]
        foreach = getattr(torch, f"_foreach_{form}")
        # alpha= selects the Tensor overload of add (without it the 0-d tensor becomes a number).
        settings = {"alpha": 1} if form.startswith("add") else {}
        result = foreach(target.tensors, number, **settings)
    else:
        plain = [arg.tensors if isinstance(arg, TensorList) else arg for arg in args]
        result = foreach(*plain, **settings)
    if in_place or (in_place is None and name.endswith("_")):
        if len(lists) > 1:
            target.uniform = False  # elements changed by other lists' elements may now differ
        return target
    return TensorList(result)


def _clamp(args: Sequence[Any], kwargs: dict[str, Any], *, in_place: bool) -> Any:
    """``clamp`` between number bounds as ``_foreach_clamp_min`` then ``_foreach_clamp_max``:
    torch's clamp is max then min, NaN passing through, so the bits are the same. None when the
    bounds are not numbers (or None), or the call is not one this covers."""
    names = ("min", "max")
    if not isinstance(args[0], TensorList) or len(args) > 3 or set(kwargs) - set(names):
        return None
    bounds = dict(zip(names, args[1:], strict=False))
    if set(bounds) & set(kwargs):
        return None
    bounds.update(kwargs)
    low, high = bounds.get("min"), bounds.get("max")
    if not all(bound is None or _is_number(bound) for bound in (low, high)):
        return None
    if low is None and high is None:
        return None  # torch refuses it: let it say so
    target = args[0]
    tensors = target.tensors
    if low is not None:
        if in_place:
            torch._foreach_clamp_min_(tensors, low)
        else:
            tensors = torch._foreach_clamp_min(tensors, low)
    if high is not None:
        if in_place or low is not None:
            torch._foreach_clamp_max_(tensors, high)
        else:
            tensors = torch._foreach_clamp_max(tensors, high)
    return target if in_place else TensorList(tensors)


def _wrapped_number(name: str, args: Sequence[Any], settings: dict[str, Any]) -> Tensor | None:
    """The number operand of ``name`` as a 0-d tensor in the list's dtype, when that runs the
    same kernel on the same value faster (see the module's docstring); else None."""
    if name not in _TENSOR_OPERAND_FORMS or len(args) != 2 or settings:
        return None
    number = args[1]
    tensors = args[0].tensors
    if not _is_number(number) or not tensors or not tensors[0].is_cpu:
        return None
    dtype = tensors[0].dtype
    if dtype not in _WRAPPED_DTYPES or torch.compiler.is_compiling():
        return None
    if any(tensor.dtype is not dtype for tensor in tensors):
        return None  # a wrapped number in one dtype would round differently for the others
    return torch.tensor(_TENSOR_OPERAND_FORMS[name][1] * number, dtype=dtype)


def _elementwise(function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``function`` applied element by element; non-list arguments are given to every element."""
    lists = [arg for arg in (*args, *kwargs.values()) if isinstance(arg, TensorList)]
    count = len(lists[0])
    if any(len(other) != count for other in lists):
        raise ValueError(f"TensorLists of different lengths: {[len(other) for other in lists]}")
    columns = [arg.tensors if isinstance(arg, TensorList) else repeat(arg, count) for arg in args]
    if kwargs:
        keyword_columns = {
            key: value.tensors if isinstance(value, TensorList) else repeat(value, count)
            for key, value in kwargs.items()
        }
        rows = (
            dict(zip(keyword_columns, row, strict=True))
            for row in zip(*keyword_columns.values(), strict=True)
        )
        results = [
            function(*values, **keywords) for *values, keywords in zip(*columns, rows, strict=True)
        ]
    else:
        results = list(map(function, *columns))  # the common case, without per-element dicts
    if len(lists) > 1:
        for arg in lists:
            arg.uniform = False  # an in-place function may have made its elements differ
    if results[0] is None and all(result is None for result in results):
        return None
    if isinstance(results[0], tuple):
        return tuple(TensorList(parts) for parts in zip(*results, strict=True))
    return TensorList(results)


class StateList:
    """Per-parameter state dicts seen as one dict: ``state[key]`` is a ``TensorList``.

    Entries that are Python numbers or None are the same in every dict of a bucket (see
    ``_multi_tensor.multi_tensor_update``) and read as that one value; writing a ``TensorList``
    stores each element in its parameter's dict, writing anything else stores it in every dict.
    ``uniform_keys`` names the 0-d tensor entries known to hold one value in every dict (the
    bucket's step counter): their lists are marked ``uniform``, and :meth:`kept_uniform` says
    afterwards whether the update kept them so.
    """

    __slots__ = ("handed_out", "states", "uniform_keys", "written_apart")

    def __init__(self, states: Sequence[dict[str, Any]], uniform_keys: Iterable[str] = ()) -> None:
        self.states = list(states)
        self.uniform_keys = frozenset(uniform_keys)
        self.handed_out: list[TensorList] = []
        self.written_apart = False

    def __getitem__(self, key: str) -> Any:
        values = [state[key] for state in self.states]
        if all(map(isinstance, values, repeat(Tensor))):
            if key not in self.uniform_keys:
                return TensorList(values)
            handed = TensorList(values, uniform=True)
            self.handed_out.append(handed)
            return handed
        if any(map(isinstance, values, repeat(Tensor))):
            raise ValueError(f"state entry {key!r} is a tensor for some parameters only")
        return values[0]

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, TensorList):
            if key in self.uniform_keys and not value.uniform:
                self.written_apart = True
            for state, element in zip(self.states, value.tensors, strict=True):
                state[key] = element
        else:
            for state in self.states:
                state[key] = value

    def kept_uniform(self) -> bool:
        """Whether every ``uniform_keys`` entry still holds one value in every dict, as far as
        the operations on the lists handed out tell (an in-place operation with another list, or
        an element-by-element function, or writing a list not known uniform, says no)."""
        return not self.written_apart and all(handed.uniform for handed in self.handed_out)

    def __contains__(self, key: str) -> bool:
        return key in self.states[0]

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.states[0]:
            return default
        return self[key]
