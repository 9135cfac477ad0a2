"""Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm of past gradients in place
of the root mean square."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, zeroed
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor) -> dict[str, Any]:
    return zeroed(param, "exp_avg", "exp_inf")


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One Adamax step (torch.optim.Adamax's arithmetic: epsilon inside the max, as torch does).

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad
        u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon),\\quad
        \\theta_t = \\theta_{t-1} - \\frac{\\eta}{1-\\beta_1^t} \\frac{m_t}{u_t}
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, 1 - beta1)
        torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
        corrected_lr = lr / (1 - beta1**step)
        _hyper.subcdiv_(param, exp_avg, exp_inf, corrected_lr)


class Adamax(Optimizer):
    """Adamax, a drop-in for ``torch.optim.Adamax``.

    Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR, section 7.1.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
    )
    checked_betas = ("betas",)
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 2e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            **torch_flags("Adamax", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="adamax",
        title="Adamax",
        summary="Adam with the largest recent gradient magnitude (an infinity norm) as the "
        "denominator: no square root, no bias correction of the denominator.",
        paper=Paper(
            "Kingma, D. P. and Ba, J.", 2015, "Adam: A Method for Stochastic Optimization", "ICLR"
        ),
        equations=(
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"u_t = \max(\beta_2\, u_{t-1},\ |g_t| + \epsilon)",
            r"\theta_t = \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\, \frac{m_t}{u_t}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 2e-3, "step size", r"\eta", 1e-4, 1e-1, "log"),
            decay_rate(0, 0.9, "decay of the gradient average", 0.5, 0.99),
            decay_rate(1, 0.999, "decay of the infinity-norm estimate", 0.9, 0.9999),
            Hyperparameter("eps", 1e-8, "added to |g| inside the max", r"\epsilon"),
            Hyperparameter("weight_decay", 0.0, "coupled L2 penalty", r"\lambda"),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient", "m"),
            StateBuffer("exp_inf", "decaying maximum of |gradient|", "u"),
        ),
        elementwise=True,
        factory=Adamax,
        teaches="the infinity norm gives a denominator that is stable and needs no root",
    ),
)
