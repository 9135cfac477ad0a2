"""Shared test fixtures: losses whose gradients depend on the parameters, and a driver that steps
any registry optimizer with the closure convention its spec asks for."""

from __future__ import annotations

from dataclasses import replace

import torch

import descentlab.optim as optim


def random_params(shapes, seed: int, dtype=torch.float32) -> list[torch.Tensor]:
    """Leaf parameters of these shapes, uniform in [-1, 1): drawn in float64 from ``seed`` and
    cast to ``dtype``, so float32 and float64 runs start from the same values."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1)
        .to(dtype)
        .requires_grad_()
        for shape in shapes
    ]


def wavy_loss(param: torch.Tensor) -> torch.Tensor:
    """A smooth non-quadratic loss, summed per run over the last dimension (shape: param[..., 0]).

    Products only: vectorized and scalar kernels of transcendental functions (sin, exp) may differ
    in the last bit, which would make identical optimizer arithmetic look different.
    """
    shifted = param - 0.3
    return (shifted * shifted * shifted * shifted + 0.5 * param * param - 0.2 * param).sum(dim=-1)


def first_order_keys() -> list[str]:
    return [key for key in optim.names() if not optim.spec(key).needs_closure]


def run(optimizer, params, loss_of, steps, create_graph=False):
    """Step ``optimizer`` ``steps`` times on ``loss_of(params)`` (a scalar)."""

    def closure():
        optimizer.zero_grad()
        loss = loss_of(params)
        loss.backward(create_graph=create_graph)
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return [p.detach().clone() for p in params]


def tuned_values(key: str, count: int) -> dict[str, list[float]]:
    """``count`` different values of each tuned hyperparameter (spec names, e.g. beta1).

    Step sizes (log scale) spread from the bottom of the range up to the default, so that no run
    diverges on the test losses; the others spread over their whole range.
    """
    values = {}
    for hyper in optim.spec(key).hyperparameters:
        if hyper.scale == "log":
            values[hyper.name] = replace(hyper, high=hyper.default).grid(count)
        elif hyper.scale in ("linear", "log1m"):
            values[hyper.name] = hyper.grid(count)
    return values


def reset_compiled_graphs() -> None:
    """Zero the counts that :func:`compiled_graphs` reads (and forget the fused path's graphs)."""
    import torch._dynamo.utils

    from descentlab.optim import _fused_graph

    torch._dynamo.utils.counters.clear()
    _fused_graph.clear()


def compiled_graphs() -> int:
    """Graphs compiled since :func:`reset_compiled_graphs`: by torch.compile (dynamo's count) and
    by the fused path's direct builds (``_fused_graph``)."""
    import torch._dynamo.utils

    from descentlab.optim import _fused_graph

    return torch._dynamo.utils.counters["stats"]["unique_graphs"] + _fused_graph.stats["graphs"]
