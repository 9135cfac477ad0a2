"""The one class every descentlab optimizer derives from.

An algorithm is two plain functions over lists of tensors, written once and shared by every caller:

* ``init_state(param, **hyperparameters) -> dict``: the state buffers of one parameter, under
  torch.optim's key names where torch has the algorithm (so torch's state_dicts load into ours);
* ``update(params, grads, states, **hyperparameters) -> None``: one step, in place.

Hyperparameters are Python numbers or tensors that broadcast against each parameter (see
``_hyper``), and ``stack_dims`` says which leading dimensions index independent runs (see
``_stack``). The :class:`Optimizer` subclass only wires torch's conventions (param groups,
state_dict, closures, lr schedulers, hooks) to those functions; the lab and the arena call the
functions directly on stacked tensors.

Non-finite gradients: like torch.optim, descentlab does not inspect gradients (a check costs a
pass over memory on every step). A NaN or infinite gradient flows into that parameter's state and
value; other parameters are untouched. Guard against it where it can happen with
``torch.nn.utils.clip_grad_norm_(..., error_if_nonfinite=True)``; the lab marks such runs diverged.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import _fused, _hyper, _multi_tensor
from ._stack import fit, is_per_run, stack_shape

#: Group entries that are settings of torch's implementation, not of the algorithm.
TORCH_FLAGS = ("foreach", "capturable", "differentiable", "fused")

_GRAD = operator.attrgetter("grad")
_SPARSE = operator.attrgetter("is_sparse")
_DTYPE = operator.attrgetter("dtype")


def keyword_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of a functional update or state initialiser."""
    return tuple(
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    )


def torch_flags(
    owner: str,
    foreach: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
) -> dict[str, Any]:
    """Accept torch.optim's implementation switches so code written for torch runs unchanged.

    ``foreach=True`` runs an elementwise algorithm's one update over lists of tensors through
    torch's multi-tensor kernels (``None``: on CUDA tensors only, torch's default);
    ``fused=True`` takes torch's fused kernel or compiles the update (see ``_fused``: the first
    compiled step builds the group's graphs, a handful whatever the tensor count, which took 3
    to 13 s per optimizer for 100 or 1000 tensors on a 2-core CPU in ``benchmarks/step_speed.py``).
    The switches that would change what is computed are refused.
    """
    for name, value in (("capturable", capturable), ("differentiable", differentiable)):
        if value:
            raise ValueError(f"{owner} does not support {name}=True; use torch.optim for that")
    return {
        **speed_flags(owner, foreach, fused),
        "capturable": capturable,
        "differentiable": differentiable,
    }


def speed_flags(owner: str, foreach: bool | None, fused: bool | None) -> dict[str, Any]:
    """The implementation switches of an elementwise algorithm, checked as torch checks them.

    ``foreach``: the multi-tensor path (``_multi_tensor``); ``fused``: see ``_fused``. Neither
    changes what is computed beyond float rounding.
    """
    for name, value in (("foreach", foreach), ("fused", fused)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be True, False or None, got {value!r}")
    if foreach and fused:
        raise ValueError(f"{owner}: foreach=True and fused=True cannot be asked for together")
    return {"foreach": foreach, "fused": fused}


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step is one call of the algorithm's functional update.

    Subclasses set ``init_state`` and ``update`` (static functions) and may extend
    ``check_group`` with their hyperparameter checks. Every group also has ``stack_dims``
    (default 0): the number of leading parameter dimensions that index independent runs.
    """

    init_state: ClassVar[Callable[..., dict[str, Any]]]
    update: ClassVar[Callable[..., None]]
    checked_nonnegative: ClassVar[tuple[str, ...]] = ()
    checked_betas: ClassVar[tuple[str, ...]] = ()
    checked_flags: ClassVar[tuple[str, ...]] = ()
    #: True when ``update`` treats every coordinate alone (no reduction over a tensor): its
    #: per-parameter loop body may then run over lists of tensors (``foreach``).
    elementwise: ClassVar[bool] = False
    #: torch's fused kernel for this algorithm, called as ``update`` is (``fused=True`` with
    #: Python-number hyperparameters); None: ``fused=True`` compiles ``update`` (see ``_fused``).
    fused_kernel: ClassVar[Callable[..., None] | None] = None
    #: True for methods whose step must re-evaluate the loss (a closure is then required).
    needs_closure: ClassVar[bool] = False
    _init_keys: ClassVar[tuple[str, ...]] = ()
    _update_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether ``update`` takes the closure's loss (keyword ``loss``), not a group value.
    _update_takes_loss: ClassVar[bool] = False
    #: Whether one step couples the group's parameters (a global estimate, a joint Hessian, shared
    #: random probes). Then ``update`` sees the whole group at once, per-run hyperparameters (shape
    #: ``S``) reach it unshaped, and it shapes them with ``_stack.fit`` where it uses them; other
    #: algorithms get them already shaped, one call per parameter rank.
    couples_parameters: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "init_state" in cls.__dict__:
            cls._init_keys = keyword_names(cls.init_state)
        if "update" in cls.__dict__:
            keys = keyword_names(cls.update)
            cls._update_takes_loss = "loss" in keys
            cls._update_keys = tuple(key for key in keys if key != "loss")

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        defaults = {"stack_dims": 0, **defaults}
        super().__init__(params, defaults)

    # -- param groups ------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            stack_shape(group["params"], group["stack_dims"])
            self.check_group(group)
            self._check_tensor_hyperparameters(group)
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def check_group(self, group: dict[str, Any]) -> None:
        """Validate a group's hyperparameters (``ValueError``/``TypeError`` naming the argument).

        The common kinds are declared, not written out: ``checked_nonnegative`` (numbers or
        tensors >= 0), ``checked_betas`` (pairs in [0, 1)) and ``checked_flags`` (True/False).
        Subclasses with other rules extend this method.
        """
        for name in self.checked_nonnegative:
            _hyper.check_nonnegative(name, group[name])
        for name in self.checked_betas:
            _hyper.check_betas(name, group[name])
        for name in self.checked_flags:
            _hyper.check_flag(name, group[name])

    def _check_tensor_hyperparameters(self, group: dict[str, Any]) -> None:
        for name, value in group.items():
            if name == "params":
                continue
            entries = value if isinstance(value, tuple | list) else (value,)
            for position, entry in enumerate(entries):
                if not isinstance(entry, Tensor):
                    continue
                label = f"{name}[{position}]" if entries is value else name
                for index, param in enumerate(group["params"]):
                    fitted = fit(entry, param, group["stack_dims"])
                    _hyper.check_broadcast(label, fitted, param, index)

    def hyperparameters(
        self, group: dict[str, Any], keys: tuple[str, ...], like: Tensor | None = None
    ) -> dict[str, Any]:
        """The group's values for ``keys``, falling back to the defaults (old state_dicts).

        With ``like`` (a parameter of the group), per-run values are shaped to broadcast against it.
        """
        values = {key: group[key] if key in group else self.defaults[key] for key in keys}
        stack_dims = group.get("stack_dims", 0)
        if like is None or not stack_dims:
            return values
        return {key: fit(value, like, stack_dims) for key, value in values.items()}

    # -- stepping ----------------------------------------------------------------------------

    def _gather(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[dict]]:
        """The group's parameters that have a gradient, their gradients and their states.

        Runs at every step, so the common case (every parameter has a dense gradient and state)
        is checked with C-level maps over the lists (on 1000 small tensors a per-parameter
        Python loop cost a third of SGD's ``foreach`` step); anything else takes the loop below.
        """
        params = group["params"]
        # torch.compile traces the loop (it cannot trace attrgetter); its guards replace the work.
        grads = [] if torch.compiler.is_compiling() else list(map(_GRAD, params))
        if (
            grads
            and all(map(operator.is_not, grads, repeat(None)))
            and not any(map(_SPARSE, grads))
        ):
            # Tensor.__hash__ is Python code: the table's lookups go through dict.get.
            states = list(map(self.state.get, params, repeat(None)))
            if all(states):
                if any(dtype.is_complex for dtype in set(map(_DTYPE, params))):
                    self._refuse(group, next(p for p in params if p.is_complex()))
                return list(params), grads, states
        gathered: tuple[list[Tensor], list[Tensor], list[dict]] = ([], [], [])
        table = self.state
        for param in params:
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse or param.is_complex():
                self._refuse(group, param)
            state = table[param]
            gathered[0].append(param)
            gathered[1].append(grad)
            gathered[2].append(state if state else self.state_of(param, group))
        return gathered

    def _refuse(self, group: dict[str, Any], param: Tensor) -> None:
        index = next(i for i, member in enumerate(group["params"]) if member is param)
        if param.grad.is_sparse:
            raise TypeError(
                f"{type(self).__name__} does not support sparse gradients "
                f"(parameter {index}); use dense gradients or torch.optim.SparseAdam"
            )
        raise TypeError(
            f"{type(self).__name__} does not support complex parameters (parameter "
            f"{index}); optimize torch.view_as_real(param) instead"
        )

    def closure_required(self) -> str | None:
        """Why this optimizer, as configured, must see the loss to step; None if it need not."""
        return "it evaluates the loss and its derivatives itself" if self.needs_closure else None

    def state_of(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state of ``param`` (a member of ``group``), initialised on first use."""
        state = self.state[param]
        if not state:
            like = None if self.couples_parameters else param
            hyperparameters = self.hyperparameters(group, self._init_keys, like)
            state.update(type(self).init_state(param, **hyperparameters))
        return state

    def apply_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        **extra: Any,
    ) -> None:
        """One call of the functional update for ``group``'s ``params`` (the body of ``step``).

        Per-run hyperparameters (tensors of the stack shape) are shaped against each parameter:
        the parameters are updated in one call per rank, unless the algorithm couples them.
        """
        for like, members in self._by_rank(group, params):
            hyperparameters = self.hyperparameters(group, self._update_keys, like)
            if len(members) == len(params):
                chosen = (params, grads, states)
            else:
                picked = [(params[i], grads[i], states[i]) for i in members]
                chosen = tuple(map(list, zip(*picked, strict=True)))
            update = self.update_for(group, chosen[0], hyperparameters)
            update(*chosen, **hyperparameters, **extra)

    def _by_rank(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> list[tuple[Tensor | None, list[int]]]:
        """``(a parameter to shape per-run values against, member indices)`` for each call."""
        everyone = list(range(len(params)))
        stack_dims = group.get("stack_dims", 0)
        if self.couples_parameters or not stack_dims:
            return [(None, everyone)]
        if len(params) == 1:  # one parameter (the lab's races): shape everything against it
            return [(params[0], everyone)]
        stack = params[0].shape[:stack_dims]
        if not any(is_per_run(group.get(key), stack) for key in self._update_keys):
            return [(None, everyone)]
        ranks: dict[int, list[int]] = {}
        for index, param in enumerate(params):
            ranks.setdefault(param.dim(), []).append(index)
        return [(params[members[0]], members) for members in ranks.values()]

    @property
    def steps_by_update(self) -> bool:
        """Whether ``step()`` is exactly one ``update`` call per group on the gradients.

        Then a caller that computes gradients itself (the lab) may call ``update`` directly, with
        ``state_of`` and ``hyperparameters``, and skip the hooks, ``.grad`` and the closure.
        """
        own_step = inspect.unwrap(type(self).step) is inspect.unwrap(Optimizer.step)
        return own_step and not self._update_takes_loss and not self.closure_required()

    def _evaluate(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            reason = self.closure_required()
            if reason:
                raise ValueError(
                    f"{type(self).__name__}.step needs a closure that re-evaluates the loss: "
                    f"step(closure), because {reason}"
                )
            return None
        with torch.enable_grad():
            return closure()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = self._evaluate(closure)
        extra = {"loss": loss} if self._update_takes_loss else {}
        for group in self.param_groups:
            params, grads, states = self._gather(group)
            if params:
                self.apply_update(group, params, grads, states, **extra)
        return loss

    def update_for(
        self, group: dict[str, Any], params: list[Tensor], hyperparameters: dict[str, Any]
    ) -> Callable[..., None]:
        """The implementation of ``update`` that steps ``group``: for an elementwise algorithm a
        fused kernel where ``fused`` asks for it (``_fused``), the multi-tensor path where
        ``foreach`` does (``_multi_tensor``); else the single-tensor loop. All compute the same
        update, from the same function except where torch's own fused kernel is taken."""
        if group.get("fused") and self.elementwise:
            return _fused.fused_update(type(self), hyperparameters, self._fused_cache(group))
        foreach = group.get("foreach")
        if self.elementwise and _multi_tensor.applies(foreach, params, hyperparameters):
            update, cache = type(self).update, self._bucket_cache(group)

            def multi_tensor_step(
                params: list[Tensor], grads: list[Tensor], states: list[dict], **values: Any
            ) -> None:
                _multi_tensor.multi_tensor_update(update, params, grads, states, cache, **values)

            return multi_tensor_step
        return type(self).update

    def _bucket_cache(self, group: dict[str, Any]) -> _multi_tensor.BucketCache:
        """The multi-tensor path's cache of ``group``'s buckets (see ``_multi_tensor``)."""
        return self._group_cache("_bucket_caches", group, _multi_tensor.BucketCache)

    def _fused_cache(self, group: dict[str, Any]) -> _fused.ChunkCache:
        """The compiled fused path's cache of ``group``'s chunks (see ``_fused_arguments``)."""
        return self._group_cache("_fused_caches", group, _fused.ChunkCache)

    def _group_cache(self, name: str, group: dict[str, Any], make: Callable[[], Any]) -> Any:
        caches = self.__dict__.setdefault(name, {})
        entry = caches.get(id(group))
        if entry is None or entry[0] is not group:  # the group is kept, so its id is not reused
            entry = caches[id(group)] = (group, make())
        return entry[1]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``; the new state dicts also drop the cached buckets and
        chunks."""
        self.__dict__.pop("_bucket_caches", None)
        self.__dict__.pop("_fused_caches", None)
        super().load_state_dict(state_dict)
