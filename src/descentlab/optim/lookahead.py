"""Lookahead: k fast steps of any optimizer, then pull slow weights part of the way towards them.

Zhang, M. R., Lucas, J., Hinton, G. and Ba, J. (2019). Lookahead Optimizer: k steps forward, 1 step
back. NeurIPS. Algorithm 1:

.. math::
    \\theta_{t,0} = \\phi_{t-1}, \\qquad
    \\theta_{t,i} = \\theta_{t,i-1} + A(\\theta_{t,i-1}) \\quad (i = 1 \\dots k)

    \\phi_t = \\phi_{t-1} + \\alpha (\\theta_{t,k} - \\phi_{t-1})

The inner optimizer ``A`` explores; the slow weights :math:`\\phi` move by a fraction ``alpha`` of
where it got after ``k`` steps, and the fast weights restart there. Oscillating directions average
out, so the inner optimizer tolerates larger learning rates.

Lookahead shares its ``param_groups`` with the inner optimizer (one list of dicts), so learning-rate
schedulers built on either act on both, and ``k`` and ``alpha`` are group entries like any
hyperparameter (``alpha`` may be a tensor, per run when stacked). Its own state, the slow weights and
the count of inner steps per parameter, sits in ``Lookahead.state`` and is saved with the inner
optimizer's in :meth:`Lookahead.state_dict`.

In the registry, ``lookahead`` wraps a named inner optimizer: ``create("lookahead", params,
inner="sgd", k=5, alpha=0.5, lr=0.1, momentum=0.9)``; the inner optimizer's hyperparameters are
given by name and checked against its own spec (:class:`WrapperSpec`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._hyper import Hyper
from ._stack import fit
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer

DEFAULT_INNER = "adam"


def init_state(param: Tensor) -> dict[str, Any]:
    """The slow weights start at the parameter's value before its first fast step."""
    return {
        "step": step_counter(),
        "slow_param": param.detach().clone(memory_format=torch.preserve_format),
    }


def update(
    params: list[Tensor],
    grads: list[Tensor | None],
    states: list[dict[str, Any]],
    *,
    k: int,
    alpha: Hyper,
    stack_dims: int = 0,
) -> None:
    """Count one fast step (taken already by the inner optimizer); every ``k``-th, synchronize.

    .. math::
        \\phi \\leftarrow \\phi + \\alpha (\\theta - \\phi), \\qquad \\theta \\leftarrow \\phi

    ``grads`` is unused (the inner optimizer consumed them); it keeps the functional signature.
    """
    del grads
    for param, state in zip(params, states, strict=True):
        step = advance(state)
        if isinstance(step, Tensor):
            # A count traced by torch.compile: the same update without a data-dependent branch.
            synchronize = step % k == 0
            slow = state["slow_param"]
            slow.copy_(torch.where(synchronize, slow.lerp(param, alpha), slow))
            param.copy_(torch.where(synchronize, slow, param))
        elif step % k == 0:
            slow = state["slow_param"]
            slow.lerp_(param, fit(alpha, param, stack_dims))
            param.copy_(slow)


def inner_spec(name: object) -> Spec:
    """The registry spec of an inner optimizer: a first-order one other than Lookahead."""
    from . import registry  # the registry's package imports every module, this one included

    if not isinstance(name, str):
        raise TypeError(f"inner must be a registry key, got {name!r}")
    entry = None if name.lower() == "lookahead" else registry.spec(name)
    if entry is None or entry.needs_closure:
        raise ValueError(
            f"Invalid inner: {name!r}; Lookahead wraps a first-order optimizer whose step needs "
            "no closure"
        )
    return entry


def _check_k(k: object) -> None:
    _hyper.check_integer("k", k, 1)


class Lookahead(torch.optim.Optimizer):
    """Lookahead around any ``torch.optim.Optimizer`` (descentlab's or torch's).

    ``Lookahead(torch.optim.SGD(params, lr=0.1), k=5, alpha=0.5)`` wraps an optimizer. Given
    parameters instead of an optimizer, it builds the inner one from the registry:
    ``Lookahead(params, inner="adam", lr=1e-3)`` (``inner`` defaults to ``"adam"``; further keyword
    arguments are the inner optimizer's hyperparameters). The closure, if any, is passed to the
    inner optimizer's ``step``.
    """

    def __init__(
        self,
        optimizer: Any,
        k: int = 5,
        alpha: Hyper = 0.5,
        *,
        inner: str | None = None,
        **inner_hyperparameters: Any,
    ) -> None:
        if isinstance(optimizer, torch.optim.Optimizer):
            if inner is not None or inner_hyperparameters:
                raise TypeError(
                    "Lookahead: inner and inner hyperparameters are for building the inner "
                    "optimizer from parameters; an optimizer was given"
                )
        else:
            entry = inner_spec(DEFAULT_INNER if inner is None else inner)
            optimizer = entry.factory(optimizer, **entry.kwargs(inner_hyperparameters))
        _check_k(k)
        _hyper.check_range("alpha", alpha, 0.0, 1.0)
        # torch's constructor builds groups from the inner optimizer's group dicts (the same
        # dict objects), adding k and alpha to each; the list itself is then shared too.
        super().__init__(optimizer.param_groups, {"k": k, "alpha": alpha})
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups
        self.defaults = {**optimizer.defaults, "k": k, "alpha": alpha}
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for group in self.param_groups:
            self._check_group(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_k(group["k"])
        _hyper.check_range("alpha", group["alpha"], 0.0, 1.0)
        if isinstance(group["alpha"], Tensor):
            for index, param in enumerate(group["params"]):
                alpha = fit(group["alpha"], param, group.get("stack_dims", 0))
                _hyper.check_broadcast("alpha", alpha, param, index)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "optimizer"):  # called by torch's constructor for existing groups
            super().add_param_group(param_group)
            return
        param_group = {"k": self.defaults["k"], "alpha": self.defaults["alpha"], **param_group}
        self.optimizer.add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1])
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One inner step; every ``k``-th step of a parameter, move it and its slow weights."""
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if not self.state[param]:
                        self.state[param].update(init_state(param))
        # The inner step runs exactly as if called directly (it handles grad mode and closure).
        loss = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        with torch.no_grad():
            for group in self.param_groups:
                stepped = [p for p in group["params"] if p.grad is not None]
                if stepped:
                    grads = [p.grad for p in stepped]
                    states = [self.state[p] for p in stepped]
                    update(
                        stepped,
                        grads,
                        states,
                        k=group["k"],
                        alpha=group["alpha"],
                        stack_dims=group.get("stack_dims", 0),
                    )
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The inner optimizer's state_dict and the slow weights (by parameter index)."""
        index = {}
        for group in self.param_groups:
            for param in group["params"]:
                index.setdefault(id(param), len(index))
        slow = {
            index[id(param)]: {name: value for name, value in state.items()}
            for param, state in self.state.items()
            if id(param) in index
        }
        return {"inner": self.optimizer.state_dict(), "lookahead": slow}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"inner", "lookahead"}:
            raise ValueError(
                "state_dict: expected a Lookahead state_dict with keys 'inner' and 'lookahead'"
            )
        self.optimizer.load_state_dict(state_dict["inner"])
        # torch's load_state_dict replaces the inner groups with new dicts: share them again.
        self.param_groups = self.optimizer.param_groups
        params = []
        for group in self.param_groups:
            for param in group["params"]:
                if all(param is not seen for seen in params):
                    params.append(param)
        self.state = defaultdict(dict)
        for position, saved in state_dict["lookahead"].items():
            param = params[position]
            self.state[param] = {
                name: value.to(dtype=param.dtype, device=param.device)
                if isinstance(value, Tensor) and name != "step"
                else (value.clone() if isinstance(value, Tensor) else value)
                for name, value in saved.items()
            }

    def __repr__(self) -> str:
        return (
            f"Lookahead({self.optimizer!r}, k={self.defaults['k']}, alpha={self.defaults['alpha']})"
        )


@dataclass(frozen=True)
class WrapperSpec(Spec):
    """A spec whose keyword arguments are its own plus those of a named inner optimizer.

    ``kwargs({"inner": "sgd", "lr": 0.1, "k": 10})`` checks ``lr`` against SGD's spec and returns
    SGD's defaults for the rest, with ``inner`` included when given. Without ``inner`` the inner
    optimizer is ``DEFAULT_INNER``, whose defaults appear in :attr:`defaults`.
    """

    own: tuple[str, ...] = ("k", "alpha")

    def kwargs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(values)
        inner = values.pop("inner", None)
        entry = inner_spec(DEFAULT_INNER if inner is None else inner)
        result: dict[str, Any] = {}
        for hyper in self.hyperparameters:
            if hyper.name in self.own:
                result[hyper.name] = values.pop(hyper.name, hyper.default)
        result.update(entry.kwargs(values))
        if inner is not None:
            result["inner"] = entry.key
        return result


SPECS = (
    WrapperSpec(
        key="lookahead",
        title="Lookahead",
        summary="Let any optimizer take k steps, then move slow weights a fraction alpha of the "
        "way there and restart from them: k steps forward, one step back.",
        paper=Paper(
            "Zhang, M. R., Lucas, J., Hinton, G. and Ba, J.",
            2019,
            "Lookahead Optimizer: k steps forward, 1 step back",
            "NeurIPS",
        ),
        equations=(
            r"\theta_{t,0} = \phi_{t-1}",
            r"\theta_{t,i} = \theta_{t,i-1} + A(\theta_{t,i-1}), \quad i = 1, \dots, k",
            r"\phi_t = \phi_{t-1} + \alpha\, (\theta_{t,k} - \phi_{t-1})",
        ),
        hyperparameters=(
            Hyperparameter(
                "inner", DEFAULT_INNER, "registry key of the inner (fast) optimizer", "A"
            ),
            Hyperparameter(
                "lr", 1e-3, "the inner optimizer's step size", r"\eta", 1e-5, 1e-1, "log"
            ),
            Hyperparameter(
                "k", 5, "fast steps between synchronizations", "k", scale="choice", choices=(5, 10)
            ),
            Hyperparameter(
                "alpha",
                0.5,
                "fraction of the way the slow weights move",
                r"\alpha",
                0.2,
                0.9,
                "linear",
            ),
        ),
        state=(
            StateBuffer("slow_param", "the slow weights", r"\phi"),
            StateBuffer("step", "fast steps taken", "t"),
        ),
        factory=Lookahead,
        family="modern",
        teaches="averaging an optimizer's trajectory every few steps damps its oscillations",
    ),
)
