"""LARS: SGD with momentum whose learning rate is scaled per layer by ||w|| / ||grad||.

You, Y., Gitman, I. and Ginsburg, B. (2017). Large Batch Training of Convolutional Networks.
arXiv:1708.03888 (technical report).

Choices, from the paper's Algorithm 1 and its equation (6) unless said:

* the local learning rate is ``trust_coefficient * ||w|| / (||g|| + weight_decay * ||w||)``, with
  the norms of the layer's weights and of its raw gradient;
* the global ``lr`` sits *inside* the momentum, as in Algorithm 1:
  ``v = momentum * v + lr * local_lr * (g + weight_decay * w)`` and ``w = w - v``, so changing
  ``lr`` during training (the paper's polynomial decay) does not rescale past velocity;
* the local learning rate is 1 when ``||w||`` or ``||g||`` is zero (the paper leaves this case
  open; zero-initialised biases would otherwise never move): the reference implementations'
  convention;
* ``nesterov=True`` (not in the paper) steps by ``u + momentum * v`` with the new ``v``, the form
  torch.optim.SGD uses for Nesterov momentum;
* ``lr`` has no default, as the paper gives none (it is always paired with a schedule); the
  registry's default is the spec's;
* a "layer" is one parameter tensor; with ``stack_dims = s`` each stacked run has its own local
  learning rate, the norms taken over the run's own (non-stack) dimensions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import slice_norm
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor) -> dict[str, Any]:
    # v_0 = 0 (Algorithm 1), so the first velocity is exactly the first scaled gradient.
    return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    momentum: Hyper,
    weight_decay: Hyper,
    trust_coefficient: Hyper,
    nesterov: bool,
    maximize: bool,
    stack_dims: int,
) -> None:
    """One LARS step (You, Gitman & Ginsburg 2017, Algorithm 1 with eq. 6).

    .. math::
        \\lambda = \\eta_{\\text{trust}} \\frac{\\lVert w_t\\rVert}
            {\\lVert g_t\\rVert + \\beta \\lVert w_t\\rVert},\\quad
        v_{t+1} = m v_t + \\gamma\\,\\lambda\\,(g_t + \\beta w_t),\\quad
        w_{t+1} = w_t - v_{t+1}
    """
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        grad = -grad if maximize else grad
        weight_norm = slice_norm(param, stack_dims)
        grad_norm = slice_norm(grad, stack_dims)
        denominator = _hyper.add(grad_norm, weight_norm, weight_decay) if decay else grad_norm
        # 1 where a norm is zero; a NaN norm (non-finite gradient) stays NaN, as in LAMB.
        degenerate = (weight_norm == 0) | (grad_norm == 0)
        local_lr = torch.where(degenerate, 1.0, trust_coefficient * weight_norm / denominator)
        scaled = _hyper.add(grad, param, weight_decay) if decay else grad.clone()
        scaled.mul_(local_lr * lr)
        velocity = state["momentum_buffer"]
        velocity.mul_(momentum).add_(scaled)
        if nesterov:
            _hyper.add_(scaled, velocity, momentum)
            param.sub_(scaled)
        else:
            param.sub_(velocity)


class LARS(Optimizer):
    """LARS (You, Gitman & Ginsburg 2017): layer-wise adaptive rate scaling for SGD + momentum.

    ``lr`` is required (the paper pairs it with a polynomial decay schedule). Every
    hyperparameter may be a tensor broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    checked_nonnegative = (
        "lr",
        "weight_decay",
    )
    checked_flags = (
        "nesterov",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: Hyper,
        momentum: Hyper = 0.9,
        weight_decay: Hyper = 0.0,
        trust_coefficient: Hyper = 1e-3,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        _hyper.check_range("trust_coefficient", group["trust_coefficient"], 0.0, low_open=True)
        if group["nesterov"] and not _hyper.is_nonzero(group["momentum"]):
            raise ValueError("nesterov=True requires momentum > 0")


SPECS = (
    Spec(
        key="lars",
        title="LARS (layer-wise adaptive rate scaling)",
        summary="SGD with momentum where each layer's learning rate is scaled by the ratio of "
        "its weight norm to its gradient norm, so no layer moves too far relative to its size.",
        paper=Paper(
            "You, Y., Gitman, I. and Ginsburg, B.",
            2017,
            "Large Batch Training of Convolutional Networks",
            "arXiv:1708.03888",
            "https://arxiv.org/abs/1708.03888",
        ),
        equations=(
            r"\lambda_t = \eta_{\text{trust}} \, \frac{\lVert w_t \rVert}"
            r"{\lVert g_t \rVert + \beta \lVert w_t \rVert} "
            r"\quad \text{(per layer; 1 if a norm is 0)}",
            r"v_{t+1} = m\, v_t + \gamma \, \lambda_t \, (g_t + \beta\, w_t)",
            r"w_{t+1} = w_t - v_{t+1}",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                10.0,
                "global learning rate gamma, multiplying every layer's local rate",
                r"\gamma",
                1e-1,
                1e2,
                "log",
            ),
            Hyperparameter(
                "momentum",
                0.9,
                "how much of the previous velocity is kept each step",
                "m",
                0.5,
                0.99,
                "log1m",
            ),
            Hyperparameter(
                "weight_decay",
                0.0,
                "L2 decay, added to the gradient and to the ratio's denominator",
                r"\beta",
            ),
            Hyperparameter(
                "trust_coefficient",
                1e-3,
                "how far a layer may move per step relative to its weight norm",
                r"\eta_{\text{trust}}",
                1e-4,
                1e-2,
                "log",
            ),
        ),
        state=(
            StateBuffer("momentum_buffer", "velocity: decaying sum of scaled past gradients", "v"),
        ),
        factory=LARS,
        family="modern",
        teaches="scaling each layer's step by ||w|| / ||grad|| keeps every layer moving at a "
        "comparable relative speed, whatever the batch size",
    ),
)
