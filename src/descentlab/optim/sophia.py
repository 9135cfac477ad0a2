"""Sophia: momentum divided by a cheap estimate of the Hessian diagonal, clipped per coordinate.

Liu, H., Li, Z., Hall, D., Liang, P. and Ma, T. (2024). Sophia: A Scalable Stochastic Second-order
Optimizer for Language Model Pre-training. ICLR (arXiv:2305.14342, 2023). Algorithm 3 with the
Hutchinson estimator (SophiaH):

.. math::
    m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t

    \\hat h_t = u \\odot (\\nabla^2 L(\\theta_t)\\, u),\\; u \\sim N(0, I), \\qquad
    h_t = \\beta_2 h_{t-k} + (1 - \\beta_2) \\hat h_t \\quad \\text{if } t \\bmod k = 1,
    \\text{ else } h_t = h_{t-1}

    \\theta_{t+1} = \\theta_t (1 - \\eta \\lambda)
        - \\eta\\, \\mathrm{clip}\\Big(\\frac{m_t}{\\max(\\rho h_t, \\epsilon)}, 1\\Big)

The clip bounds every coordinate's step by :math:`\\eta`: where the curvature estimate is tiny or
negative (non-convex directions), the step falls back to sign momentum instead of exploding.
Dividing by :math:`\\rho h` is a Newton step on the diagonal; the estimate is refreshed every ``k``
steps (``update_interval``), which keeps its cost to one Hessian-vector product per ``k`` steps.

Closure convention (that of ``descentlab.optim.newton``): ``step(closure)``, where the closure zeroes
the gradients, computes the loss, calls ``loss.backward(create_graph=True)`` and returns the loss;
with ``stack_dims = s > 0`` it returns the per-run losses and calls
``loss.sum().backward(create_graph=True)``. The Gaussian probes are reproducible: the generator of
step ``t`` is seeded from the group's ``seed`` (drawn once from torch's global generator when None and
kept in the state, so a resumed run draws the same probes) and ``t``; each parameter's probe has the
shape of one run and is shared by all runs of a stack, so run ``j`` of a stack sees exactly the
probes of a separate run with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import fit
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate

# An odd 64-bit constant (the golden ratio's bits) spreads (seed, step) over generator seeds.
_SEED_MIX = 0x9E3779B97F4A7C15


def init_state(param: Tensor, *, seed: int | None) -> dict[str, Any]:
    return {
        "step": step_counter(),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "hessian": torch.zeros_like(param, memory_format=torch.preserve_format),
        "seed": seed if seed is not None else int(torch.randint(2**62, (), dtype=torch.long)),
    }


def estimate_due(state: dict[str, Any], update_interval: int) -> bool:
    """Whether the coming step ``t`` refreshes the Hessian estimate: ``t mod k = 1``."""
    return int(state["step"].item()) % update_interval == 0


def probe_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * _SEED_MIX + step) % (2**63))
    return generator


def gaussian_probes(
    params: list[Tensor], generator: torch.Generator, stack_dims: int
) -> list[Tensor]:
    """One standard normal probe per parameter, drawn for one run and shared by the stack."""
    probes = []
    for param in params:
        own = torch.randn(
            param.shape[stack_dims:], generator=generator, dtype=param.dtype, device=param.device
        )
        probes.append(own.expand(param.shape))
    return probes


def hutchinson(params: list[Tensor], grads: list[Tensor], probes: list[Tensor]) -> list[Tensor]:
    """:math:`u \\odot H u` for each parameter (``grads`` must carry their graph).

    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the influence matrix for
    Laplacian smoothing splines; unbiased for the diagonal since :math:`E[u u^\\top] = I`.
    """
    if not any(grad.requires_grad for grad in grads):
        raise ValueError(
            "Sophia needs the gradient's graph on the steps that estimate the Hessian: call "
            "loss.backward(create_graph=True) in the closure"
        )
    pairs = [(g, u) for g, u in zip(grads, probes, strict=True) if g.requires_grad]
    with torch.enable_grad():
        products = torch.autograd.grad(
            [g for g, _ in pairs],
            params,
            grad_outputs=[u for _, u in pairs],
            retain_graph=True,
            allow_unused=True,
        )
    return [
        torch.zeros_like(p) if hv is None else u * hv.detach()
        for p, u, hv in zip(params, probes, products, strict=True)
    ]


def estimate(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    update_interval: int,
    stack_dims: int,
) -> list[Tensor] | None:
    """This step's Hutchinson estimates of a group, or None when the step does not refresh them."""
    if not estimate_due(states[0], update_interval):
        return None
    step = int(states[0]["step"].item()) + 1
    generator = probe_generator(states[0]["seed"], step, params[0].device)
    return hutchinson(params, grads, gaussian_probes(params, generator, stack_dims))


def apply(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    estimates: list[Tensor] | None,
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    rho: Hyper,
    weight_decay: Hyper,
    eps: Hyper,
    stack_dims: int = 0,
) -> None:
    """The Sophia step of a group, given this step's estimates (None: keep the old ``h``)."""
    decay = _hyper.is_nonzero(weight_decay)
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        # Per-run values (shape S) shaped against this parameter.
        (beta1, beta2), step_size, scale, decay_rate_, floor = fit(
            (betas, lr, rho, weight_decay, eps), param, stack_dims
        )
        advance(state)
        grad = grad.detach()
        exp_avg, hessian = state["exp_avg"], state["hessian"]
        exp_avg.lerp_(grad, 1 - beta1)
        if estimates is not None:
            _hyper.add_(hessian.mul_(beta2), estimates[index], 1 - beta2)
        if decay:
            param.mul_(1 - step_size * decay_rate_)
        # max(rho h, eps): tiny or negative curvature gives a huge ratio, which the clip bounds.
        curvature = (hessian * scale).clamp_(min=floor)
        ratio = (exp_avg / curvature).clamp_(-1.0, 1.0)
        _hyper.add_(param, ratio, -step_size)


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    rho: Hyper,
    weight_decay: Hyper,
    update_interval: int,
    eps: Hyper,
    stack_dims: int,
) -> None:
    """One SophiaH step of one group, in place (``grads`` carry their graph on estimate steps)."""
    estimates = estimate(
        params, grads, states, update_interval=update_interval, stack_dims=stack_dims
    )
    hyperparameters = dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay, eps=eps)
    apply(params, grads, states, estimates, **hyperparameters, stack_dims=stack_dims)


class Sophia(Optimizer):
    """SophiaH (Liu et al., 2024, ICLR): clipped diagonal-Newton steps on the momentum.

    ``rho`` scales the Hessian estimate (:math:`\\gamma` in the paper), ``update_interval`` is ``k``,
    ``eps`` (keyword) the floor of :math:`\\rho h`, ``seed`` (keyword) makes the probes
    reproducible. ``step(closure)`` needs a closure calling ``loss.backward(create_graph=True)``.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    #: One step reads the whole group (see ``Optimizer.couples_parameters``).
    couples_parameters = True

    checked_nonnegative = (
        "lr",
        "weight_decay",
    )
    checked_betas = ("betas",)
    needs_closure = True

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-4,
        betas: tuple[Hyper, Hyper] = (0.965, 0.99),
        rho: Hyper = 0.04,
        weight_decay: Hyper = 1e-1,
        update_interval: int = 10,
        *,
        eps: Hyper = 1e-12,
        seed: int | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            rho=rho,
            weight_decay=weight_decay,
            update_interval=update_interval,
            eps=eps,
            seed=seed,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("rho", group["rho"], 0.0, low_open=True)
        _hyper.check_range("eps", group["eps"], 0.0, low_open=True)
        interval = group["update_interval"]
        _hyper.check_integer("update_interval", interval, 1)
        _hyper.check_integer("seed", group["seed"], 0, optional=True)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step for every group; ``closure`` must call ``backward(create_graph=True)``.

        Under ``torch.compile(optimizer.step)`` the closure and the estimates run eagerly, in one
        graph break (:meth:`_evaluate_and_estimate`), and the updates compile: one graph for the
        steps that refresh the estimate and one for those that keep it.
        """
        loss, planned = self._evaluate_and_estimate(closure)
        for group, params, grads, states, found in planned:
            keys = self.hyperparameters(group, ("lr", "betas", "rho", "weight_decay", "eps"))
            apply(params, grads, states, found, **keys, stack_dims=group["stack_dims"])
        return loss

    @torch.compiler.disable
    def _evaluate_and_estimate(self, closure: Callable[[], Any] | None) -> tuple[Any, list]:
        """The closure, then every group's Hutchinson estimate when due, outside torch.compile:
        the closure's ``backward(create_graph=True)`` and the Hessian-vector products through
        its graph are autograd calls that dynamo does not trace (``trace_autograd_ops`` is off
        by default), and whether a step estimates is read from its count. Every estimate comes
        before any parameter moves: moving one in place would invalidate the graph the other
        groups' products are taken through. Returns the loss and, per group with gradients,
        ``(group, params, detached grads, states, estimates or None)``."""
        loss = self._evaluate(closure)
        planned = []
        for group in self.param_groups:
            params, grads, states = self._gather(group)
            if params:
                found = estimate(
                    params,
                    grads,
                    states,
                    update_interval=group["update_interval"],
                    stack_dims=group["stack_dims"],
                )
                planned.append((group, params, [g.detach() for g in grads], states, found))
        return loss, planned


SPECS = (
    Spec(
        key="sophia",
        title="Sophia (SophiaH)",
        summary="Momentum divided by a Hutchinson estimate of the Hessian diagonal, refreshed "
        "every few steps, with each coordinate's step clipped so bad curvature cannot blow it up.",
        paper=Paper(
            "Liu, H., Li, Z., Hall, D., Liang, P. and Ma, T.",
            2024,
            "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
            "ICLR",
            "https://arxiv.org/abs/2305.14342",
        ),
        equations=(
            r"m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t",
            r"\hat h_t = u \odot (\nabla^2 L(\theta_t)\, u), \quad u \sim N(0, I)",
            r"h_t = \beta_2 h_{t-k} + (1 - \beta_2)\, \hat h_t \ \text{ if } t \bmod k = 1, "
            r"\text{ else } h_t = h_{t-1}",
            r"\theta_{t+1} = \theta_t (1 - \eta \lambda) - \eta\, "
            r"\mathrm{clip}\!\left(\frac{m_t}{\max(\rho\, h_t, \epsilon)}, 1\right)",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr",
                1e-4,
                "step size: the largest move of a coordinate",
                r"\eta",
                1e-5,
                1e-1,
                "log",
            ),
            decay_rate(0, 0.965, "decay of the gradient average m", 0.5, 0.99),
            decay_rate(
                1, 0.99, "decay of the Hessian-diagonal average h (per estimate)", 0.9, 0.999
            ),
            Hyperparameter(
                "rho", 0.04, "scale of the curvature in the denominator", r"\rho", 0.01, 1.0, "log"
            ),
            Hyperparameter(
                "weight_decay",
                1e-1,
                "decoupled decay of the weights, scaled by lr",
                r"\lambda",
                1e-3,
                0.3,
                "log",
            ),
            Hyperparameter("update_interval", 10, "steps between Hessian estimates", "k"),
        ),
        state=(
            StateBuffer("exp_avg", "moving average of the gradient", "m"),
            StateBuffer("hessian", "moving average of the Hutchinson diagonal estimates", "h"),
        ),
        factory=Sophia,
        family="modern",
        order=2,
        needs_closure=True,
        teaches="a clipped diagonal Newton step uses curvature where it is trustworthy and falls "
        "back to sign momentum where it is not",
    ),
)
