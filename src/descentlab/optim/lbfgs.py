"""L-BFGS (Liu & Nocedal, 1989) with a strong-Wolfe line search.

The iteration loop, stopping rules and line search are shared with BFGS (see
``_quasi_newton``); this module holds what is L-BFGS's own: the memory of the last
``history_size`` curvature pairs and the two-loop recursion that turns it into a direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._hyper import Hyper
from ._line_search import add_scaled_, run_dot
from ._quasi_newton import Direction, QuasiNewton, Remember
from .spec import Hyperparameter, Paper, Spec, StateBuffer

#: Curvature pairs with s'y below this are skipped (they would break positive definiteness).
CURVATURE_THRESHOLD = 1e-10


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
