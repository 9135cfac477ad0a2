"""Adam (Kingma & Ba, 2015), its AMSGrad variant (Reddi et al., 2018) and AdamW (Loshchilov &
Hutter, 2019): bias-corrected moving averages of the gradient and of its square."""

from __future__ import annotations

from typing import Any

import torch
import torch.optim.adam as torch_adam
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._fused import fused_steps
from ._hyper import Hyper
from ._state import advance, decayed_gradient, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor, *, amsgrad: bool) -> dict[str, Any]:
    state = {
        "step": step_counter(),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
    }
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    weight_decay: Hyper,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam step (torch.optim.Adam's arithmetic; AdamW when ``decoupled_weight_decay``).

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2

        \\theta_t = \\theta_{t-1} - \\frac{\\eta}{1-\\beta_1^t}\\,
            \\frac{m_t}{\\sqrt{v_t}/\\sqrt{1-\\beta_2^t} + \\epsilon}
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = decayed_gradient(grad, param, lr, weight_decay, decoupled_weight_decay, maximize)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        _hyper.addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        if amsgrad:
            second_moment = state["max_exp_avg_sq"]
            torch.maximum(second_moment, exp_avg_sq, out=second_moment)
        else:
            second_moment = exp_avg_sq
        denom = _hyper.divide_temporary(second_moment.sqrt(), bias_correction2_sqrt).add_(eps)
        if (
            isinstance(lr, Tensor)
            and isinstance(param, Tensor)
            and isinstance(bias_correction1, float)
        ):
            # Per-run learning rates (stacked runs): m / denom written over denom, then times
            # lr, with no other (runs, D) temporary (see _hyper.sub_); same values to rounding.
            param.addcmul_(torch.div(exp_avg, denom, out=denom), lr, value=-1 / bias_correction1)
        else:
            _hyper.subcdiv_(param, exp_avg, denom, lr / bias_correction1)


def fused_update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """The same step by torch's fused Adam/AdamW kernel (``torch.optim.Adam(fused=True)``)."""
    beta1, beta2 = betas
    torch_adam.adam(
        params,
        grads,
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [state["max_exp_avg_sq"] for state in states] if amsgrad else [],
        fused_steps(params, states),
        fused=True,
        decoupled_weight_decay=decoupled_weight_decay,
        amsgrad=amsgrad,
        beta1=beta1,
        beta2=beta2,
        lr=lr,
        weight_decay=weight_decay,
        eps=eps,
        maximize=maximize,
    )


class Adam(Optimizer):
    """Adam, a drop-in for ``torch.optim.Adam`` (signature, defaults, float results).

    Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR.
    ``amsgrad=True``: Reddi, Kale and Kumar (2018), On the Convergence of Adam and Beyond.
    Every hyperparameter may be a tensor broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    fused_kernel = staticmethod(fused_update)
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
    )
    checked_betas = ("betas",)
    checked_flags = (
        "amsgrad",
        "maximize",
        "decoupled_weight_decay",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            **torch_flags(type(self).__name__, foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)


class AdamW(Adam):
    """AdamW: Adam with weight decay applied to the weights, not added to the gradient.

    A drop-in for ``torch.optim.AdamW``. Loshchilov, I. and Hutter, F. (2019). Decoupled Weight
    Decay Regularization. ICLR.
    """

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )


_BETA1 = decay_rate(0, 0.9, "decay of the gradient average m (momentum)", 0.5, 0.99)
_BETA2 = decay_rate(1, 0.999, "decay of the squared-gradient average v", 0.9, 0.9999)
_EPS = Hyperparameter(
    "eps", 1e-8, "added to the denominator to avoid division by zero", r"\epsilon"
)
_ADAM_EQUATIONS = (
    r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
    r"v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2",
    r"\hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}",
    r"\theta_t = \theta_{t-1} - \eta \, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}",
)
_ADAM_STATE = (
    StateBuffer("exp_avg", "moving average of the gradient (first moment)", "m"),
    StateBuffer("exp_avg_sq", "moving average of the squared gradient (second moment)", "v"),
)

SPECS = (
    Spec(
        key="adam",
        title="Adam",
        summary="Momentum and a per-coordinate step size from the squared-gradient average, "
        "both bias-corrected so the first steps are not too small.",
        paper=Paper(
            "Kingma, D. P. and Ba, J.", 2015, "Adam: A Method for Stochastic Optimization", "ICLR"
        ),
        equations=_ADAM_EQUATIONS,
        hyperparameters=(
            Hyperparameter("lr", 1e-3, "step size", r"\eta", 1e-5, 1e-1, "log"),
            _BETA1,
            _BETA2,
            _EPS,
            Hyperparameter(
                "weight_decay", 0.0, "coupled L2 penalty added to the gradient", r"\lambda"
            ),
        ),
        state=_ADAM_STATE,
        elementwise=True,
        factory=Adam,
        teaches="bias correction and per-coordinate scaling make one default work almost anywhere",
    ),
    Spec(
        key="adamw",
        title="AdamW",
        summary="Adam whose weight decay shrinks the weights directly instead of passing through "
        "the adaptive denominator, so regularization works as intended.",
        paper=Paper(
            "Loshchilov, I. and Hutter, F.", 2019, "Decoupled Weight Decay Regularization", "ICLR"
        ),
        equations=(
            r"\theta_{t-1} \leftarrow \theta_{t-1} (1 - \eta \lambda)",
            *_ADAM_EQUATIONS,
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-3, "step size", r"\eta", 1e-5, 1e-1, "log"),
            _BETA1,
            _BETA2,
            _EPS,
            Hyperparameter(
                "weight_decay",
                1e-2,
                "decoupled decay of the weights, scaled by lr",
                r"\lambda",
                1e-4,
                1e-1,
                "log",
            ),
        ),
        state=_ADAM_STATE,
        elementwise=True,
        factory=AdamW,
        teaches="L2 regularization and weight decay are different things for adaptive methods",
    ),
)
