"""Quickprop (Fahlman, 1988): a per-weight secant (Newton) step from two successive gradients.

Each weight is treated on its own, as if the loss along it were a parabola that opens upwards and
did not depend on the other weights. Two slopes ``g_{t-1}``, ``g_t`` measured a step
``dw_{t-1}`` apart fix that parabola, and the step to its minimum is
``dw_t = g_t / (g_{t-1} - g_t) * dw_{t-1}``: Newton's method with the second derivative replaced by
the finite difference ``(g_t - g_{t-1}) / dw_{t-1}``.

Fahlman, S. E. (1988). An Empirical Study of Learning Speed in Back-Propagation Networks.
Technical Report CMU-CS-88-162, Carnegie Mellon University.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, speed_flags
from ._hyper import Hyper
from ._quickprop_flat import flat_step
from ._state import advance, apply_weight_decay, step_counter
from ._tensor_list import TensorList
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor) -> dict[str, Any]:
    return {
        "step": step_counter(),
        "prev_grad": torch.zeros_like(param, memory_format=torch.preserve_format),
        "prev_update": torch.zeros_like(param, memory_format=torch.preserve_format),
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
    mu: Hyper,
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One Quickprop step, with the rules of Fahlman's report (1988, section on Quickprop).

    With :math:`d = \\Delta\\theta_{t-1}`, :math:`p = g_{t-1}` and the current slope
    :math:`g = g_t + \\lambda \\theta_{t-1}` (Fahlman adds the weight-decay term to the slope):

    .. math::
        q = \\begin{cases} \\mu\\, d & d\\,(g - \\tfrac{\\mu}{1+\\mu} p) \\le 0
            \\text{ or } p = g \\\\ \\dfrac{g}{p - g}\\, d & \\text{otherwise} \\end{cases}
        \\qquad
        \\Delta\\theta_t = q - \\eta\\, g\\,[d\\, g \\le 0],\\qquad
        \\theta_t = \\theta_{t-1} + \\Delta\\theta_t

    The choices, each from the report:

    * Maximum growth factor: no step may be more than ``mu`` times the previous one. Where the
      secant step would be too large, infinite, or uphill on the current slope, the step is
      ``mu`` times the previous step. For a previous step ``d < 0`` that is the case exactly when
      ``g >= mu / (1 + mu) * p`` (mirrored for ``d > 0``), the "shrink factor" test of Fahlman's
      own implementation; ``p = g`` (a zero denominator) is added so no division by zero is used.
    * Gradient term: ``-lr * g`` is added to the secant step when the current slope still points
      along the previous step (``d * g < 0``), and left out when the slope has changed sign
      relative to the step (the minimum was crossed: the secant step alone lands between the two
      points). Fahlman found adding it there works better than using the secant step alone.
    * Zero previous step (the first step, or a weight that stopped moving): the secant step is 0,
      and the step is plain gradient descent ``-lr * g``, which also restarts a stalled weight.

    ``maximize`` negates the gradient first. State: ``prev_grad`` (the slope ``p`` including the
    decay term) and ``prev_update`` (``d``).
    """
    for param, grad, state in zip(params, grads, states, strict=True):
        advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        prev_grad, prev_update = state["prev_grad"], state["prev_update"]
        growth = _as_dtype(mu, param)
        shrink = growth / (1 + growth)

        if isinstance(param, TensorList):
            flat_step(state, param, grad, lr, growth, shrink)
            continue
        # Both quantities are products with d, so a zero previous step selects the capped
        # branch (mu * 0 = 0) and the gradient term: plain gradient descent.
        capped = prev_update * (grad - prev_grad * shrink) <= 0
        capped.logical_or_(prev_grad == grad)  # not |=: functionalization cannot trace __ior__
        slope_product = prev_update * grad
        with_gradient = slope_product <= 0

        secant = slope_product / (prev_grad - grad)
        step = torch.where(capped, prev_update * growth, secant)
        step = torch.where(with_gradient, step + grad * -_as_dtype(lr, param), step)

        param.add_(step)
        prev_update.copy_(step)
        prev_grad.copy_(grad)


class Quickprop(Optimizer):
    """Quickprop (Fahlman 1988): per-weight secant steps capped by a maximum growth factor.

    ``lr`` is the gradient-descent rate used to start (and restart) each weight and added to the
    secant step while the slope keeps its direction; ``mu`` is the maximum growth factor (1.75 in
    the report). Fahlman also used a small weight decay (1e-4) for stability; the default here is
    0 so that the method can be compared with others as is. Every hyperparameter may be a tensor
    broadcasting against the parameters. See :func:`update` for the rules.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "weight_decay",
    )
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        mu: Hyper = 1.75,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            mu=mu,
            weight_decay=weight_decay,
            maximize=maximize,
            **speed_flags("Quickprop", foreach, fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("mu", group["mu"], 0.0, low_open=True)


SPECS = (
    Spec(
        key="quickprop",
        title="Quickprop",
        summary="Treat each weight on its own and jump to the minimum of the parabola through the "
        "last two slopes: Newton's method with a finite-difference second derivative.",
        paper=Paper(
            "Fahlman, S. E.",
            1988,
            "An Empirical Study of Learning Speed in Back-Propagation Networks",
            "Technical Report CMU-CS-88-162, Carnegie Mellon University",
        ),
        equations=(
            r"\Delta\theta_t = \frac{g_t}{g_{t-1} - g_t}\, \Delta\theta_{t-1}",
            r"|\Delta\theta_t| \le \mu\, |\Delta\theta_{t-1}| \quad "
            r"(\text{else } \Delta\theta_t = \mu\, \Delta\theta_{t-1})",
            r"\Delta\theta_t \mathrel{-}= \eta\, g_t \quad \text{unless } g_t "
            r"\text{ has turned against } \Delta\theta_{t-1}; \quad "
            r"\Delta\theta_t = -\eta\, g_t \text{ if } \Delta\theta_{t-1} = 0",
            r"\theta_t = \theta_{t-1} + \Delta\theta_t",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1e-2,
                "gradient-descent rate that starts each weight and is added while it keeps "
                "its direction",
                r"\eta",
                1e-4,
                1e-1,
                "log",
            ),
            Hyperparameter(
                "mu",
                1.75,
                "maximum growth factor: no step exceeds mu times the previous one",
                r"\mu",
                1.2,
                2.5,
                "linear",
            ),
            Hyperparameter(
                "weight_decay",
                0.0,
                "decay term added to each slope (Fahlman used 1e-4)",
                r"\lambda",
            ),
        ),
        state=(
            StateBuffer("prev_grad", "the slope at the previous step", "g_{t-1}"),
            StateBuffer("prev_update", "the previous change of the weight", r"\Delta\theta_{t-1}"),
        ),
        full_batch=True,
        elementwise=True,
        factory=Quickprop,
        order=1,
        teaches="two successive slopes already tell the curvature along each weight",
    ),
)
