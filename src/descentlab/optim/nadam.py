"""NAdam (Dozat, 2016): Adam with Nesterov momentum, using torch's momentum-decay schedule
mu_t = beta1 (1 - 0.5 * 0.96^(t * psi)) from Dozat's report."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, decayed_gradient, scalar_dtype, step_counter, write_entry
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def init_state(param: Tensor) -> dict[str, Any]:
    return {
        "step": step_counter(),
        # A tensor as in torch.optim: its float32 rounding is part of torch's results.
        "mu_product": torch.tensor(1.0, dtype=scalar_dtype()),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
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
    momentum_decay: Hyper,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One NAdam step (torch.optim.NAdam's arithmetic).

    .. math::
        \\mu_t = \\beta_1 (1 - \\tfrac12 0.96^{t\\psi}),\\quad
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad
        v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2,

        \\theta_t = \\theta_{t-1} - \\eta \\Big(\\frac{(1-\\mu_t) g_t}{1 - \\prod_{i\\le t}\\mu_i}
          + \\frac{\\mu_{t+1} m_t}{1 - \\prod_{i\\le t+1}\\mu_i}\\Big)
          \\Big/ \\Big(\\sqrt{v_t / (1-\\beta_2^t)} + \\epsilon\\Big)
    """
    beta1, beta2 = betas
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        bias_correction2 = 1 - beta2**step
        grad = decayed_gradient(grad, param, lr, weight_decay, decoupled_weight_decay, maximize)
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
        if isinstance(mu, Tensor):
            # Per-run momentum: the product takes the runs' shape (in torch's dtype for it).
            counter = state["mu_product"]
            write_entry(state, "mu_product", counter * mu.to(counter.dtype))
            # Read it in double precision, as the scalar path's .item() does.
            mu_product = state["mu_product"].double()
        else:
            state["mu_product"] *= mu
            mu_product = state["mu_product"].item()
        mu_product_next = mu_product * mu_next

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        _hyper.addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)
        denom = exp_avg_sq.div(bias_correction2).sqrt().add_(eps)
        _hyper.addcdiv_(param, grad, denom, -lr * (1.0 - mu) / (1.0 - mu_product))
        _hyper.addcdiv_(param, exp_avg, denom, (-lr * mu_next) / (1.0 - mu_product_next))


class NAdam(Optimizer):
    """NAdam, a drop-in for ``torch.optim.NAdam``.

    Dozat, T. (2016). Incorporating Nesterov Momentum into Adam. ICLR workshop.
    ``decoupled_weight_decay=True`` gives NAdamW (decay as in Loshchilov & Hutter, 2019).
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
        "momentum_decay",
    )
    checked_betas = ("betas",)
    checked_flags = (
        "decoupled_weight_decay",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 2e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0,
        momentum_decay: Hyper = 4e-3,
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
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            **torch_flags("NAdam", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)


SPECS = (
    Spec(
        key="nadam",
        title="NAdam",
        summary="Adam whose momentum looks ahead like Nesterov's: the step uses the next "
        "momentum value applied to the current average, plus the fresh gradient.",
        paper=Paper(
            "Dozat, T.", 2016, "Incorporating Nesterov Momentum into Adam", "ICLR workshop"
        ),
        equations=(
            r"\mu_t = \beta_1 \left(1 - \tfrac{1}{2}\, 0.96^{t \psi}\right)",
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \quad "
            r"v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2",
            r"\hat v_t = \frac{v_t}{1 - \beta_2^t}",
            r"\theta_t = \theta_{t-1} - \eta \left( \frac{(1 - \mu_t)\, g_t}{1 - \prod_{i=1}^{t} \mu_i}"
            r" + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i=1}^{t+1} \mu_i} \right) \Big/ "
            r"\left(\sqrt{\hat v_t} + \epsilon\right)",
        ),
        hyperparameters=(
            Hyperparameter("lr", 2e-3, "step size", r"\eta", 1e-5, 1e-1, "log"),
            decay_rate(0, 0.9, "decay of the gradient average", 0.5, 0.99),
            decay_rate(1, 0.999, "decay of the squared-gradient average", 0.9, 0.9999),
            Hyperparameter("eps", 1e-8, "added to the denominator", r"\epsilon"),
            Hyperparameter("momentum_decay", 4e-3, "how fast the momentum warms up", r"\psi"),
            Hyperparameter("weight_decay", 0.0, "L2 penalty (decoupled if asked)", r"\lambda"),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient", "m"),
            StateBuffer("exp_avg_sq", "moving average of the squared gradient", "v"),
            StateBuffer(
                "mu_product", "product of the momentum coefficients so far", r"\prod \mu_i"
            ),
        ),
        elementwise=True,
        factory=NAdam,
        teaches="Nesterov's look-ahead inside Adam",
    ),
)
