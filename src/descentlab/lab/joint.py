"""The lab's first-order runs stepped together: one landscape evaluation a step for all of them."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


class JointRuns:
    """The direct runners' runs side by side in ONE (runs, D) tensor, stepped by one evaluation
    of the landscape for all of them (their runs are independent rows) and recorded by one copy
    a step.

    The gradient is the landscape's closed form where it has one (every built-in landscape), else
    ONE backward pass (``Landscape.value_and_grad``), from a fresh leaf aliasing the runs.
    Each runner's position becomes a view of its rows, so the losses and gradients split back
    as views and its update writes the joint tensor in place.
    """

    def __init__(self, direct: list, surface, dtype: torch.dtype) -> None:
        self.direct, self.surface = direct, surface
        sizes = [runner.position.shape[0] for runner in direct]
        ends = list(itertools.accumulate(sizes))
        self.bounds = list(itertools.pairwise([0, *ends]))
        total = ends[-1] if ends else 0
        self.sizes = sizes
        self.positions = torch.empty((total, surface.dim), dtype=dtype)
        for runner, (begin, end) in zip(direct, self.bounds, strict=True):
            runner.place_in(self.positions[begin:end])

    def evaluate(self) -> tuple[Tensor, Tensor, list[Tensor]]:
        """The joint losses before the step (runs,), their gradient (runs, D), and each direct
        runner's gradient as a view of it shaped like its position."""
        losses, grad = self.surface.value_and_grad(self.positions)
        parts = [grad] if len(self.direct) == 1 else grad.split_with_sizes(self.sizes)
        shaped = [
            _shaped(part, runner.position.shape)
            for runner, part in zip(self.direct, parts, strict=True)
        ]
        return losses, grad, shaped


def _shaped(tensor: Tensor, shape: torch.Size) -> Tensor:
    return tensor if tensor.shape == shape else tensor.view(shape)
