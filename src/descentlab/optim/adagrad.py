"""Adagrad (Duchi, Hazan & Singer, 2011): per-coordinate steps scaled by the root of the sum of
all past squared gradients, so frequently-updated coordinates slow down and rare ones keep moving."""

from __future__ import annotations

from typing import Any

import torch
import torch.optim.adagrad as torch_adagrad
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._fused import fused_steps
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor, *, initial_accumulator_value: Hyper) -> dict[str, Any]:
    accumulator = torch.zeros_like(param, memory_format=torch.preserve_format)
    return {"step": step_counter(), "sum": accumulator.add_(initial_accumulator_value)}


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    lr_decay: Hyper,
    weight_decay: Hyper,
    eps: Hyper,
    maximize: bool,
) -> None:
    """One Adagrad step (torch.optim.Adagrad's arithmetic).

    .. math::
        \\eta_t = \\frac{\\eta}{1 + (t-1)\\,\\text{lr\\_decay}},\\quad
        G_t = G_{t-1} + g_t^2,\\quad
        \\theta_t = \\theta_{t-1} - \\eta_t \\frac{g_t}{\\sqrt{G_t} + \\epsilon}
    """
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        decayed_lr = lr / (1 + (step - 1) * lr_decay)
        accumulator = state["sum"]
        accumulator.addcmul_(grad, grad, value=1)
        std = accumulator.sqrt().add_(eps)
        _hyper.subcdiv_(param, grad, std, decayed_lr)


def fused_update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """The same step by torch's fused Adagrad kernel (``torch.optim.Adagrad(fused=True)``)."""
    torch_adagrad.adagrad(
        params,
        grads,
        [state["sum"] for state in states],
        fused_steps(params, states),
        fused=True,
        lr=lr,
        weight_decay=weight_decay,
        lr_decay=lr_decay,
        eps=eps,
        maximize=maximize,
    )


class Adagrad(Optimizer):
    """Adagrad, a drop-in for ``torch.optim.Adagrad`` (dense gradients).

    Duchi, J., Hazan, E. and Singer, Y. (2011). Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization. JMLR 12.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    fused_kernel = staticmethod(fused_update)
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        lr_decay: Hyper = 0,
        weight_decay: Hyper = 0,
        initial_accumulator_value: Hyper = 0,
        eps: Hyper = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            **torch_flags("Adagrad", foreach, differentiable=differentiable, fused=fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _hyper.check_nonnegative(name, group[name])


SPECS = (
    Spec(
        key="adagrad",
        title="Adagrad",
        summary="Divide each coordinate's step by the root of its summed squared gradients: "
        "rare features get large steps, frequent ones small, and every step keeps shrinking.",
        paper=Paper(
            "Duchi, J., Hazan, E. and Singer, Y.",
            2011,
            "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
            "JMLR 12",
        ),
        equations=(
            r"G_t = G_{t-1} + g_t^2",
            r"\theta_t = \theta_{t-1} - \eta \, \frac{g_t}{\sqrt{G_t} + \epsilon}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-2, "global step size", r"\eta", 1e-3, 1.0, "log"),
            Hyperparameter("lr_decay", 0.0, "inverse-time decay of the step size per step"),
            Hyperparameter(
                "initial_accumulator_value",
                0.0,
                "starting value of the squared-gradient sum",
                "G_0",
            ),
            Hyperparameter("eps", 1e-10, "added to the denominator", r"\epsilon"),
            Hyperparameter("weight_decay", 0.0, "coupled L2 penalty", r"\lambda"),
        ),
        state=(StateBuffer("sum", "sum of all past squared gradients", "G"),),
        elementwise=True,
        factory=Adagrad,
        teaches="per-coordinate step sizes that only ever shrink",
    ),
)
