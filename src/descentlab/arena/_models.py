"""The models of the built-in tasks, and the initialization and dropout options they share.

Every model is built for ``torch.func.functional_call`` + ``torch.func.vmap`` over stacked
parameters: no BatchNorm (no buffers to update), no in-place operations, nothing that leaves the
graph (``.item()``), batch dimension first. Their parameters are drawn from torch's global RNG at
construction, so seeding it before :meth:`Task.model` fixes the initialization.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INITS = ("default", "xavier", "he")
"""``default``: each layer's own ``reset_parameters`` (torch's Kaiming-uniform with a = sqrt(5));
``xavier``: Glorot & Bengio (2010), uniform; ``he``: He et al. (2015), normal, for ReLU. The last
two set biases to zero, as those papers do."""


def check_options(task: str, dropout: float, init: str) -> None:
    """Raise ``ValueError`` naming the bad option (``dropout`` outside [0, 1), unknown ``init``)."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ValueError(f"task {task!r}: dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"task {task!r}: dropout must be in [0, 1), got {dropout!r}")
    if init not in INITS:
        raise ValueError(f"task {task!r}: init must be one of {', '.join(INITS)}, got {init!r}")


def initialize(model: nn.Module, init: str) -> nn.Module:
    """Redraw the weights of every Linear and Conv layer by ``init`` (see :data:`INITS`)."""
    if init == "default":
        return model
    for layer in model.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if init == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def _dropout(probability: float) -> list[nn.Module]:
    return [nn.Dropout(probability)] if probability > 0 else []


def logistic_regression(features: int, classes: int, dropout: float) -> nn.Module:
    """One Linear layer (softmax regression); dropout, if any, drops input features."""
    return nn.Sequential(*_dropout(dropout), nn.Linear(features, classes))


def mlp(features: int, hidden: tuple[int, ...], classes: int, dropout: float) -> nn.Module:
    """Linear + ReLU per hidden width, dropout after each hidden activation, a Linear to logits."""
    layers: list[nn.Module] = []
    width = features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), *_dropout(dropout)]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, classes))


def digits_cnn(classes: int, dropout: float) -> nn.Module:
    """1x8x8 -> conv 3x3 (16) -> ReLU -> conv 3x3 (32) -> ReLU -> max-pool 2 -> 512 -> logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        *_dropout(dropout),
        nn.Linear(32 * 4 * 4, classes),
    )


class NoisyQuadratic(nn.Module):
    """Per-example loss ``0.5 * sum_j h_j (theta_j - x_j)^2`` of one parameter vector ``theta``.

    ``forward(x)`` takes a batch of offsets ``(B, D)`` and returns the ``(B,)`` losses; the
    curvatures ``h`` are a buffer (constant, shared by all stacked copies). ``theta`` starts at
    ``1 + 0.1 * N(0, I)``: DeepOBS starts at all ones; the small jitter lets seeds differ.
    """

    def __init__(self, curvatures: Tensor) -> None:
        super().__init__()
        self.register_buffer("curvatures", curvatures.clone())
        self.theta = nn.Parameter(1.0 + 0.1 * torch.randn(curvatures.shape[0]))

    def forward(self, offsets: Tensor) -> Tensor:
        return 0.5 * ((self.theta - offsets) ** 2 * self.curvatures).sum(-1)
