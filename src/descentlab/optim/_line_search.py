"""Strong-Wolfe line search for many independent runs at once, and the flat view it searches along.

The search is Nocedal & Wright's Algorithm 3.5 (bracketing) with Algorithm 3.6 (zoom):

    Nocedal, J. and Wright, S. J. (2006). Numerical Optimization, 2nd ed., Springer, section 3.5.

It returns a step size :math:`t` with

.. math::
    f(x + t d) \\le f(x) + c_1 t \\nabla f(x)^\\top d, \\qquad
    |\\nabla f(x + t d)^\\top d| \\le c_2 |\\nabla f(x)^\\top d|.

The algorithm leaves open how to choose the next trial step; we make the choices of Mark Schmidt's
minFunc (``lswolfe``), which torch.optim.LBFGS also makes, so that our L-BFGS reproduces
torch's: the minimizer of the cubic through the two latest points (function values and slopes),
clipped to ``[t + 0.01 (t - t_prev), 10 t]`` while bracketing; in the zoom the cubic through the
bracket ends, moved to 10 % of the bracket's width from an end when it falls that close twice in a
row; the search stops after ``max_ls`` evaluations or when the bracket is narrower than
``tolerance_change`` (measured along the direction's largest entry). Like minFunc and torch, the
"no decrease since the previous trial" test of Algorithm 3.5 applies from the third trial on.

Every quantity is a tensor of the stack shape ``S`` (one entry per run; ``S = ()`` for a single
run), every branch a mask, so all runs search at once: one closure evaluation per trial serves
every run, and a run that has finished is evaluated at its base point and ignores the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._stack import fit, flatten, stack_shape, unflatten

Evaluate = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor] | None]

_BRACKETING, _ZOOM, _FINISHED = 0, 1, 2


def run_dot(left: Tensor, right: Tensor) -> Tensor:
    """Per-run dot product over the last dimension (shape ``S``).

    For a single run (1-D vectors) this is ``torch.dot``, the BLAS reduction torch.optim.LBFGS
    uses; summing ``left * right`` instead adds in another order, and on a non-convex loss a
    quasi-Newton iteration can amplify that last-bit difference to 1e-7 within one ``step``.
    """
    if left.dim() == 1:
        return torch.dot(left, right)
    return (left * right).sum(-1)


def add_scaled_(target: Tensor, source: Tensor, scale: Tensor) -> Tensor:
    """``target += scale * source`` in place, ``scale`` one value per run (shape ``S``).

    For a single run it is torch's ``add_(source, alpha=scale)``, whose kernel rounds once
    (a fused multiply-add), as torch.optim.LBFGS computes it; for stacked runs the product is
    rounded first, and so it is while torch.compile traces (``alpha`` must be a Python number,
    and reading one with ``.item()`` would break the graph and recompile for every value).
    """
    if scale.dim() == 0 and not torch.compiler.is_compiling():
        return target.add_(source, alpha=scale.item())
    return target.add_(source * scale.reshape(scale.shape + (1,) * (source.dim() - scale.dim())))


def cubic_minimizer(
    x1: Tensor,
    f1: Tensor,
    g1: Tensor,
    x2: Tensor,
    f2: Tensor,
    g2: Tensor,
    low: Tensor,
    high: Tensor,
) -> Tensor:
    """Minimizer of the cubic through ``(x1, f1, g1)`` and ``(x2, f2, g2)``, clipped to [low, high].

    Nocedal & Wright eq. (3.59); when the cubic has no minimizer (negative discriminant) the
    midpoint of [low, high]. Elementwise over runs.
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = d2_square.clamp(min=0).sqrt()
    # Written from the larger abscissa, as minFunc does, so the result does not depend on order.
    from_x2 = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    from_x1 = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    minimum = torch.where(x1 <= x2, from_x2, from_x1)
    clipped = torch.minimum(torch.maximum(minimum, low), high)
    return torch.where(d2_square >= 0, clipped, (low + high) / 2)


def _pick(pair: Tensor, index: Tensor) -> Tensor:
    """``pair[..., index]`` per run for a (S, 2) pair, or (S, 2, D) for gradients."""
    if pair.dim() == index.dim() + 1:
        return pair.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    gathered = index.reshape(*index.shape, 1, 1).expand(*index.shape, 1, pair.shape[-1])
    return pair.gather(-2, gathered).squeeze(-2)


def _put(pair: Tensor, index: Tensor, value: Tensor, where: Tensor) -> Tensor:
    """``pair[..., index] = value`` for the runs in ``where``."""
    slot = (torch.arange(2, device=index.device) == index.unsqueeze(-1)) & where.unsqueeze(-1)
    if pair.dim() == index.dim() + 1:
        return torch.where(slot, value.unsqueeze(-1), pair)
    return torch.where(slot.unsqueeze(-1), value.unsqueeze(-2), pair)


def strong_wolfe(
    evaluate: Evaluate,
    t: Tensor,
    direction: Tensor,
    loss: Tensor,
    grad: Tensor,
    gtd: Tensor,
    *,
    c1: Any = 1e-4,
    c2: Any = 0.9,
    tolerance_change: Any = 1e-9,
    max_ls: Tensor | int = 25,
    active: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Search along ``direction`` from the current point for a step satisfying strong Wolfe.

    Shapes: ``t``, ``loss``, ``gtd`` (the slope :math:`\\nabla f^\\top d`) and ``max_ls`` are ``S``;
    ``direction`` and ``grad`` are ``S + (D,)``. ``evaluate(steps, needed)`` returns the loss
    (``S``) and gradient (``S + (D,)``) at ``x + steps * direction`` and leaves the parameters at
    ``x``, or None without evaluating when no run is ``needed``. Runs outside ``active`` are not
    searched (their step is 0). Returns the loss, gradient and step of each run's accepted point
    and the number of evaluations each run used; None when no run is active.

    This function is the search's control flow only: how many trials it takes depends on the
    losses, so it loops in Python, and each trial's arithmetic is one call of
    :func:`_choose_trial` and :func:`_take_trial` (under torch.compile each is one graph).
    """
    shape = t.shape
    active = torch.ones(shape, dtype=torch.bool, device=t.device) if active is None else active
    zero = torch.zeros_like(t)
    evaluated = evaluate(torch.where(active, t, zero), active)
    if evaluated is None:
        return None
    search = _start_search(t, direction, loss, grad, gtd, max_ls, active, *evaluated)
    while True:
        evaluating = _choose_trial(search, c1, c2, tolerance_change)
        evaluated = evaluate(torch.where(evaluating, search["t"], zero), evaluating)
        if evaluated is None:
            break
        _take_trial(search, evaluating, *evaluated, c1, c2)
    return _accepted(search, active)


def _start_search(
    t: Tensor,
    direction: Tensor,
    loss: Tensor,
    grad: Tensor,
    gtd: Tensor,
    max_ls: Tensor | int,
    active: Tensor,
    f_new: Tensor,
    g_new: Tensor,
) -> dict[str, Tensor]:
    """The search's tensors after its first trial (every entry of shape ``S`` or ``S + ...``)."""
    shape = t.shape
    zero = torch.zeros_like(t)
    low = torch.zeros(shape, dtype=torch.long, device=t.device)
    return {
        # the start and the direction
        "loss": loss,
        "grad": grad,
        "gtd": gtd,
        "direction": direction,
        "d_norm": direction.abs().amax(-1),
        "max_ls": torch.as_tensor(max_ls, device=t.device).expand(shape),
        # the latest trial and the one before it
        "t": t,
        "f_new": f_new,
        "g_new": g_new,
        "gtd_new": run_dot(g_new, direction),
        "t_prev": zero,
        "f_prev": loss,
        "g_prev": grad,
        "gtd_prev": gtd,
        # the bracket as two positions (minFunc's order matters when both ends have equal values)
        "bracket_t": torch.stack([zero, zero], -1),
        "bracket_f": torch.stack([loss, loss], -1),
        "bracket_gtd": torch.stack([gtd, gtd], -1),
        "bracket_g": torch.stack([grad, grad], -2),
        "low": low,
        "phase": torch.where(active, _BRACKETING, _FINISHED),
        "insufficient": torch.zeros(shape, dtype=torch.bool, device=t.device),
        "ls_iter": torch.zeros_like(low),
        "evals": active.long(),
    }


def _store(
    search: dict[str, Tensor],
    where: Tensor,
    index: Tensor,
    step: Tensor,
    f: Tensor,
    slope: Tensor,
    g: Tensor,
) -> None:
    """Put a point into end ``index`` of the bracket of the runs in ``where``."""
    for name, value in (("t", step), ("f", f), ("gtd", slope), ("g", g)):
        search[f"bracket_{name}"] = _put(search[f"bracket_{name}"], index, value, where)


def _choose_trial(search: dict[str, Tensor], c1: Any, c2: Any, tolerance_change: Any) -> Tensor:
    """Judge the latest trial and choose the next one, in place; returns the runs to evaluate.

    Bracketing runs (Algorithm 3.5) stop, start zooming or extrapolate; zooming runs
    (Algorithm 3.6) take the cubic's minimizer in their bracket, moved inward when it falls
    close to an end twice in a row.
    """
    t, f_new, gtd_new, g_new = search["t"], search["f_new"], search["gtd_new"], search["g_new"]
    loss, gtd, ls_iter, max_ls = search["loss"], search["gtd"], search["ls_iter"], search["max_ls"]
    low, phase = search["low"], search["phase"]
    first, second = torch.zeros_like(low), torch.ones_like(low)

    # -- bracketing (Algorithm 3.5) -----------------------------------------------------------
    bracketing = phase == _BRACKETING
    exhausted = bracketing & (ls_iter >= max_ls)
    # Out of evaluations: keep the better of the start and the last trial.
    _store(search, exhausted, first, torch.zeros_like(t), loss, gtd, search["grad"])
    _store(search, exhausted, second, t, f_new, gtd_new, g_new)
    bracketing = bracketing & ~exhausted

    armijo_fails = (f_new > loss + c1 * t * gtd) | ((ls_iter > 1) & (f_new >= search["f_prev"]))
    curvature_holds = ~armijo_fails & (gtd_new.abs() <= -c2 * gtd)
    uphill = ~armijo_fails & ~curvature_holds & (gtd_new >= 0)
    to_zoom = bracketing & (armijo_fails | uphill)
    _store(
        search,
        to_zoom,
        first,
        search["t_prev"],
        search["f_prev"],
        search["gtd_prev"],
        search["g_prev"],
    )
    _store(search, to_zoom, second, t, f_new, gtd_new, g_new)
    found = bracketing & curvature_holds
    _store(search, found, first, t, f_new, gtd_new, g_new)
    bracket_t, bracket_f = search["bracket_t"], search["bracket_f"]
    sorted_low = torch.where(bracket_f[..., 0] <= bracket_f[..., 1], first, second)
    low = torch.where(exhausted | to_zoom, sorted_low, torch.where(found, first, low))
    phase = torch.where(exhausted | found, _FINISHED, torch.where(to_zoom, _ZOOM, phase))

    extrapolate = bracketing & ~to_zoom & ~found
    t_prev = search["t_prev"]
    t_next = cubic_minimizer(
        t_prev,
        search["f_prev"],
        search["gtd_prev"],
        t,
        f_new,
        gtd_new,
        t + 0.01 * (t - t_prev),
        t * 10,
    )
    search["t_prev"] = torch.where(extrapolate, t, t_prev)
    search["f_prev"] = torch.where(extrapolate, f_new, search["f_prev"])
    search["g_prev"] = torch.where(extrapolate.unsqueeze(-1), g_new, search["g_prev"])
    search["gtd_prev"] = torch.where(extrapolate, gtd_new, search["gtd_prev"])
    t = torch.where(extrapolate, t_next, t)

    # -- zoom (Algorithm 3.6): choose the next trial -------------------------------------------
    zooming = phase == _ZOOM
    left = bracket_t.amin(-1)
    right = bracket_t.amax(-1)
    narrow = (bracket_t[..., 1] - bracket_t[..., 0]).abs() * search["d_norm"] < tolerance_change
    stop = zooming & ((ls_iter >= max_ls) | narrow)
    phase = torch.where(stop, _FINISHED, phase)
    zooming = zooming & ~stop
    trial = cubic_minimizer(
        bracket_t[..., 0],
        bracket_f[..., 0],
        search["bracket_gtd"][..., 0],
        bracket_t[..., 1],
        bracket_f[..., 1],
        search["bracket_gtd"][..., 1],
        left,
        right,
    )
    # A trial too close to an end makes little progress; the second time, move it inward.
    margin = 0.1 * (right - left)
    near_end = torch.minimum(right - trial, trial - left) < margin
    push = near_end & (search["insufficient"] | (trial >= right) | (trial <= left))
    pushed = torch.where(
        (trial - right).abs() < (trial - left).abs(), right - margin, left + margin
    )
    trial = torch.where(push, pushed, trial)
    search["insufficient"] = torch.where(zooming, near_end & ~push, search["insufficient"])
    search["t"] = torch.where(zooming, trial, t)
    search["low"], search["phase"] = low, phase
    return extrapolate | zooming


def _take_trial(
    search: dict[str, Tensor],
    evaluating: Tensor,
    f_eval: Tensor,
    g_eval: Tensor,
    c1: Any,
    c2: Any,
) -> None:
    """Record the evaluated trial of the runs in ``evaluating`` and, for zooming runs, shrink the
    bracket around it (Algorithm 3.6), in place."""
    t, loss, gtd, low = search["t"], search["loss"], search["gtd"], search["low"]
    first, second = torch.zeros_like(low), torch.ones_like(low)
    zooming = (search["phase"] == _ZOOM) & evaluating
    f_new = search["f_new"] = torch.where(evaluating, f_eval, search["f_new"])
    g_new = search["g_new"] = torch.where(evaluating.unsqueeze(-1), g_eval, search["g_new"])
    gtd_new = search["gtd_new"] = torch.where(
        evaluating, run_dot(g_new, search["direction"]), search["gtd_new"]
    )
    search["ls_iter"] = search["ls_iter"] + evaluating.long()
    search["evals"] = search["evals"] + evaluating.long()

    high = 1 - low
    too_high = (f_new > loss + c1 * t * gtd) | (f_new >= _pick(search["bracket_f"], low))
    replace_high = zooming & too_high
    _store(search, replace_high, high, t, f_new, gtd_new, g_new)
    bracket_f = search["bracket_f"]
    resorted = torch.where(bracket_f[..., 0] <= bracket_f[..., 1], first, second)
    low = torch.where(replace_high, resorted, low)

    lower = zooming & ~too_high
    satisfied = lower & (gtd_new.abs() <= -c2 * gtd)
    span = _pick(search["bracket_t"], high) - _pick(search["bracket_t"], low)
    flip = lower & ~satisfied & (gtd_new * span >= 0)
    _store(
        search,
        flip,
        high,
        _pick(search["bracket_t"], low),
        _pick(bracket_f, low),
        _pick(search["bracket_gtd"], low),
        _pick(search["bracket_g"], low),
    )
    _store(search, lower, low, t, f_new, gtd_new, g_new)
    search["low"] = low
    search["phase"] = torch.where(satisfied, _FINISHED, search["phase"])


def _accepted(search: dict[str, Tensor], active: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Loss, gradient and step of each run's accepted point (the bracket's low end), and the
    evaluations each run used."""
    low = search["low"]
    step = torch.where(active, _pick(search["bracket_t"], low), torch.zeros_like(search["t"]))
    return _pick(search["bracket_f"], low), _pick(search["bracket_g"], low), step, search["evals"]


class FlatView:
    """One param group seen as one vector per run (shape ``S + (D,)``), evaluated by a closure.

    The closure convention of descentlab's second-order methods: it zeroes the gradients,
    computes the loss, calls ``backward`` and returns the loss. With ``stack_dims = s > 0`` it
    returns the per-run losses (shape ``S``, the stack shape) and calls
    ``loss.sum().backward()``; runs are independent, so the gradient of the sum is each run's own
    gradient. ``create_graph=True`` is needed by Newton only; here gradients are detached.
    """

    def __init__(self, params: Sequence[Tensor], stack_dims: int, closure: Callable[[], Any]):
        self.params = list(params)
        self.stack_dims = stack_dims
        self.shape = stack_shape(self.params, stack_dims)
        self.closure = closure

    def get(self) -> Tensor:
        return flatten([p.detach() for p in self.params], self.stack_dims).clone()

    def set(self, flat: Tensor) -> None:
        for param, value in zip(
            self.params, unflatten(flat, self.params, self.stack_dims), strict=True
        ):
            param.copy_(value)

    def move(self, step: Tensor, direction: Tensor) -> None:
        """``x += step * direction`` per run (``step`` of shape ``S``)."""
        pieces = unflatten(direction, self.params, self.stack_dims)
        for param, piece in zip(self.params, pieces, strict=True):
            add_scaled_(param, piece, step)

    def grad(self) -> Tensor:
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in self.params]
        return flatten(grads, self.stack_dims)

    def evaluate(self, needed: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
        """Run the closure at the current point: per-run losses (``S``) and gradient; with
        ``needed`` (a mask of shape ``S``), None instead when no run needs the evaluation."""
        value = _run_closure(self.closure, needed)
        if value is _NOT_NEEDED:
            return None
        loss = torch.as_tensor(
            value.detach() if isinstance(value, Tensor) else value,
            dtype=self.params[0].dtype,
            device=self.params[0].device,
        )
        if loss.shape != self.shape:
            raise ValueError(
                f"the closure returned a loss of shape {tuple(loss.shape)}; with stack_dims="
                f"{self.stack_dims} it must return one loss per run, shape {tuple(self.shape)} "
                "(and call loss.sum().backward())"
            )
        return loss, self.grad()

    def evaluator(self, start: Tensor, direction: Tensor) -> Evaluate:
        """``evaluate(steps, needed)`` at ``start + steps * direction``, restoring ``start``
        afterwards (None, parameters untouched, when no run is ``needed``)."""

        def evaluate(steps: Tensor, needed: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
            self.set(start)
            self.move(steps, direction)
            result = self.evaluate(needed)
            self.set(start)
            return result

        return evaluate


#: What :func:`_run_closure` returns when no run needs the evaluation.
_NOT_NEEDED = object()


@torch.compiler.disable
def _run_closure(closure: Callable[[], Any], needed: Tensor | None) -> Any:
    """The closure's value, or ``_NOT_NEEDED`` without calling it when ``needed`` has no run.

    The one graph break of a quasi-Newton step under ``torch.compile(optimizer.step)``: the
    closure calls ``backward()``, which dynamo does not trace ("Unsupported Tensor.backward()
    call" while ``torch._dynamo.config.trace_autograd_ops`` is off, its default), so it runs
    eagerly here. Whether to call it at all is decided here too, next to the call, because how
    many evaluations an iteration or a line search takes depends on the losses it has seen.
    """
    if needed is not None and not bool(needed.any()):
        return _NOT_NEEDED
    with torch.enable_grad():
        return closure()


def per_run(name: str, value: Any, params: Sequence[Tensor], stack_dims: int) -> Any:
    """A hyperparameter as one value per run: a Python number as is, a tensor as shape ``S``.

    Step sizes and tolerances of a line search are scalars of each run, so a tensor must be
    constant over each run's own coordinates (shape ``(K, 1)`` for a stack of K runs, say).
    """
    value = fit(value, params[0], stack_dims)
    if not isinstance(value, Tensor):
        return value
    param = params[0]
    shape = param.shape[:stack_dims]
    values = value.expand(param.shape).reshape(*shape, -1)
    # Checked eagerly (a group's values are checked when it is added, so a compiled step need
    # not break its graph to check them again).
    if not torch.compiler.is_compiling() and not bool((values == values[..., :1]).all()):
        raise ValueError(
            f"{name} must have one value per run (shape {tuple(shape)} padded with ones), "
            f"got a tensor of shape {tuple(value.shape)} that varies within a run"
        )
    return values[..., 0].to(param.dtype)
