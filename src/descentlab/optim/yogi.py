"""Yogi (Zaheer et al., 2018): Adam whose second moment moves by an additive, sign-controlled step.

Adam's ``v = b2 v + (1 - b2) g^2`` can forget a large past gradient quickly when gradients become
small, which inflates the effective learning rate. Yogi changes ``v`` by ``(1 - b2) g^2`` towards
``g^2``, whatever the gap between them: ``v <- v - (1 - b2) sign(v - g^2) g^2``.

Zaheer, M., Reddi, S., Sachan, D., Kale, S. and Kumar, S. (2018). Adaptive Methods for Nonconvex
Optimization. Advances in Neural Information Processing Systems 31 (NeurIPS).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, speed_flags
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor, *, initial_accumulator: Hyper) -> dict[str, Any]:
    second_moment = torch.empty_like(param, memory_format=torch.preserve_format)
    second_moment.copy_(torch.as_tensor(initial_accumulator, dtype=param.dtype))
    return {
        "step": step_counter(),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": second_moment,
    }


def _as_dtype(value: Hyper, like: Tensor) -> Hyper:
    # Tensor hyperparameters in the parameter's dtype: the same arithmetic as Python floats.
    return value.to(dtype=like.dtype) if isinstance(value, Tensor) else value


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    bias_correction: bool,
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One Yogi step (Zaheer et al. 2018, Algorithm 2, with Adam's bias correction).

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad
        v_t = v_{t-1} - (1-\\beta_2)\\,\\operatorname{sign}(v_{t-1} - g_t^2)\\, g_t^2

        \\theta_t = \\theta_{t-1} - \\eta\\,
            \\frac{m_t / (1-\\beta_1^t)}{\\sqrt{v_t / (1-\\beta_2^t)} + \\epsilon}

    ``m_0 = 0``, ``v_0 = initial_accumulator``; without ``bias_correction`` both divisors are 1
    (the paper's Algorithm 2). ``weight_decay`` is coupled (L2 added to the gradient), as in torch's
    Adam; ``maximize`` negates the gradient first. Computed as
    :math:`\\theta - \\eta \\frac{c_2}{c_1} \\frac{m_t}{\\sqrt{v_t} + \\epsilon c_2}` with
    :math:`c_i = \\sqrt{\\cdot}` of the divisors, which is the same value with one pass less.
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, _as_dtype(1 - beta1, param))

        grad_sq = grad * grad
        # sign(v - g^2): +1 where v is above g^2 (v decreases), -1 below, 0 where equal.
        direction = torch.sub(exp_avg_sq, grad_sq).sign_()
        _hyper.addcmul_(exp_avg_sq, direction, grad_sq, _as_dtype(-(1 - beta2), param))

        if bias_correction:
            bias_correction1 = 1 - beta1**step
            bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        else:
            bias_correction1 = bias_correction2_sqrt = 1.0
        denom = torch.sqrt(exp_avg_sq, out=grad_sq).add_(
            _as_dtype(eps * bias_correction2_sqrt, param)
        )
        step_size = _as_dtype(lr * bias_correction2_sqrt / bias_correction1, param)
        _hyper.addcdiv_(param, exp_avg, denom, -step_size)


class Yogi(Optimizer):
    """Yogi: Adam with an additive second-moment update (Zaheer et al., NeurIPS 2018).

    Every hyperparameter may be a tensor broadcasting against the parameters. See :func:`update`.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "eps",
        "initial_accumulator",
        "weight_decay",
    )
    checked_betas = ("betas",)
    checked_flags = (
        "bias_correction",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-3,
        initial_accumulator: Hyper = 1e-6,
        bias_correction: bool = True,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            initial_accumulator=initial_accumulator,
            bias_correction=bias_correction,
            weight_decay=weight_decay,
            maximize=maximize,
            **speed_flags("Yogi", foreach, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="yogi",
        title="Yogi",
        summary="Adam whose squared-gradient estimate moves towards the current squared gradient "
        "by a fixed fraction of it, so a burst of large gradients is not forgotten too fast.",
        paper=Paper(
            "Zaheer, M., Reddi, S., Sachan, D., Kale, S. and Kumar, S.",
            2018,
            "Adaptive Methods for Nonconvex Optimization",
            "NeurIPS",
        ),
        equations=(
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"v_t = v_{t-1} - (1 - \beta_2)\, \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2",
            r"\hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}",
            r"\theta_t = \theta_{t-1} - \eta \, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-2, "step size", r"\eta", 1e-4, 1e-1, "log"),
            decay_rate(0, 0.9, "decay of the gradient average m (momentum)", 0.5, 0.99),
            decay_rate(
                1,
                0.999,
                "fraction (1 - beta2) of g^2 by which v moves towards g^2 each step",
                0.9,
                0.9999,
            ),
            Hyperparameter(
                "eps",
                1e-3,
                "added to the denominator; Yogi's is large, which bounds the step where v is tiny",
                r"\epsilon",
                1e-6,
                1e-2,
                "log",
            ),
            Hyperparameter(
                "initial_accumulator", 1e-6, "starting value of v in every coordinate", "v_0"
            ),
            Hyperparameter(
                "bias_correction",
                True,
                "divide m and v by (1 - beta^t) as in Adam",
                scale="choice",
                choices=(True, False),
            ),
            Hyperparameter(
                "weight_decay", 0.0, "coupled L2 penalty added to the gradient", r"\lambda"
            ),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient (first moment)", "m"),
            StateBuffer("exp_avg_sq", "additively updated squared-gradient estimate", "v"),
        ),
        elementwise=True,
        factory=Yogi,
        teaches="an additive second-moment update keeps the effective step from blowing up "
        "when gradients suddenly shrink",
    ),
)
