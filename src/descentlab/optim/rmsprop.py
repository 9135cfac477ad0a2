"""RMSprop (Tieleman & Hinton, 2012): divide the gradient by the root of a decaying average of its
square; optionally centered (Graves, 2013) and with momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor, *, momentum: Hyper, centered: bool) -> dict[str, Any]:
    state = {
        "step": step_counter(),
        "square_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
    }
    if _hyper.is_nonzero(momentum):
        state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    if centered:
        state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    alpha: Hyper,
    eps: Hyper,
    weight_decay: Hyper,
    momentum: Hyper,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step (torch.optim.RMSprop's arithmetic: epsilon outside the root).

    .. math::
        v_t = \\alpha v_{t-1} + (1-\\alpha) g_t^2,\\quad
        \\bar g_t = \\alpha \\bar g_{t-1} + (1-\\alpha) g_t \\text{ (centered)},

        \\theta_t = \\theta_{t-1} - \\eta \\frac{g_t}{\\sqrt{v_t - \\bar g_t^2} + \\epsilon}
        \\quad\\text{(with momentum: } b_t = \\mu b_{t-1} + \\frac{g_t}{\\sqrt{\\cdot}+\\epsilon},
        \\ \\theta_t = \\theta_{t-1} - \\eta b_t)
    """
    use_momentum = _hyper.is_nonzero(momentum)
    for param, grad, state in zip(params, grads, states, strict=True):
        advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        square_avg = state["square_avg"]
        _hyper.addcmul_(square_avg.mul_(alpha), grad, grad, 1 - alpha)
        if centered:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)
        if use_momentum:
            buffer = state["momentum_buffer"]
            buffer.mul_(momentum).addcdiv_(grad, avg)
            _hyper.sub_(param, buffer, lr)
        else:
            _hyper.subcdiv_(param, grad, avg, lr)


class RMSprop(Optimizer):
    """RMSprop, a drop-in for ``torch.optim.RMSprop``.

    Tieleman, T. and Hinton, G. (2012). Lecture 6.5, rmsprop: Divide the gradient by a running
    average of its recent magnitude. COURSERA: Neural Networks for Machine Learning.
    ``centered=True``: Graves, A. (2013). Generating Sequences With Recurrent Neural Networks.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
        "momentum",
    )
    checked_flags = (
        "centered",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        alpha: Hyper = 0.99,
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0,
        momentum: Hyper = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            **torch_flags("RMSprop", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("alpha", group["alpha"], 0.0, 1.0)


SPECS = (
    Spec(
        key="rmsprop",
        title="RMSprop",
        summary="Divide each coordinate's gradient by the root of a decaying average of its "
        "squares: Adagrad's scaling without the ever-shrinking steps.",
        paper=Paper(
            "Tieleman, T. and Hinton, G.",
            2012,
            "Lecture 6.5, rmsprop: Divide the gradient by a running average of its recent magnitude",
            "COURSERA: Neural Networks for Machine Learning",
        ),
        equations=(
            r"v_t = \alpha\, v_{t-1} + (1 - \alpha)\, g_t^2",
            r"\theta_t = \theta_{t-1} - \eta\, \frac{g_t}{\sqrt{v_t} + \epsilon}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-2, "step size", r"\eta", 1e-5, 1e-1, "log"),
            Hyperparameter(
                "alpha",
                0.99,
                "decay of the squared-gradient average",
                r"\alpha",
                0.8,
                0.999,
                "log1m",
            ),
            Hyperparameter("eps", 1e-8, "added to the denominator (outside the root)", r"\epsilon"),
            Hyperparameter("momentum", 0.0, "momentum applied to the scaled gradient", r"\mu"),
            Hyperparameter(
                "centered", False, "divide by the variance estimate instead", scale="fixed"
            ),
            Hyperparameter("weight_decay", 0.0, "coupled L2 penalty", r"\lambda"),
        ),
        state=(
            StateBuffer("square_avg", "decaying average of squared gradients", "v"),
            StateBuffer("momentum_buffer", "momentum of the scaled gradient (momentum > 0)", "b"),
            StateBuffer("grad_avg", "decaying average of gradients (centered)", r"\bar g"),
        ),
        elementwise=True,
        factory=RMSprop,
        teaches="a forgetting average of squared gradients keeps adaptive steps from dying out",
    ),
)
