"""RAdam (Liu et al., 2020): Adam whose adaptive step is switched on only once the variance of the
adaptive learning rate is tractable, and then rectified; before that, SGD with momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, decayed_gradient, zeroed
from ._tensor_list import TensorList
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate

#: Liu et al. use the adaptive step once the approximated SMA length exceeds this (torch: 5).
RECTIFY_THRESHOLD = 5.0


def init_state(param: Tensor) -> dict[str, Any]:
    return zeroed(param, "exp_avg", "exp_avg_sq")


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    weight_decay: Hyper,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One RAdam step (torch.optim.RAdam's arithmetic).

    .. math::
        \\rho_\\infty = \\frac{2}{1-\\beta_2} - 1,\\quad
        \\rho_t = \\rho_\\infty - \\frac{2 t \\beta_2^t}{1-\\beta_2^t},\\quad
        r_t = \\sqrt{\\frac{(\\rho_t-4)(\\rho_t-2)\\rho_\\infty}{(\\rho_\\infty-4)(\\rho_\\infty-2)\\rho_t}}

        \\theta_t = \\theta_{t-1} - \\eta \\hat m_t \\cdot
            \\begin{cases} r_t \\sqrt{1-\\beta_2^t} / (\\sqrt{v_t} + \\epsilon) & \\rho_t > 5 \\\\
            1 & \\text{otherwise} \\end{cases}
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = decayed_gradient(grad, param, lr, weight_decay, decoupled_weight_decay, maximize)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        _hyper.addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        tractable = rho_t > RECTIFY_THRESHOLD
        if isinstance(param, TensorList) and not isinstance(tractable, Tensor):
            rectification = _rectification(rho_t, rho_inf) if tractable else None
            _folded_step(param, exp_avg, exp_avg_sq, lr, eps, bias_correction1, bias_correction2,
                         rectification)  # fmt: skip
            continue
        momentum_step = _hyper.multiply_temporary(exp_avg / bias_correction1, lr)
        if isinstance(tractable, Tensor) or tractable:
            rectification = _rectification(rho_t, rho_inf)
            adaptive_lr = (bias_correction2**0.5) / exp_avg_sq.sqrt().add_(eps)
            if isinstance(tractable, Tensor):
                # Per-run beta2: each run takes its own branch (the other's NaNs are discarded).
                adaptive_step = momentum_step * adaptive_lr * rectification
                adaptive_step = torch.where(tractable, adaptive_step, momentum_step)
            else:  # the same products, in place on the temporaries
                adaptive_step = _hyper.multiply_temporary(
                    momentum_step.mul_(adaptive_lr), rectification
                )
            param.sub_(adaptive_step)
        else:
            param.sub_(momentum_step)


def _rectification(rho_t: Hyper, rho_inf: Hyper) -> Hyper:
    """:math:`r_t`, the factor that rectifies the adaptive step's variance (Liu et al., eq. 6)."""
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def _folded_step(
    params: TensorList, exp_avgs: TensorList, exp_avg_sqs: TensorList, lr: float, eps: float,
    bias_correction1: float, bias_correction2: float, rectification: float | None,
) -> None:  # fmt: skip
    """The step of the foreach path, with its number factors multiplied together first.

    The loop above multiplies each coordinate by ``1 / bias_correction1``, ``lr``, the adaptive
    factor and the rectification one after another, as torch.optim.RAdam's default path does (nine
    tensor operations, three of them new tensors); over lists each operation is one pass over
    every tensor, so the same quantity is taken in two (``sqrt(v) + eps``) and one
    ``addcdiv_``, as torch's own foreach RAdam folds its factors. Same formula; in float32 the
    result differs from the loop's in the last bits (``tests/optim/test_foreach.py`` bounds it).
    ``rectification`` is None while the adaptive step is not yet tractable.
    """
    if rectification is not None:
        denominator = exp_avg_sqs.sqrt().add_(eps)
        step_size = lr * rectification * bias_correction2**0.5 / bias_correction1
        params.addcdiv_(exp_avgs, denominator, value=-step_size)
    else:
        params.add_(exp_avgs, alpha=-lr / bias_correction1)


class RAdam(Optimizer):
    """RAdam, a drop-in for ``torch.optim.RAdam``.

    Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J. and Han, J. (2020). On the Variance of
    the Adaptive Learning Rate and Beyond. ICLR.
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
        "decoupled_weight_decay",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            **torch_flags("RAdam", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="radam",
        title="RAdam",
        summary="Adam without warmup: while too few squared gradients have been averaged to trust "
        "the adaptive step, take momentum steps; then rectify the adaptive step's variance.",
        paper=Paper(
            "Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J. and Han, J.",
            2020,
            "On the Variance of the Adaptive Learning Rate and Beyond",
            "ICLR",
        ),
        equations=(
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \quad "
            r"v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2",
            r"\rho_\infty = \frac{2}{1 - \beta_2} - 1, \quad "
            r"\rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}",
            r"r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}"
            r"{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}",
            r"\theta_t = \theta_{t-1} - \eta\, \frac{m_t}{1 - \beta_1^t} \cdot \begin{cases}"
            r" r_t \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\"
            r" 1 & \text{otherwise} \end{cases}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-3, "step size", r"\eta", 1e-5, 1e-1, "log"),
            decay_rate(0, 0.9, "decay of the gradient average", 0.5, 0.99),
            decay_rate(1, 0.999, "decay of the squared-gradient average", 0.9, 0.9999),
            Hyperparameter("eps", 1e-8, "added to the denominator", r"\epsilon"),
            Hyperparameter("weight_decay", 0.0, "L2 penalty (decoupled if asked)", r"\lambda"),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient", "m"),
            StateBuffer("exp_avg_sq", "moving average of the squared gradient", "v"),
        ),
        elementwise=True,
        factory=RAdam,
        teaches="why Adam needs warmup, and a rule that replaces it",
    ),
)
