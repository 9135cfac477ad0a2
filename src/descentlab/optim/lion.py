"""Lion (EvoLved Sign Momentum): the sign of an interpolated momentum, one step size for all.

Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Pham, H., Dong, X., Luong, T., Hsieh, C.-J.,
Lu, Y. and Le, Q. V. (2023). Symbolic Discovery of Optimization Algorithms. NeurIPS.

Found by program search, Lion keeps one buffer (the momentum ``m``, stored as ``exp_avg``) and
steps every coordinate by exactly ``lr`` in the direction of the sign of an interpolation between
``m`` and the new gradient. The interpolation uses ``beta1``; the momentum itself is then updated
with a slower ``beta2``. Weight decay is decoupled and scaled by ``lr``, as in the paper's
Algorithm 2 (``update += w * lambda; w -= lr * update``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, speed_flags
from ._hyper import Hyper
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor) -> dict[str, Any]:
    return {"exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format)}


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One Lion step (Chen et al. 2023, Algorithm 2).

    .. math::
        c_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad
        \\theta_t = \\theta_{t-1} - \\eta\\,(\\operatorname{sign}(c_t) + \\lambda\\theta_{t-1}),\\quad
        m_t = \\beta_2 m_{t-1} + (1-\\beta_2) g_t
    """
    beta1, beta2 = betas
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        grad = -grad if maximize else grad
        exp_avg = state["exp_avg"]
        direction = exp_avg.lerp(grad, 1 - beta1).sign_()
        if decay:
            # Decoupled: the decay uses theta_{t-1}, before the sign step moves it.
            param.mul_(1 - lr * weight_decay)
        _hyper.sub_(param, direction, lr)
        exp_avg.lerp_(grad, 1 - beta2)


class Lion(Optimizer):
    """Lion, sign momentum with decoupled weight decay (Chen et al. 2023, NeurIPS).

    Every coordinate moves by exactly ``lr`` per step, so ``lr`` is typically 3-10x smaller than
    AdamW's and ``weight_decay`` 3-10x larger (the product ``lr * weight_decay`` is what shrinks
    the weights). Every hyperparameter may be a tensor broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "weight_decay",
    )
    checked_betas = ("betas",)
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-4,
        betas: tuple[Hyper, Hyper] = (0.9, 0.99),
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            weight_decay=weight_decay,
            maximize=maximize,
            **speed_flags("Lion", foreach, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="lion",
        title="Lion (sign momentum)",
        summary="Step every coordinate by the same amount, in the direction of the sign of a "
        "blend of momentum and gradient; a single buffer, half of Adam's memory.",
        paper=Paper(
            "Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Pham, H., Dong, X., Luong, T., "
            "Hsieh, C.-J., Lu, Y. and Le, Q. V.",
            2023,
            "Symbolic Discovery of Optimization Algorithms",
            "NeurIPS",
            "https://arxiv.org/abs/2302.06675",
        ),
        equations=(
            r"c_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"\theta_t = \theta_{t-1} - \eta \left( \operatorname{sign}(c_t) "
            r"+ \lambda\, \theta_{t-1} \right)",
            r"m_t = \beta_2 m_{t-1} + (1 - \beta_2)\, g_t",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1e-4,
                "size of every coordinate's step (the update is a sign)",
                r"\eta",
                1e-5,
                1e-2,
                "log",
            ),
            decay_rate(
                0, 0.9, "weight of the momentum in the direction whose sign is taken", 0.5, 0.99
            ),
            decay_rate(1, 0.99, "decay of the momentum buffer m", 0.9, 0.9999),
            Hyperparameter(
                "weight_decay",
                0.0,
                "decoupled decay of the weights, scaled by lr (the paper uses 3-10x AdamW's)",
                r"\lambda",
            ),
        ),
        state=(StateBuffer("exp_avg", "momentum: moving average of the gradient", "m"),),
        elementwise=True,
        factory=Lion,
        family="modern",
        teaches="the sign of a momentum is enough: every coordinate moves by the same lr",
    ),
)
