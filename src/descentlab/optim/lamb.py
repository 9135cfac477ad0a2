"""LAMB: Adam's direction, rescaled per layer by a trust ratio ||theta|| / ||update||.

You, Y., Li, J., Reddi, S., Hseu, J., Kumar, S., Bhojanapalli, S., Song, X., Demmel, J.,
Keutzer, K. and Hsieh, C.-J. (2020). Large Batch Optimization for Deep Learning: Training BERT in
76 minutes. ICLR.

Choices, all from the paper's Algorithm 2 unless said:

* both moments are bias-corrected (Algorithm 2 does; the BERT experiments in some releases drop it);
* weight decay is added to the Adam direction before the trust ratio, ``u = r + lambda theta``;
* the scaling function phi is the identity, so the ratio is ``||theta|| / ||u||``;
* the ratio is 1 when either norm is zero (a zero-initialised bias would otherwise never move,
  and a zero update needs no scaling): the convention of the reference implementations;
* a "layer" is one parameter tensor, every tensor included (biases and norms too); with
  ``stack_dims = s`` each of the stacked runs has its own ratio, the norms taken over the
  run's own (non-stack) dimensions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import slice_norm
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor) -> dict[str, Any]:
    return {
        "step": step_counter(),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
    }


def trust_ratio(numerator_norm: Tensor, denominator_norm: Tensor) -> Tensor:
    """``numerator / denominator`` per run, 1 where either norm is zero.

    A NaN norm (a non-finite gradient) stays NaN, so it poisons that parameter's step visibly
    instead of being mistaken for a zero norm.
    """
    degenerate = (numerator_norm == 0) | (denominator_norm == 0)
    return torch.where(degenerate, 1.0, numerator_norm / denominator_norm)


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
    stack_dims: int,
) -> None:
    """One LAMB step (You et al. 2020, Algorithm 2).

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2

        u_t = \\frac{m_t/(1-\\beta_1^t)}{\\sqrt{v_t/(1-\\beta_2^t)} + \\epsilon} + \\lambda\\theta_{t-1},
        \\quad \\theta_t = \\theta_{t-1} - \\eta\\,\\frac{\\lVert\\theta_{t-1}\\rVert}{\\lVert u_t\\rVert}\\,u_t
    """
    beta1, beta2 = betas
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        grad = -grad if maximize else grad
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        _hyper.addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        direction = (exp_avg / bias_correction1).div_(denom)
        if decay:
            direction = _hyper.add(direction, param, weight_decay)
        ratio = trust_ratio(slice_norm(param, stack_dims), slice_norm(direction, stack_dims))
        _hyper.sub_(param, direction.mul_(ratio), lr)


class LAMB(Optimizer):
    """LAMB (You et al. 2020, ICLR): layer-wise adaptive moments for large batches.

    Each parameter tensor (each stacked run's slice when ``stack_dims > 0``) takes a step of
    length ``lr * ||theta||``, in the direction of the bias-corrected Adam update plus
    ``weight_decay * theta``. Every hyperparameter may be a tensor broadcasting against the
    parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
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
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-6,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="lamb",
        title="LAMB (layer-wise adaptive moments)",
        summary="Adam's direction, rescaled for each layer so that its step is a fixed fraction "
        "of the layer's weight norm: the trust ratio that made batch sizes of 64k train BERT.",
        paper=Paper(
            "You, Y., Li, J., Reddi, S., Hseu, J., Kumar, S., Bhojanapalli, S., Song, X., "
            "Demmel, J., Keutzer, K. and Hsieh, C.-J.",
            2020,
            "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
            "ICLR",
            "https://arxiv.org/abs/1904.00962",
        ),
        equations=(
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2",
            r"u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} "
            r"+ \lambda\, \theta_{t-1}",
            r"\theta_t = \theta_{t-1} - \eta \, \frac{\lVert \theta_{t-1} \rVert}"
            r"{\lVert u_t \rVert} \, u_t \quad \text{(per layer; ratio 1 if a norm is 0)}",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1e-3,
                "step length as a fraction of each layer's weight norm",
                r"\eta",
                1e-4,
                1e-1,
                "log",
            ),
            decay_rate(0, 0.9, "decay of the gradient average m (momentum)", 0.5, 0.99),
            decay_rate(1, 0.999, "decay of the squared-gradient average v", 0.9, 0.9999),
            Hyperparameter(
                "eps", 1e-6, "added to the denominator to avoid division by zero", r"\epsilon"
            ),
            Hyperparameter(
                "weight_decay",
                0.0,
                "decay added to the Adam direction before the trust ratio",
                r"\lambda",
            ),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient (first moment)", "m"),
            StateBuffer(
                "exp_avg_sq", "moving average of the squared gradient (second moment)", "v"
            ),
        ),
        factory=LAMB,
        family="modern",
        teaches="a per-layer trust ratio makes the step a fraction of the weights, whatever "
        "the gradient's scale",
    ),
)
