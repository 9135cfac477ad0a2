"""L-BFGS (Liu & Nocedal, 1989) with a strong-Wolfe line search, and the quasi-Newton loop BFGS
shares with it.

The loop is torch.optim.LBFGS's (minFunc's): each ``step(closure)`` runs up to ``max_iter``
iterations, stopping early when the gradient's largest entry is below ``tolerance_grad``, when
the slope along the direction, the move or the change of the loss is below
``tolerance_change``, or when ``max_eval`` closure evaluations are spent. Every quantity is kept
per run (see ``_stack``): with ``stack_dims = s`` a run that stops early waits, unchanged, while
the others go on, so K stacked runs take exactly the iterations K separate runs would.

With several param groups, each group is minimized in turn with the others held fixed (block
coordinate descent; the closure is evaluated afresh for each group). With one group, the usual
case and torch's only one, this is plain L-BFGS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._line_search import FlatView, add_scaled_, per_run, run_dot, strong_wolfe
from .spec import Hyperparameter, Paper, Spec, StateBuffer

LINE_SEARCHES = ("strong_wolfe", None)
#: Curvature pairs with s'y below this are skipped (they would break positive definiteness).
CURVATURE_THRESHOLD = 1e-10

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


# ----------------------------------------------------------------------------- L-BFGS memory


def remember(state: dict, s: Tensor, y: Tensor, ys: Tensor, accept: Tensor, *, history_size: int):
    """Append ``(s, y)`` to each run's memory, dropping its oldest pair when full.

    Only runs in ``accept`` with :math:`s^\\top y > 10^{-10}` take the pair (torch's absolute
    test; a pair with :math:`s^\\top y \\le 0` would make the approximation indefinite).

    Each run keeps its pairs oldest first at the front of ``old_stps``/``old_dirs`` (shape
    ``S + (n, D)``); ``ro`` is ``1 / s'y`` there and 0 in unused slots, which makes unused slots
    no-ops in the two-loop recursion.
    """
    accept = accept & (ys > CURVATURE_THRESHOLD)
    count = state["history_count"]
    size = state["old_dirs"].shape[-2]
    if size < history_size:
        if torch.compiler.is_compiling():
            # A buffer that grew with the memory would change shape, and so recompile the
            # compiled step, at each new pair: under torch.compile it takes every slot at once.
            _pad_memory(state, history_size)
            size = history_size
        elif bool((accept & (count == size)).any()):
            _pad_memory(state, size + 1)
            size += 1
    full = accept & (count == size)
    position = torch.where(full, size - 1, count).long()
    slot = (torch.arange(size, device=count.device) == position.unsqueeze(-1)) & accept.unsqueeze(
        -1
    )
    for key, new in (("old_dirs", y), ("old_stps", s), ("ro", 1.0 / ys)):
        buffer = state[key]
        if buffer.dim() == slot.dim():
            shifted = torch.where(full.unsqueeze(-1), buffer.roll(-1, -1), buffer)
            state[key] = torch.where(slot, new.unsqueeze(-1), shifted)
        else:
            shifted = torch.where(full[..., None, None], buffer.roll(-1, -2), buffer)
            state[key] = torch.where(slot.unsqueeze(-1), new.unsqueeze(-2), shifted)
    state["history_count"] = torch.where(accept & ~full, count + 1, count)
    # Nocedal & Wright (7.20): scale the initial inverse Hessian by s'y / y'y.
    state["H_diag"] = torch.where(accept, ys / run_dot(y, y), state["H_diag"])


def _pad_memory(state: dict, size: int) -> None:
    """Give the memory ``size`` slots, the new ones empty (zero, ``ro`` 0: no-ops in the two-loop
    recursion, so a padded memory gives the same direction)."""
    rows = size - state["old_dirs"].shape[-2]
    if rows <= 0:
        return
    for key in ("old_dirs", "old_stps"):
        buffer = state[key]
        state[key] = torch.cat(
            [buffer, buffer.new_zeros(*buffer.shape[:-2], rows, buffer.shape[-1])], -2
        )
    ro = state["ro"]
    state["ro"] = torch.cat([ro, ro.new_zeros(*ro.shape[:-1], rows)], -1)


def two_loop_direction(state: dict, grad: Tensor) -> Tensor:
    """:math:`-H g` by the two-loop recursion (Nocedal & Wright, Algorithm 7.4), per run."""
    old_dirs, old_stps, ro = state["old_dirs"], state["old_stps"], state["ro"]
    count = old_dirs.shape[-2]
    q = -grad
    alphas = [None] * count
    for i in range(count - 1, -1, -1):
        alphas[i] = run_dot(old_stps[..., i, :], q) * ro[..., i]
        q = add_scaled_(q, old_dirs[..., i, :], -alphas[i])
    r = q * state["H_diag"].unsqueeze(-1)
    for i in range(count):
        beta = run_dot(old_dirs[..., i, :], r) * ro[..., i]
        r = add_scaled_(r, old_stps[..., i, :], alphas[i] - beta)
    return r


def init_memory(state: dict, flat_grad: Tensor) -> None:
    if "old_dirs" in state:
        return
    shape, size = flat_grad.shape[:-1], flat_grad.shape[-1]
    state.update(
        old_dirs=flat_grad.new_zeros(*shape, 0, size),
        old_stps=flat_grad.new_zeros(*shape, 0, size),
        ro=flat_grad.new_zeros(*shape, 0),
        history_count=flat_grad.new_zeros(shape),
        H_diag=flat_grad.new_ones(shape),
    )


# ----------------------------------------------------------------------------- the classes


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


class LBFGS(QuasiNewton):
    """L-BFGS: quasi-Newton steps from the last ``history_size`` curvature pairs.

    Liu, D. C. and Nocedal, J. (1989). On the limited memory BFGS method for large scale
    optimization. Mathematical Programming 45, 503-528. Direction by the two-loop recursion
    (Nocedal & Wright, Numerical Optimization, Algorithm 7.4) with :math:`H_0 = \\gamma I`,
    :math:`\\gamma = s^\\top y / y^\\top y` (7.20); step by a strong-Wolfe line search.

    A drop-in for ``torch.optim.LBFGS`` with the same arguments and arithmetic, except that the
    line search is on by default (``line_search_fn="strong_wolfe"``, as in SciPy); pass
    ``line_search_fn=None`` for torch's fixed step ``lr``. Beyond torch: param groups (minimized
    in turn), stacked runs (``stack_dims``) and per-run tensor hyperparameters (``lr``,
    tolerances, ``c1``, ``c2`` of shape ``S`` padded with ones).

    Closure: zero the gradients, compute the loss, ``backward`` (``create_graph`` not needed),
    return the loss; with stacked runs return the per-run losses and call
    ``loss.sum().backward()``.
    """

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: Hyper = 1e-7,
        tolerance_change: Hyper = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = "strong_wolfe",
        *,
        c1: Hyper = 1e-4,
        c2: Hyper = 0.9,
    ) -> None:
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
            c1=c1,
            c2=c2,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        size = group["history_size"]
        _hyper.check_integer("history_size", size, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict of ours or of ``torch.optim.LBFGS``.

        torch's groups lack ``stack_dims``, ``c1`` and ``c2`` (they take our defaults), and its
        state keeps the history as Python lists and the counters as Python numbers; both are
        converted to this class's per-run tensors (one run, stack shape ``()``), so that the
        next ``step`` continues exactly where torch's would.
        """
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            state = self.state.get(group["params"][0])
            if state and not isinstance(state.get("n_iter"), Tensor):
                _from_torch_state(state, group["params"])

    def rules(self, group: dict[str, Any]) -> tuple[Remember, Direction, Callable]:
        size = group["history_size"]

        def remember_pair(state, s, y, ys, accept):
            remember(state, s, y, ys, accept, history_size=size)

        return remember_pair, two_loop_direction, init_memory


def _from_torch_state(state: dict[str, Any], params: list[Tensor]) -> None:
    """Turn ``torch.optim.LBFGS``'s state (lists and numbers) into ours, in place."""
    like = params[0]
    size = sum(param.numel() for param in params)

    def scalar(value: Any) -> Tensor:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(())

    state.pop("al", None)
    for key in ("func_evals", "n_iter", "t", "prev_loss", "H_diag"):
        if key in state:
            state[key] = scalar(state[key])
    if "d" not in state:
        # torch returned before its first iteration (zero gradient): only the counts exist.
        state.pop("n_iter", None)
        return
    for key in ("old_dirs", "old_stps"):
        pairs = state.get(key) or []
        state[key] = torch.stack(pairs) if pairs else like.new_zeros(0, size)
    rhos = state.get("ro") or []
    state["ro"] = torch.stack([scalar(rho) for rho in rhos]) if rhos else like.new_zeros(0)
    state["history_count"] = scalar(len(rhos))
    state.setdefault("H_diag", scalar(1.0))


SPECS = (
    Spec(
        key="lbfgs",
        title="L-BFGS",
        summary="Quasi-Newton steps built from the last few gradient differences, without ever "
        "storing a matrix; a line search picks each step length.",
        paper=Paper(
            "Liu, D. C. and Nocedal, J.",
            1989,
            "On the limited memory BFGS method for large scale optimization",
            "Mathematical Programming 45",
        ),
        equations=(
            r"s_k = \theta_{k+1} - \theta_k, \quad y_k = g_{k+1} - g_k, \quad "
            r"\rho_k = \frac{1}{y_k^\top s_k}",
            r"q \leftarrow g_k; \quad \alpha_i = \rho_i s_i^\top q, \quad "
            r"q \leftarrow q - \alpha_i y_i \quad (i = k-1, \dots, k-m)",
            r"r \leftarrow \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}} \, q; \quad "
            r"\beta_i = \rho_i y_i^\top r, \quad r \leftarrow r + s_i (\alpha_i - \beta_i) "
            r"\quad (i = k-m, \dots, k-1)",
            r"\theta_{k+1} = \theta_k - t_k \, r, \quad t_k \text{ satisfies the strong Wolfe "
            r"conditions}",
            r"f(\theta_k + t d) \le f(\theta_k) + c_1 t \, g_k^\top d, \quad "
            r"|\nabla f(\theta_k + t d)^\top d| \le c_2 \, |g_k^\top d|",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1.0,
                "first trial step of the line search (the step without one)",
                r"\eta",
                0.1,
                1.0,
                "log",
            ),
            Hyperparameter("max_iter", 20, "iterations per step() call"),
            Hyperparameter(
                "history_size",
                100,
                "curvature pairs kept in memory",
                "m",
                scale="choice",
                choices=(5, 10, 20, 100),
            ),
            Hyperparameter("tolerance_grad", 1e-7, "stop when max |g| is below this"),
            Hyperparameter("tolerance_change", 1e-9, "stop when progress is below this"),
            Hyperparameter("line_search_fn", "strong_wolfe", "line search (or None: fixed lr)"),
            Hyperparameter("c1", 1e-4, "sufficient-decrease constant", "c_1"),
            Hyperparameter("c2", 0.9, "curvature constant", "c_2"),
        ),
        state=(
            StateBuffer("old_dirs", "gradient differences y_i, oldest first", "y"),
            StateBuffer("old_stps", "steps s_i, oldest first", "s"),
            StateBuffer("ro", "1 / (y_i' s_i), 0 in unused slots", r"\rho"),
            StateBuffer("history_count", "pairs held per run", "m_k"),
            StateBuffer("H_diag", "scale of the initial inverse Hessian", r"\gamma"),
            StateBuffer("d", "last search direction", "d"),
            StateBuffer("t", "last step length", "t"),
            StateBuffer("prev_flat_grad", "gradient at the start of the last iteration", "g"),
            StateBuffer("prev_loss", "loss at the start of the last iteration", "f"),
            StateBuffer("n_iter", "iterations done per run", "k"),
            StateBuffer("func_evals", "closure evaluations per run", ""),
        ),
        factory=LBFGS,
        order=1,
        needs_closure=True,
        teaches="a few remembered gradient differences buy most of Newton's curvature for the "
        "memory of a few gradients",
    ),
)
