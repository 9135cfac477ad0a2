"""The quasi-Newton loop BFGS and L-BFGS share, and the optimizer class around it.

The loop is torch.optim.LBFGS's (minFunc's): each ``step(closure)`` runs up to ``max_iter``
iterations, stopping early when the gradient's largest entry is below ``tolerance_grad``, when
the slope along the direction, the move or the change of the loss is below
``tolerance_change``, or when ``max_eval`` closure evaluations are spent. Every quantity is kept
per run (see ``_stack``): with ``stack_dims = s`` a run that stops early waits, unchanged, while
the others go on, so K stacked runs take exactly the iterations K separate runs would.

With several param groups, each group is minimized in turn with the others held fixed (block
coordinate descent; the closure is evaluated afresh for each group). With one group, the usual
case and torch's only one, this is plain (L-)BFGS.

Under ``torch.compile(optimizer.step)`` the loops (iterations here, trials in the line search)
stay Python, since their counts depend on the losses; each calls the closure through
``_line_search._run_closure``, the step's only graph break, and its arithmetic through functions
(``_next_direction``, ``_take_step``, the line search's rounds) that compile to one graph each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._line_search import FlatView, per_run, run_dot, strong_wolfe

LINE_SEARCHES = ("strong_wolfe", None)

Remember = Callable[[dict, Tensor, Tensor, Tensor, Tensor], None]
Direction = Callable[[dict, Tensor], Tensor]


def _start(state: dict, flat_grad: Tensor) -> None:
    """Allocate the per-run iteration state (every tensor in the parameters' dtype)."""
    if "n_iter" in state:
        return
    shape = flat_grad.shape[:-1]
    # One allocation per buffer, not clones of one zero tensor: torch 2.13's inductor returns
    # one tensor for two clones of the same tensor (it drops clones it deems redundant; see
    # pytorch/pytorch#198031), and the counters would then be increased in place together.
    state.update(
        func_evals=state.get("func_evals", flat_grad.new_zeros(shape)),
        n_iter=flat_grad.new_zeros(shape),
        d=torch.zeros_like(flat_grad),
        t=flat_grad.new_zeros(shape),
        prev_flat_grad=torch.zeros_like(flat_grad),
        prev_loss=flat_grad.new_zeros(shape),
    )


def quasi_newton_minimize(
    view: FlatView,
    state: dict[str, Any],
    *,
    remember: Remember,
    direction: Direction,
    prepare: Callable[[dict, Tensor], None],
    lr: Hyper,
    max_iter: int,
    max_eval: int,
    tolerance_grad: Hyper,
    tolerance_change: Hyper,
    line_search_fn: str | None,
    c1: Hyper,
    c2: Hyper,
) -> Tensor:
    """Up to ``max_iter`` quasi-Newton iterations on ``view``; returns the first loss evaluated.

    ``direction(state, g)`` is :math:`-H g` for the current inverse-Hessian approximation
    :math:`H`; ``remember(state, s, y, s^\\top y, runs)`` takes a new curvature pair into
    :math:`H` for those of ``runs`` where the pair passes its curvature test; ``prepare(state, g)`` allocates their state.
    """
    params = view.params
    hyper = {
        name: per_run(name, value, params, view.stack_dims)
        for name, value in (
            ("lr", lr),
            ("tolerance_grad", tolerance_grad),
            ("tolerance_change", tolerance_change),
            ("c1", c1),
            ("c2", c2),
        )
    }
    lr, tolerance_grad, tolerance_change = (
        hyper["lr"],
        hyper["tolerance_grad"],
        hyper["tolerance_change"],
    )
    orig_loss, flat_grad = view.evaluate()
    loss = orig_loss
    _start(state, flat_grad)
    prepare(state, flat_grad)
    state["func_evals"] += 1
    current_evals = torch.ones_like(loss)
    active = ~(flat_grad.abs().amax(-1) <= tolerance_grad)

    # The loop is control flow only (how many iterations run depends on the losses); the
    # arithmetic of an iteration is in _next_direction and _take_step, one graph each under
    # torch.compile. A run that stops waits, unchanged, behind its mask; the loop ends when no
    # run is left to evaluate (the closure is then not called: see FlatView.evaluate).
    for n_iter in range(1, max_iter + 1):
        d, t, gtd, active = _next_direction(
            state, loss, flat_grad, active, remember, direction, lr, tolerance_change
        )
        if line_search_fn == "strong_wolfe":
            found = strong_wolfe(
                view.evaluator(view.get(), d),
                t,
                d,
                loss,
                flat_grad,
                gtd,
                c1=hyper["c1"],
                c2=hyper["c2"],
                tolerance_change=tolerance_change,
                max_ls=(max_eval - current_evals).long(),
                active=active,
            )
            if found is None:
                break
            new_loss, new_grad, t_found, used = found
            view.move(t_found, d)
            t = state["t"] = torch.where(active, t_found, t)
        else:
            view.move(torch.where(active, t, torch.zeros_like(t)), d)
            if n_iter == max_iter:
                break  # torch's economy: no evaluation when no iteration follows
            evaluated = view.evaluate(active)
            if evaluated is None:
                break
            new_loss, new_grad = evaluated
            used = active.long()
        loss, flat_grad, current_evals, active = _take_step(
            state,
            loss,
            flat_grad,
            new_loss,
            new_grad,
            used,
            current_evals,
            active,
            d,
            t,
            max_eval,
            tolerance_grad,
            tolerance_change,
        )
    return orig_loss


def _next_direction(
    state: dict[str, Any],
    loss: Tensor,
    flat_grad: Tensor,
    active: Tensor,
    remember: Remember,
    direction: Direction,
    lr: Any,
    tolerance_change: Any,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Start an iteration of the ``active`` runs: take the last step's curvature pair, the new
    direction (steepest descent on a run's first iteration, quasi-Newton after) and the trial
    step; returns ``d``, ``t``, the slope :math:`g^\\top d` and the runs still active (a run
    whose slope is not downhill by ``tolerance_change`` stops)."""
    state["n_iter"] += active.to(loss.dtype)
    first = state["n_iter"] == 1
    keep = active.unsqueeze(-1)
    y = flat_grad - state["prev_flat_grad"]
    s = state["d"] * state["t"].unsqueeze(-1)
    remember(state, s, y, run_dot(y, s), active & ~first)
    new_direction = torch.where(first.unsqueeze(-1), -flat_grad, direction(state, flat_grad))
    d = state["d"] = torch.where(keep, new_direction, state["d"])
    state["prev_flat_grad"] = torch.where(keep, flat_grad, state["prev_flat_grad"])
    state["prev_loss"] = torch.where(active, loss, state["prev_loss"])

    # The first ever step is scaled so it moves by at most lr in l1.
    initial = torch.clamp(1.0 / flat_grad.abs().sum(-1), max=1.0) * lr
    t = state["t"] = torch.where(
        active,
        torch.where(first, initial, torch.as_tensor(lr, dtype=loss.dtype, device=loss.device)),
        state["t"],
    )
    gtd = run_dot(flat_grad, d)
    return d, t, gtd, active & ~(gtd > -tolerance_change)


def _take_step(
    state: dict[str, Any],
    loss: Tensor,
    flat_grad: Tensor,
    new_loss: Tensor,
    new_grad: Tensor,
    used: Tensor,
    current_evals: Tensor,
    active: Tensor,
    d: Tensor,
    t: Tensor,
    max_eval: Any,
    tolerance_grad: Any,
    tolerance_change: Any,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """End an iteration: the active runs take their new point's loss and gradient and count
    their evaluations; a run stops when out of evaluations, at a small gradient, a small move or
    a small change of the loss. Returns ``loss``, ``flat_grad``, ``current_evals``, ``active``."""
    loss = torch.where(active, new_loss, loss)
    flat_grad = torch.where(active.unsqueeze(-1), new_grad, flat_grad)
    used = used.to(loss.dtype) * active
    current_evals = current_evals + used
    state["func_evals"] += used
    done = (
        (current_evals >= max_eval)
        | (flat_grad.abs().amax(-1) <= tolerance_grad)
        | ((d * t.unsqueeze(-1)).abs().amax(-1) <= tolerance_change)
        | ((loss - state["prev_loss"]).abs() < tolerance_change)
    )
    return loss, flat_grad, current_evals, active & ~done


class QuasiNewton(Optimizer):
    """What BFGS and L-BFGS share: arguments, checks, and a step that runs the loop per group.

    Subclasses provide ``remember``, ``direction`` and ``prepare`` for a group.
    """

    needs_closure = True

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        if defaults["max_eval"] is None:
            defaults["max_eval"] = self._default_max_eval(defaults["max_iter"])
        super().__init__(params, defaults)

    @staticmethod
    def _default_max_eval(max_iter: Any) -> Any:
        return max_iter * 5 // 4 if isinstance(max_iter, int) else max_iter

    checked_nonnegative = (
        "lr",
        "tolerance_grad",
        "tolerance_change",
    )

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        for name in ("max_iter", "max_eval"):
            value = group[name]
            _hyper.check_integer(name, value, 1)
        c1, c2 = group["c1"], group["c2"]
        _hyper.check_range("c1", c1, 0.0, 1.0, low_open=True, high_open=True)
        _hyper.check_range("c2", c2, 0.0, 1.0, low_open=True, high_open=True)
        if bool(
            torch.any(
                torch.as_tensor(c1, dtype=torch.float64) >= torch.as_tensor(c2, dtype=torch.float64)
            )
        ):
            raise ValueError(f"Invalid c1={c1!r}, c2={c2!r}: they must satisfy 0 < c1 < c2 < 1")
        _hyper.check_choice("line_search_fn", group["line_search_fn"], LINE_SEARCHES)
        for name in ("lr", "tolerance_grad", "tolerance_change", "c1", "c2"):
            per_run(name, group[name], group["params"], group["stack_dims"])

    def rules(self, group: dict[str, Any]) -> tuple[Remember, Direction, Callable]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` iterations per group; ``closure`` re-evaluates the loss.

        Returns the first loss the closure computed (one per run with stacked runs).
        """
        if closure is None:
            self._evaluate(None)  # raises the base class's "needs a closure" ValueError
        first_loss = None
        for group in self.param_groups:
            params = group["params"]
            remember_pair, direction, prepare = self.rules(group)
            # Like torch, keep a group's state on its first parameter (state_dict handles it).
            loss = quasi_newton_minimize(
                FlatView(params, group["stack_dims"], closure),
                self.state[params[0]],
                remember=remember_pair,
                direction=direction,
                prepare=prepare,
                **{key: group[key] for key in _LOOP_KEYS},
            )
            first_loss = loss if first_loss is None else first_loss
        return first_loss


_LOOP_KEYS = (
    "lr",
    "max_iter",
    "max_eval",
    "tolerance_grad",
    "tolerance_change",
    "line_search_fn",
    "c1",
    "c2",
)
