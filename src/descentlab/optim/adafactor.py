"""Adafactor: Adam-like steps with a second moment stored as row and column factors.

Shazeer, N. and Stern, M. (2018). Adafactor: Adaptive Learning Rates with Sublinear Memory Cost.
ICML.

For an ``m x n`` weight matrix Adafactor keeps only the running means of the squared gradient over
each row (``m`` numbers) and over each column (``n`` numbers) and rebuilds the second moment as
their outer product divided by the overall mean: memory ``m + n`` instead of ``m n``. Vectors keep
an ordinary elementwise average. There is no momentum; the step is relative to the parameter's
root mean square, its size capped by ``min(lr, 1/sqrt(t))``, and the update is clipped so that its
RMS stays below ``d``. The decay ``1 - beta2_t = t^beta2_decay`` grows the averaging window with t.

This is a drop-in for ``torch.optim.Adafactor``: same signature, defaults, state keys (``step``,
``row_var``, ``col_var``, ``variance``) and arithmetic (its single-tensor path), including torch's
departures from the paper: ``lr`` caps the relative step size and scales the decoupled weight
decay, and ``eps1`` (default: the dtype's machine epsilon) floors the row mean and the root of the
variance estimate instead of being added to the squared gradient.

Stacked runs (``stack_dims = s``) and torch's "last two dims are the matrix" rule combine so that
each run behaves exactly as it would alone in torch: a parameter whose *own* dimensions (those
after the first ``s``) number two or more is factored over its last two dimensions, any own
dimensions before those being a batch of matrices as in torch; one with at most one own dimension
keeps an elementwise ``variance``. So a ``(K, m, n)`` parameter with ``s = 1`` is ``K`` factored
``m x n`` matrices, a ``(K, n)`` parameter with ``s = 1`` is ``K`` vectors (torch alone would
factor a ``(K, n)`` matrix). The parameter RMS that sets the step and the update RMS that is
clipped are taken per run, over the run's own dimensions. Hyperparameter tensors must hold one
value per run (size 1 along every own dimension), because they scale per-run quantities.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import slice_norm
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def is_factored(param: Tensor, stack_dims: int) -> bool:
    """Whether a run of ``param`` is a matrix (or a batch of them): two or more own dimensions."""
    return param.dim() - stack_dims > 1


def init_state(param: Tensor, *, stack_dims: int) -> dict[str, Any]:
    state: dict[str, Any] = {"step": step_counter()}
    if is_factored(param, stack_dims):
        row_shape, col_shape = list(param.shape), list(param.shape)
        row_shape[-1] = 1
        col_shape[-2] = 1
        state["row_var"] = param.new_zeros(row_shape)
        state["col_var"] = param.new_zeros(col_shape)
    else:
        state["variance"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def _check_per_run(name: str, value: Hyper | None, param: Tensor, stack_dims: int) -> None:
    if not isinstance(value, Tensor):
        return
    offset = param.dim() - value.dim()
    for position, size in enumerate(value.shape):
        if offset + position >= stack_dims and size != 1:
            raise ValueError(
                f"Adafactor's {name} of shape {tuple(value.shape)} varies within one run of a "
                f"parameter of shape {tuple(param.shape)} (stack_dims={stack_dims}); give one "
                "value per run (size 1 along the run's own dimensions)"
            )


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    beta2_decay: Hyper,
    eps: tuple[Hyper | None, Hyper],
    d: Hyper,
    weight_decay: Hyper,
    maximize: bool,
    stack_dims: int,
) -> None:
    """One Adafactor step (torch.optim.Adafactor's arithmetic, per run when stacked).

    .. math::
        \\hat\\beta_{2,t} = 1 - t^{c},\\quad \\rho_t = \\min(\\gamma, 1/\\sqrt t),\\quad
        \\alpha_t = \\max(\\epsilon_2, \\mathrm{RMS}(\\theta_{t-1}))\\,\\rho_t

        R_t = \\hat\\beta_{2,t} R_{t-1} + (1-\\hat\\beta_{2,t})\\,\\mathrm{mean}_j G_{ij}^2,\\quad
        C_t = \\hat\\beta_{2,t} C_{t-1} + (1-\\hat\\beta_{2,t})\\,\\mathrm{mean}_i G_{ij}^2,\\quad
        \\hat V_t = \\frac{R_t C_t}{\\max(\\mathrm{mean}_i R_t, \\epsilon_1)}

        U_t = \\frac{G_t}{\\max(\\sqrt{\\hat V_t}, \\epsilon_1)},\\quad
        \\theta_t = (1 - \\gamma\\lambda)\\theta_{t-1}
            - \\frac{\\alpha_t\\, U_t}{\\max(1, \\mathrm{RMS}(U_t)/d)}
    """
    eps1, eps2 = eps
    hyperparameters = {
        "lr": lr,
        "beta2_decay": beta2_decay,
        "eps[0]": eps1,
        "eps[1]": eps2,
        "d": d,
        "weight_decay": weight_decay,
    }
    # torch's path: Python-number arithmetic on .item() values, which we follow exactly when
    # there is one run and every hyperparameter is a number.
    # (Not while torch.compile traces: .item() would break its graph.)
    as_torch = (
        stack_dims == 0
        and not any(isinstance(value, Tensor) for value in hyperparameters.values())
        and not torch.compiler.is_compiling()
    )
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        if not as_torch:
            for name, value in hyperparameters.items():
                _check_per_run(name, value, param, stack_dims)
        grad = -grad if maximize else grad
        step = advance(state)
        floor = torch.finfo(param.dtype).eps if eps1 is None else eps1
        one_minus_beta2 = step**beta2_decay
        run_size = math.prod(param.shape[stack_dims:])
        largest_rho = 1 / (step**0.5)
        if as_torch:
            rho = min(lr, largest_rho)
            alpha = max(eps2, param.norm(2).item() / (run_size**0.5)) * rho
        else:
            if isinstance(lr, Tensor):
                rho = lr.clamp(max=largest_rho)
            elif isinstance(largest_rho, Tensor):  # a traced step count
                rho = largest_rho.clamp(max=lr)
            else:
                rho = min(lr, largest_rho)
            param_rms = slice_norm(param, stack_dims) / (run_size**0.5)
            alpha = torch.clamp(param_rms, min=eps2) * rho

        if decay:
            param.mul_(1 - lr * weight_decay)

        if "row_var" in state:
            row_var, col_var = state["row_var"], state["col_var"]
            # mean of g^2 over each row / column, via the norm to avoid a g*g temporary
            row_mean = torch.norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1))
            row_var.lerp_(row_mean, one_minus_beta2)
            col_mean = torch.norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2))
            col_var.lerp_(col_mean, one_minus_beta2)
            var_estimate = row_var @ col_var
            var_estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=floor))
        else:
            variance = state["variance"]
            variance.lerp_(grad * grad, one_minus_beta2)
            var_estimate = variance.clone()

        # clamp at eps1^2 before the root: the same as max(sqrt(V), eps1)
        step_direction = var_estimate.clamp_(min=floor * floor).rsqrt_().mul_(grad)
        if as_torch:
            clip = max(1.0, step_direction.norm(2).item() / ((run_size**0.5) * d))
            param.add_(step_direction, alpha=-alpha / clip)
        else:
            update_rms = slice_norm(step_direction, stack_dims) / (run_size**0.5)
            clip = torch.clamp(update_rms / d, min=1.0)
            param.add_(step_direction.mul_(-alpha / clip))


class Adafactor(Optimizer):
    """Adafactor, a drop-in for ``torch.optim.Adafactor`` (signature, defaults, state, numerics).

    Shazeer, N. and Stern, M. (2018). Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost. ICML. See the module docstring for torch's departures from the paper (kept) and for
    how stacked runs are factored. Hyperparameters may be tensors holding one value per run.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    checked_nonnegative = (
        "lr",
        "weight_decay",
    )
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        beta2_decay: Hyper = -0.8,
        eps: tuple[Hyper | None, Hyper] = (None, 1e-3),
        d: Hyper = 1.0,
        weight_decay: Hyper = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            beta2_decay=beta2_decay,
            eps=tuple(eps) if isinstance(eps, list) else eps,
            d=d,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("beta2_decay", group["beta2_decay"], high=0.0)
        eps = group["eps"]
        if not isinstance(eps, tuple | list) or len(eps) != 2:
            raise TypeError(f"eps must be a tuple (eps1 or None, eps2), got {eps!r}")
        if eps[0] is not None:
            _hyper.check_nonnegative("eps[0]", eps[0])
        _hyper.check_nonnegative("eps[1]", eps[1])
        _hyper.check_range("d", group["d"], 1.0)


SPECS = (
    Spec(
        key="adafactor",
        title="Adafactor",
        summary="Adaptive steps with a second moment stored as row and column averages: memory "
        "grows with rows + columns instead of rows x columns. Steps are relative to the size "
        "of the weights and clipped.",
        paper=Paper(
            "Shazeer, N. and Stern, M.",
            2018,
            "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
            "ICML",
            "https://arxiv.org/abs/1804.04235",
        ),
        equations=(
            r"\hat\beta_{2,t} = 1 - t^{c}, \quad \rho_t = \min(\gamma, 1/\sqrt{t}), \quad "
            r"\alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\, \rho_t",
            r"R_t = \hat\beta_{2,t} R_{t-1} + (1 - \hat\beta_{2,t})\, \mathrm{mean}_j\, G_{t,ij}^2",
            r"C_t = \hat\beta_{2,t} C_{t-1} + (1 - \hat\beta_{2,t})\, \mathrm{mean}_i\, G_{t,ij}^2",
            r"\hat V_t = \frac{R_t C_t}{\max(\mathrm{mean}_i R_t, \epsilon_1)} "
            r"\quad \text{(vectors: } \hat V_t = \hat\beta_{2,t} \hat V_{t-1} "
            r"+ (1 - \hat\beta_{2,t}) G_t^2 \text{)}",
            r"U_t = \frac{G_t}{\max(\sqrt{\hat V_t}, \epsilon_1)}, \quad "
            r"\hat U_t = \frac{U_t}{\max(1, \mathrm{RMS}(U_t) / d)}",
            r"\theta_t = (1 - \gamma \lambda)\, \theta_{t-1} - \alpha_t \hat U_t",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1e-2,
                "cap on the relative step size rho_t (the paper's constant 0.01); also scales "
                "the weight decay",
                r"\gamma",
                1e-4,
                1e-1,
                "log",
            ),
            Hyperparameter(
                "beta2_decay",
                -0.8,
                "exponent c of 1 - beta2_t = t^c: closer to 0 forgets faster",
                "c",
                -1.0,
                -0.5,
                "linear",
            ),
            Hyperparameter(
                "eps1",
                None,
                "floor of the row mean and of sqrt(V) (None: the dtype's machine epsilon)",
                r"\epsilon_1",
                argument="eps",
                index=0,
            ),
            Hyperparameter(
                "eps2",
                1e-3,
                "floor of the parameter RMS, so that zero weights still move",
                r"\epsilon_2",
                argument="eps",
                index=1,
            ),
            Hyperparameter(
                "d",
                1.0,
                "clipping threshold on the RMS of the update",
                "d",
                1.0,
                4.0,
                "linear",
            ),
            Hyperparameter(
                "weight_decay",
                0.0,
                "decoupled decay of the weights, scaled by lr",
                r"\lambda",
            ),
        ),
        state=(
            StateBuffer("row_var", "row factor: running mean of g^2 over each row", "R"),
            StateBuffer("col_var", "column factor: running mean of g^2 over each column", "C"),
            StateBuffer("variance", "running mean of g^2 for vectors (not factored)", r"\hat V"),
        ),
        factory=Adafactor,
        family="modern",
        teaches="a matrix's second moment is well approximated by its row and column averages, "
        "at a fraction of the memory",
    ),
)
