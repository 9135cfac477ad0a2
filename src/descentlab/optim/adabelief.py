"""AdaBelief: Adam whose step size follows the belief in the gradient, not its size.

Zhuang, J., Tang, T., Ding, Y., Tatikonda, S., Dvornek, N., Papademetris, X. and Duncan, J. S.
(2020). AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients. NeurIPS.

Adam divides by the running mean of ``g^2``; AdaBelief divides by the running mean of
``(g - m)^2``, the squared distance between the gradient and its prediction ``m``. Where gradients
agree with their average (the "belief" holds) the denominator is small and the step large; where
they scatter, the step shrinks. ``eps`` enters twice, as in the paper's Algorithm 2: it is added to
the belief ``s_t`` itself (so it accumulates in the state) and again to the denominator.
Weight decay is decoupled (AdamW-style, scaled by ``lr``) by default, as in the authors' release;
``decoupled=False`` adds ``weight_decay * theta`` to the gradient instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, speed_flags
from ._hyper import Hyper
from ._state import advance, decayed_gradient, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor) -> dict[str, Any]:
    return {
        "step": step_counter(),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_var": torch.zeros_like(param, memory_format=torch.preserve_format),
    }


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    weight_decay: Hyper,
    decoupled: bool,
    maximize: bool,
) -> None:
    """One AdaBelief step (Zhuang et al. 2020, Algorithm 2).

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad
        s_t = \\beta_2 s_{t-1} + (1-\\beta_2)(g_t - m_t)^2 + \\epsilon

        \\theta_t = \\theta_{t-1} - \\frac{\\eta}{1-\\beta_1^t}\\,
            \\frac{m_t}{\\sqrt{s_t / (1-\\beta_2^t)} + \\epsilon}
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = decayed_gradient(grad, param, lr, weight_decay, decoupled, maximize)
        exp_avg, exp_avg_var = state["exp_avg"], state["exp_avg_var"]
        exp_avg.lerp_(grad, 1 - beta1)
        # The belief residual uses the *new* m_t, as in the paper.
        residual = grad - exp_avg
        _hyper.addcmul_(exp_avg_var.mul_(beta2), residual, residual, 1 - beta2).add_(eps)

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = _hyper.divide_temporary(exp_avg_var.sqrt(), bias_correction2_sqrt).add_(eps)
        _hyper.subcdiv_(param, exp_avg, denom, lr / bias_correction1)


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al. 2020, NeurIPS): Adam with the belief ``(g - m)^2`` in the denominator.

    ``decoupled=True`` (default) shrinks the weights by ``lr * weight_decay`` each step (AdamW);
    ``False`` adds ``weight_decay * theta`` to the gradient (Adam's L2). Every hyperparameter may
    be a tensor broadcasting against the parameters.
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
    checked_flags = (
        "decoupled",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-16,
        weight_decay: Hyper = 0.0,
        decoupled: bool = True,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled=decoupled,
            maximize=maximize,
            **speed_flags("AdaBelief", foreach, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="adabelief",
        title="AdaBelief",
        summary="Adam that scales each step by how far the gradient strays from its running "
        "average: large steps where gradients are predictable, small where they are noisy.",
        paper=Paper(
            "Zhuang, J., Tang, T., Ding, Y., Tatikonda, S., Dvornek, N., Papademetris, X. and "
            "Duncan, J. S.",
            2020,
            "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
            "NeurIPS",
            "https://arxiv.org/abs/2010.07468",
        ),
        equations=(
            r"\theta_{t-1} \leftarrow \theta_{t-1} (1 - \eta \lambda)",
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"s_t = \beta_2 s_{t-1} + (1 - \beta_2)\, (g_t - m_t)^2 + \epsilon",
            r"\hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat s_t = \frac{s_t}{1 - \beta_2^t}",
            r"\theta_t = \theta_{t-1} - \eta \, \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-3, "step size", r"\eta", 1e-5, 1e-1, "log"),
            decay_rate(0, 0.9, "decay of the gradient average m (momentum)", 0.5, 0.99),
            decay_rate(
                1,
                0.999,
                "decay of the belief s, the average squared deviation of g from m",
                0.9,
                0.9999,
            ),
            Hyperparameter(
                "eps",
                1e-16,
                "added to the belief and to the denominator (the paper uses 1e-16, 1e-12 "
                "or 1e-8 depending on the task)",
                r"\epsilon",
            ),
            Hyperparameter(
                "weight_decay",
                0.0,
                "decoupled decay of the weights, scaled by lr",
                r"\lambda",
            ),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient (first moment)", "m"),
            StateBuffer("exp_avg_var", "moving average of (g - m)^2 plus eps: the belief", "s"),
        ),
        elementwise=True,
        factory=AdaBelief,
        family="modern",
        teaches="dividing by the gradient's surprise, not its size, steps boldly where the "
        "landscape is predictable",
    ),
)
