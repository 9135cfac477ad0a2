"""Gradient descent: plain, with heavy-ball momentum, and with Nesterov's look-ahead.

Plain (stochastic, mini-batch) gradient descent goes back to Robbins & Monro (1951). The momentum
buffer is Polyak's heavy ball (1964) in torch's form ``v = mu v + (1 - dampening) g``; with
``dampening = momentum`` it becomes the exponentially weighted average ``v = b v + (1 - b) g`` of
the course notes, which is the same method with the learning rate rescaled by ``1 - b``. Nesterov's
variant follows Sutskever et al. (2013), as torch.optim does.
"""

from __future__ import annotations

from typing import Any

import torch.optim.sgd as torch_sgd
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import apply_weight_decay
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor) -> dict[str, Any]:
    # torch creates the buffer from the first gradient, so there is nothing to allocate yet.
    return {"momentum_buffer": None}


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    momentum: Hyper,
    dampening: Hyper,
    weight_decay: Hyper,
    nesterov: bool,
    maximize: bool,
) -> None:
    """One SGD step (torch.optim.SGD's arithmetic).

    .. math::
        g_t = \\nabla f(\\theta_{t-1}) + \\lambda \\theta_{t-1},\\quad
        v_t = \\mu v_{t-1} + (1 - \\tau) g_t \\; (v_1 = g_1),\\quad
        \\theta_t = \\theta_{t-1} - \\eta\\,(g_t + \\mu v_t \\text{ if Nesterov else } v_t)
    """
    use_momentum = _hyper.is_nonzero(momentum)
    for param, grad, state in zip(params, grads, states, strict=True):
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        if use_momentum:
            buffer = state["momentum_buffer"]
            if buffer is None:
                buffer = grad.detach().clone()
                state["momentum_buffer"] = buffer
            else:
                _hyper.add_(buffer.mul_(momentum), grad, 1 - dampening)
            grad = _hyper.add(grad, buffer, momentum) if nesterov else buffer
        _hyper.sub_(param, grad, lr)


def fused_update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """The same step by torch's fused SGD kernel (``torch.optim.SGD(fused=True)``)."""
    buffers = [state["momentum_buffer"] for state in states]
    torch_sgd.sgd(
        params,
        grads,
        buffers,  # torch fills None entries with new buffers on the first step
        fused=True,
        weight_decay=weight_decay,
        momentum=momentum,
        lr=lr,
        dampening=dampening,
        nesterov=nesterov,
        maximize=maximize,
    )
    if momentum != 0:
        for state, buffer in zip(states, buffers, strict=True):
            state["momentum_buffer"] = buffer


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum or Nesterov momentum.

    A drop-in for ``torch.optim.SGD`` (same signature, defaults and float results). Every
    hyperparameter may be a tensor broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    fused_kernel = staticmethod(fused_update)
    checked_nonnegative = (
        "lr",
        "momentum",
        "weight_decay",
    )
    checked_flags = (
        "nesterov",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        momentum: Hyper = 0,
        dampening: Hyper = 0,
        weight_decay: Hyper = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            **torch_flags("SGD", foreach, differentiable=differentiable, fused=fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("dampening", group["dampening"], 0.0, 1.0)
        if group["nesterov"] and not (
            _hyper.is_nonzero(group["momentum"]) and not _hyper.is_nonzero(group["dampening"])
        ):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")


_ROBBINS = Paper(
    "Robbins, H. and Monro, S.",
    1951,
    "A Stochastic Approximation Method",
    "The Annals of Mathematical Statistics 22(3)",
)
_POLYAK = Paper(
    "Polyak, B. T.",
    1964,
    "Some methods of speeding up the convergence of iteration methods",
    "USSR Computational Mathematics and Mathematical Physics 4(5)",
)
_SUTSKEVER = Paper(
    "Sutskever, I., Martens, J., Dahl, G. and Hinton, G.",
    2013,
    "On the importance of initialization and momentum in deep learning",
    "ICML",
)

_LR = Hyperparameter(
    "lr",
    1e-3,
    "step size: how far to move along the (averaged) negative gradient",
    r"\eta",
    1e-4,
    1.0,
    "log",
)
_WEIGHT_DECAY = Hyperparameter(
    "weight_decay", 0.0, "coupled L2 penalty added to the gradient", r"\lambda"
)
_MOMENTUM = Hyperparameter(
    "momentum",
    0.9,
    "how much of the previous velocity is kept each step",
    r"\mu",
    0.5,
    0.99,
    "log1m",
)

SPECS = (
    Spec(
        key="sgd",
        title="Gradient descent (SGD)",
        summary="Step against the gradient of the current batch: full batch, single example or "
        "mini-batch gradient descent, depending on what the gradient is computed on.",
        paper=_ROBBINS,
        equations=(r"\theta_t = \theta_{t-1} - \eta \, \nabla f(\theta_{t-1})",),
        hyperparameters=(_LR, _WEIGHT_DECAY),
        state=(),
        elementwise=True,
        factory=SGD,
        teaches="one learning rate for every direction: too small crawls, too large diverges",
    ),
    Spec(
        key="momentum",
        title="SGD with momentum (heavy ball)",
        summary="Accumulate a velocity from past gradients; steps grow along consistent "
        "directions and oscillations across a ravine cancel.",
        paper=_POLYAK,
        equations=(
            r"v_t = \mu \, v_{t-1} + \nabla f(\theta_{t-1})",
            r"\theta_t = \theta_{t-1} - \eta \, v_t",
        ),
        hyperparameters=(_LR, _MOMENTUM, _WEIGHT_DECAY),
        state=(StateBuffer("momentum_buffer", "velocity: decaying sum of past gradients", "v"),),
        elementwise=True,
        factory=SGD,
        teaches="a velocity that glides through ravines where plain GD zig-zags",
    ),
    Spec(
        key="nesterov",
        title="Nesterov accelerated gradient",
        summary="Momentum that corrects its course with the gradient seen after the momentum "
        "step (the look-ahead), in the form torch uses.",
        paper=_SUTSKEVER,
        equations=(
            r"v_t = \mu \, v_{t-1} + \nabla f(\theta_{t-1})",
            r"\theta_t = \theta_{t-1} - \eta \, (\nabla f(\theta_{t-1}) + \mu \, v_t)",
        ),
        hyperparameters=(_LR, _MOMENTUM, _WEIGHT_DECAY),
        state=(StateBuffer("momentum_buffer", "velocity: decaying sum of past gradients", "v"),),
        elementwise=True,
        factory=SGD,
        fixed={"nesterov": True},
        teaches="looking ahead before stepping brakes momentum before it overshoots",
    ),
)
