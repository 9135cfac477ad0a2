"""BFGS (Broyden, Fletcher, Goldfarb and Shanno, 1970): a dense inverse-Hessian approximation
updated from each step and gradient change, with a strong-Wolfe line search.

The iteration loop, stopping rules and line search are L-BFGS's (see ``_quasi_newton``); only the
direction differs: :math:`d = -H g` with the full matrix :math:`H` of each run (shape
``S + (D, D)``), so BFGS suits problems with up to a few thousand coordinates per run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._hyper import Hyper
from ._quasi_newton import Direction, QuasiNewton, Remember
from .spec import Hyperparameter, Paper, Spec, StateBuffer

#: A pair is used when s'y > RELATIVE_CURVATURE * |s| |y| (the cosine of their angle).
RELATIVE_CURVATURE = 1e-10


def init_inverse_hessian(state: dict, flat_grad: Tensor) -> None:
    """:math:`H_0 = I` per run, to be rescaled at the first accepted update."""
    if "inverse_hessian" in state:
        return
    shape, size = flat_grad.shape[:-1], flat_grad.shape[-1]
    eye = torch.eye(size, dtype=flat_grad.dtype, device=flat_grad.device)
    state["inverse_hessian"] = eye.expand(*shape, size, size).clone()
    state["updates"] = flat_grad.new_zeros(shape)


def bfgs_update(state: dict, s: Tensor, y: Tensor, ys: Tensor, accept: Tensor) -> None:
    """The BFGS inverse update (Nocedal & Wright, eq. 6.17) for the runs in ``accept`` whose pair
    has :math:`s^\\top y > 10^{-10} \\|s\\| \\|y\\|` (positive curvature, scale-free).

    .. math::
        H \\leftarrow (I - \\rho s y^\\top) H (I - \\rho y s^\\top) + \\rho s s^\\top,
        \\quad \\rho = 1 / (y^\\top s)

    expanded as :math:`H - \\rho (s (Hy)^\\top + (Hy) s^\\top) + (\\rho^2 y^\\top H y + \\rho)
    s s^\\top` (:math:`O(D^2)` per run). Before a run's first update :math:`H` is rescaled to
    :math:`\\frac{y^\\top s}{y^\\top y} I` (eq. 6.20), so the first quasi-Newton step has the
    length of a Newton step along the measured curvature.
    """
    # A scale-free curvature test: torch's absolute s'y > 1e-10 (used by L-BFGS for torch's
    # sake) stops all updates once steps are ~1e-5 long and so costs superlinear convergence.
    accept = accept & (ys > RELATIVE_CURVATURE * (s * s).sum(-1).sqrt() * (y * y).sum(-1).sqrt())
    # Eagerly, skip the O(D^2) update when no run takes it (without the skip, 30 steps at
    # D = 1000 took 15.7 instead of 12.8 ms each). Under torch.compile every run computes it and
    # those outside ``accept`` keep their matrix: a branch on a tensor would break the graph.
    if not torch.compiler.is_compiling() and not bool(accept.any()):
        return
    inverse = state["inverse_hessian"]
    first = accept & (state["updates"] == 0)
    scale = ys / (y * y).sum(-1)
    inverse = torch.where(first[..., None, None], inverse * scale[..., None, None], inverse)
    rho = (1.0 / ys)[..., None, None]
    hy = (inverse @ y.unsqueeze(-1)).squeeze(-1)
    yhy = (y * hy).sum(-1)[..., None, None]
    s_col, hy_col = s.unsqueeze(-1), hy.unsqueeze(-1)
    updated = (
        inverse
        - rho * (s_col * hy_col.transpose(-1, -2) + hy_col * s_col.transpose(-1, -2))
        + (rho * rho * yhy + rho) * (s_col * s_col.transpose(-1, -2))
    )
    state["inverse_hessian"] = torch.where(accept[..., None, None], updated, inverse)
    state["updates"] = state["updates"] + accept.to(ys.dtype)


def bfgs_direction(state: dict, grad: Tensor) -> Tensor:
    """:math:`d = -H g` per run (a batched matrix-vector product)."""
    return -(state["inverse_hessian"] @ grad.unsqueeze(-1)).squeeze(-1)


class BFGS(QuasiNewton):
    """BFGS with a strong-Wolfe line search (Nocedal & Wright, Algorithm 6.1).

    Broyden, C. G. (1970), Fletcher, R. (1970), Goldfarb, D. (1970), Shanno, D. F. (1970); see
    Nocedal, J. and Wright, S. J. (2006). Numerical Optimization, 2nd ed., Springer, chapter 6.

    Arguments as :class:`~descentlab.optim.lbfgs.LBFGS` without ``history_size``. By default one
    iteration per ``step(closure)`` (``max_iter=1``), the unit the lab and the arena count; the
    default ``max_eval`` is ``25 * max_iter + 1``, a full line search (25 evaluations, torch's
    ``max_ls``) for every iteration. ``line_search_fn=None`` steps by ``lr`` without a search.
    Memory: one ``D x D`` matrix per run.

    Closure: zero the gradients, compute the loss, ``backward``, return the loss; with stacked
    runs return the per-run losses (shape ``S``) and call ``loss.sum().backward()``.
    """

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: Hyper = 1e-7,
        tolerance_change: Hyper = 1e-9,
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
            line_search_fn=line_search_fn,
            c1=c1,
            c2=c2,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _default_max_eval(max_iter: Any) -> Any:
        return 25 * max_iter + 1 if isinstance(max_iter, int) else max_iter

    def rules(self, group: dict[str, Any]) -> tuple[Remember, Direction, Callable]:
        return bfgs_update, bfgs_direction, init_inverse_hessian


SPECS = (
    Spec(
        key="bfgs",
        title="BFGS",
        summary="Learn the inverse Hessian from how the gradient changes along each step, and "
        "let a line search choose how far to go.",
        paper=Paper(
            "Nocedal, J. and Wright, S. J.",
            2006,
            "Numerical Optimization (2nd ed.), chapter 6: Quasi-Newton Methods (BFGS: Broyden, "
            "Fletcher, Goldfarb and Shanno, 1970)",
            "Springer",
        ),
        equations=(
            r"d_k = -H_k \, g_k, \quad \theta_{k+1} = \theta_k + t_k d_k",
            r"f(\theta_k + t d_k) \le f(\theta_k) + c_1 t \, g_k^\top d_k, \quad "
            r"|\nabla f(\theta_k + t d_k)^\top d_k| \le c_2 \, |g_k^\top d_k|",
            r"s_k = \theta_{k+1} - \theta_k, \quad y_k = g_{k+1} - g_k, \quad "
            r"\rho_k = \frac{1}{y_k^\top s_k}",
            r"H_{k+1} = (I - \rho_k s_k y_k^\top) \, H_k \, (I - \rho_k y_k s_k^\top) "
            r"+ \rho_k s_k s_k^\top",
            r"H_0 = \frac{y_0^\top s_0}{y_0^\top y_0} I \text{ (before the first update)}",
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
            Hyperparameter("max_iter", 1, "iterations per step() call"),
            Hyperparameter("tolerance_grad", 1e-7, "stop when max |g| is below this"),
            Hyperparameter("tolerance_change", 1e-9, "stop when progress is below this"),
            Hyperparameter("line_search_fn", "strong_wolfe", "line search (or None: fixed lr)"),
            Hyperparameter("c1", 1e-4, "sufficient-decrease constant", "c_1"),
            Hyperparameter("c2", 0.9, "curvature constant", "c_2"),
        ),
        state=(
            StateBuffer("inverse_hessian", "approximate inverse Hessian per run", "H"),
            StateBuffer("updates", "curvature pairs taken into H per run", ""),
            StateBuffer("d", "last search direction", "d"),
            StateBuffer("t", "last step length", "t"),
            StateBuffer("prev_flat_grad", "gradient at the start of the last iteration", "g"),
            StateBuffer("prev_loss", "loss at the start of the last iteration", "f"),
            StateBuffer("n_iter", "iterations done per run", "k"),
            StateBuffer("func_evals", "closure evaluations per run", ""),
        ),
        factory=BFGS,
        order=1,
        needs_closure=True,
        teaches="curvature can be learned from gradients alone: superlinear convergence "
        "without a single second derivative",
    ),
)
