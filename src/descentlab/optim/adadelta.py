"""Adadelta (Zeiler, 2012): Adagrad's shrinking steps fixed with a decaying average of squared
gradients, and units fixed with a decaying average of squared updates in the numerator."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, zeroed
from ._tensor_list import TensorList
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor) -> dict[str, Any]:
    return zeroed(param, "square_avg", "acc_delta")


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    rho: Hyper,
    eps: Hyper,
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One Adadelta step (torch.optim.Adadelta's arithmetic; ``lr`` scales the update, 1 in the paper).

    .. math::
        E[g^2]_t = \\rho E[g^2]_{t-1} + (1-\\rho) g_t^2,\\quad
        \\Delta_t = \\frac{\\sqrt{E[\\Delta^2]_{t-1} + \\epsilon}}{\\sqrt{E[g^2]_t + \\epsilon}}\\, g_t,

        E[\\Delta^2]_t = \\rho E[\\Delta^2]_{t-1} + (1-\\rho) \\Delta_t^2,\\quad
        \\theta_t = \\theta_{t-1} - \\eta \\Delta_t
    """
    for param, grad, state in zip(params, grads, states, strict=True):
        advance(state)
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        _hyper.addcmul_(square_avg.mul_(rho), grad, grad, 1 - rho)
        if isinstance(param, TensorList):
            delta = _root_of_ratio(acc_delta.add(eps), square_avg.add(eps)).mul_(grad)
        else:
            std = square_avg.add(eps).sqrt_()
            delta = acc_delta.add(eps).sqrt_()
            delta.div_(std).mul_(grad)
        _hyper.addcmul_(acc_delta.mul_(rho), delta, delta, 1 - rho)
        _hyper.add_(param, delta, -lr)


def _root_of_ratio(numerators: TensorList, denominators: TensorList) -> TensorList:
    """``sqrt(numerators / denominators)``, in place on ``numerators`` (the foreach path's form).

    The loop takes the two roots and divides them, as torch.optim.Adadelta does; over lists every
    operation is a pass over all the tensors, and one root of the quotient is one pass fewer.
    It is also one square root fewer, the costliest of the step's operations with more than one
    thread: torch's CPU ``sqrt`` goes parallel on tensors as small as 100 floats. The same
    number; in float32 the last bit may differ from the loop's (``tests/optim/test_foreach.py``
    bounds it).
    """
    return numerators.div_(denominators).sqrt_()


class Adadelta(Optimizer):
    """Adadelta, a drop-in for ``torch.optim.Adadelta``.

    Zeiler, M. D. (2012). ADADELTA: An Adaptive Learning Rate Method. arXiv:1212.5701.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
    )
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1.0,
        rho: Hyper = 0.9,
        eps: Hyper = 1e-6,
        weight_decay: Hyper = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            **torch_flags("Adadelta", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("rho", group["rho"], 0.0, 1.0)


SPECS = (
    Spec(
        key="adadelta",
        title="Adadelta",
        summary="Replace Adagrad's ever-growing sum with a decaying average, and replace the "
        "learning rate with the root of a decaying average of past squared updates.",
        paper=Paper(
            "Zeiler, M. D.", 2012, "ADADELTA: An Adaptive Learning Rate Method", "arXiv:1212.5701"
        ),
        equations=(
            r"E[g^2]_t = \rho\, E[g^2]_{t-1} + (1 - \rho)\, g_t^2",
            r"\Delta\theta_t = -\frac{\sqrt{E[\Delta\theta^2]_{t-1} + \epsilon}}"
            r"{\sqrt{E[g^2]_t + \epsilon}}\, g_t",
            r"E[\Delta\theta^2]_t = \rho\, E[\Delta\theta^2]_{t-1} + (1 - \rho)\, \Delta\theta_t^2",
            r"\theta_t = \theta_{t-1} + \eta\, \Delta\theta_t",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr", 1.0, "multiplier of the update (1 in the paper)", r"\eta", 1e-2, 10.0, "log"
            ),
            Hyperparameter(
                "rho", 0.9, "decay of both running averages", r"\rho", 0.5, 0.999, "log1m"
            ),
            Hyperparameter(
                "eps",
                1e-6,
                "added inside both roots; sets the first step's size",
                r"\epsilon",
                1e-8,
                1e-3,
                "log",
            ),
            Hyperparameter("weight_decay", 0.0, "coupled L2 penalty", r"\lambda"),
        ),
        state=(
            StateBuffer("square_avg", "decaying average of squared gradients", "E[g^2]"),
            StateBuffer("acc_delta", "decaying average of squared updates", r"E[\Delta\theta^2]"),
        ),
        elementwise=True,
        factory=Adadelta,
        teaches="a step size in the units of the parameters, with no learning rate to tune",
    ),
)
