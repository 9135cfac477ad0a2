"""Newton's method: step to the minimizer of the local quadratic model of the loss.

.. math::
    f(\\theta + \\Delta) \\approx f(\\theta) + g^\\top \\Delta + \\tfrac12 \\Delta^\\top H \\Delta
    \\;\\Rightarrow\\; \\Delta = -(H + \\lambda I)^{-1} g

with damping :math:`\\lambda \\ge 0` (Levenberg, 1944) against small or negative curvature. Two
forms, as in the course notes (001): ``hessian="exact"`` builds the full Hessian of each run
(``D`` Hessian-vector products, then a batched solve of ``D x D`` systems: for small parameter
counts), and ``hessian="diagonal"`` divides each coordinate by its own curvature
:math:`\\Delta_i = -g_i / (H_{ii} + \\lambda)` with :math:`H_{ii}` estimated by Hutchinson's
method, :math:`\\mathrm{diag}(H) = \\mathbb{E}[v \\odot Hv]` for Rademacher :math:`v`
(Bekas, Kokiopoulou and Saad, 2007), at the cost of one Hessian-vector product per probe.

Closure convention: the closure zeroes the gradients, computes the loss, calls
``loss.backward(create_graph=True)`` (the gradient must keep its graph so it can be
differentiated again) and returns the loss. With ``stack_dims = s > 0`` it returns the per-run
losses (shape ``S``) and calls ``loss.sum().backward(create_graph=True)``: runs are independent,
so differentiating the summed gradient gives every run's Hessian at once.

With several param groups each group takes a Newton step with its own block of the Hessian
(cross-group curvature is ignored), all computed at the same point before any parameter moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import fit, flatten, stack_shape, unflatten
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer

HESSIAN_MODES = ("exact", "diagonal")

# An odd 64-bit constant (the golden ratio's bits) to spread (seed, step) over generator seeds.
_SEED_MIX = 0x9E3779B97F4A7C15


def init_state(param: Tensor, *, hessian: str, seed: int | None) -> dict[str, Any]:
    state: dict[str, Any] = {"step": step_counter()}
    if hessian == "diagonal":
        state["hessian_diag"] = torch.zeros_like(param)
        # Without a seed, draw one from torch's global generator, once: seeded by
        # torch.manual_seed and stored, so a resumed run draws the same probes.
        state["seed"] = (
            seed if seed is not None else int(torch.randint(2**62, (), dtype=torch.long))
        )
    return state


def _require_graph(grads: list[Tensor]) -> list[Tensor]:
    if not any(grad.requires_grad for grad in grads):
        raise ValueError(
            "Newton needs the gradient's graph: call loss.backward(create_graph=True) in the "
            "closure (the loss must also depend on the parameters non-linearly)"
        )
    return grads


def _vjp(grads: list[Tensor], params: list[Tensor], vectors: list[Tensor]) -> list[Tensor]:
    """:math:`\\sum_i v_i^\\top \\partial g_i / \\partial \\theta`, i.e. :math:`Hv` (H symmetric)."""
    pairs = [(g, v) for g, v in zip(grads, vectors, strict=True) if g.requires_grad]
    products = torch.autograd.grad(
        [g for g, _ in pairs],
        params,
        grad_outputs=[v for _, v in pairs],
        retain_graph=True,
        allow_unused=True,
    )
    return [
        torch.zeros_like(p) if hv is None else hv for p, hv in zip(params, products, strict=True)
    ]


def rademacher(params: list[Tensor], generator: torch.Generator) -> list[Tensor]:
    """Independent random signs, one per coordinate, in the parameters' dtype."""
    return [
        torch.randint(0, 2, p.shape, generator=generator, device=p.device).to(p.dtype) * 2 - 1
        for p in params
    ]


def hutchinson_diagonal(
    params: list[Tensor], grads: list[Tensor], samples: int, generator: torch.Generator
) -> list[Tensor]:
    """Hutchinson's estimate of the Hessian diagonal, :math:`\\frac1N \\sum_n v_n \\odot H v_n`.

    Bekas, C., Kokiopoulou, E. and Saad, Y. (2007). An estimator for the diagonal of a matrix.
    Applied Numerical Mathematics 57(11-12). Unbiased; exact in one probe when H is diagonal.
    ``grads`` must carry their graph (``create_graph=True``). With stacked runs each run gets its
    own probes, so its estimate does not depend on the others.
    """
    _require_graph(grads)
    with torch.enable_grad():
        total = [torch.zeros_like(p) for p in params]
        for _ in range(samples):
            probes = rademacher(params, generator)
            for acc, v, hv in zip(total, probes, _vjp(grads, params, probes), strict=True):
                acc.add_(v * hv)
    return [acc / samples for acc in total]


def exact_hessian(params: list[Tensor], grads: list[Tensor], stack_dims: int) -> Tensor:
    """Every run's Hessian, shape ``S + (D, D)``, by one backward pass per coordinate.

    Row ``j`` of all K Hessians at once: differentiate the sum over runs of each run's ``j``-th
    gradient entry (runs are independent, so run k's entry depends on run k's parameters only).
    """
    _require_graph(grads)
    with torch.enable_grad():
        flat = flatten(grads, stack_dims)
        rows = []
        for j in range(flat.shape[-1]):
            # One-hot of coordinate j in every run, as grad_outputs of the gradient tensors.
            unit_flat = torch.zeros_like(flat)
            unit_flat[..., j] = 1
            unit = unflatten(unit_flat, grads, stack_dims)
            rows.append(flatten(_vjp(grads, params, unit), stack_dims))
    return torch.stack(rows, dim=-2)


def _seed_for(seed: int, step: int) -> int:
    return (seed * _SEED_MIX + step) % (2**63)


def measure_curvature(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    hessian: str,
    hutchinson_samples: int,
    stack_dims: int,
) -> Tensor | list[Tensor]:
    """Count the step and differentiate the gradient again: every run's Hessian (``"exact"``,
    shape ``S + (D, D)``) or Hutchinson's estimate of its diagonal (``"diagonal"``, one tensor per
    parameter). Backward passes through the closure's graph: see :meth:`Newton.step`."""
    step = advance(states[0])
    for state in states[1:]:
        advance(state)
    if hessian == "exact":
        return exact_hessian(params, grads, stack_dims)
    generator = torch.Generator(device=params[0].device)
    generator.manual_seed(_seed_for(states[0]["seed"], int(step)))
    return hutchinson_diagonal(params, grads, hutchinson_samples, generator)


def solve_steps(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    curvature: Tensor | list[Tensor],
    *,
    lr: Hyper,
    damping: Hyper,
    hessian: str,
    stack_dims: int,
) -> list[Tensor]:
    """The Newton steps :math:`-\\eta (H + \\lambda I)^{-1} g` from a measured curvature
    (:func:`measure_curvature`), parameters untouched; no autograd, so torch.compile traces it.

    ``damping`` may be a tensor broadcasting against each parameter: per run (shape ``(K, 1)``)
    or even per coordinate (:math:`H + \\mathrm{diag}(\\lambda)`); ``lr`` likewise.
    """
    if hessian == "diagonal":
        directions = []
        for state, grad, diagonal in zip(states, grads, curvature, strict=True):
            state["hessian_diag"].copy_(diagonal)
            directions.append(grad.detach() / (diagonal + fit(damping, grad, stack_dims)))
    else:
        matrix = curvature
        flat_grad = flatten([g.detach() for g in grads], stack_dims)
        size = flat_grad.shape[-1]
        if isinstance(damping, Tensor):
            shifts = flatten(
                [fit(damping, p, stack_dims).expand(p.shape) for p in params], stack_dims
            )
            matrix = matrix + torch.diag_embed(shifts)
        elif damping != 0:
            eye = torch.eye(size, dtype=matrix.dtype, device=matrix.device)
            matrix = matrix + damping * eye
        try:
            solution = torch.linalg.solve(matrix, flat_grad.unsqueeze(-1)).squeeze(-1)
        except torch.linalg.LinAlgError as error:
            raise ValueError(
                f"Newton: the Hessian plus damping is singular ({error}); increase damping"
            ) from None
        directions = unflatten(solution, params, stack_dims)
    return [-(direction * fit(lr, direction, stack_dims)) for direction in directions]


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    damping: Hyper,
    hessian: str,
    hutchinson_samples: int,
    stack_dims: int,
) -> None:
    """One Newton step of one group, in place (``grads`` must carry their graph): the steps
    :math:`-\\eta (H + \\lambda I)^{-1} g` from :func:`measure_curvature` then
    :func:`solve_steps`."""
    curvature = measure_curvature(
        params,
        grads,
        states,
        hessian=hessian,
        hutchinson_samples=hutchinson_samples,
        stack_dims=stack_dims,
    )
    steps = solve_steps(
        params,
        grads,
        states,
        curvature,
        lr=lr,
        damping=damping,
        hessian=hessian,
        stack_dims=stack_dims,
    )
    with torch.no_grad():
        for param, step in zip(params, steps, strict=True):
            param.add_(step)


class Newton(Optimizer):
    """Newton's method with damping, exact or diagonal (Hutchinson) Hessian.

    ``lr`` scales the step (1 is the pure Newton step), ``damping`` is :math:`\\lambda` in
    :math:`(H + \\lambda I)`, ``hessian`` is ``"exact"`` or ``"diagonal"``,
    ``hutchinson_samples`` the probes per step of the diagonal estimate and ``seed`` makes its
    probes reproducible (drawn from torch's global generator when None; kept as the int
    ``state["seed"]`` of each parameter, so a resumed run draws the same probes). ``step(closure)``
    requires a closure that calls ``loss.backward(create_graph=True)``; see the module docstring
    for stacked runs.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    #: One step reads the whole group (see ``Optimizer.couples_parameters``).
    couples_parameters = True

    checked_nonnegative = (
        "lr",
        "damping",
    )
    needs_closure = True

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1.0,
        damping: Hyper = 0.0,
        hessian: str = "exact",
        *,
        hutchinson_samples: int = 1,
        seed: int | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            damping=damping,
            hessian=hessian,
            hutchinson_samples=hutchinson_samples,
            seed=seed,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_choice("hessian", group["hessian"], HESSIAN_MODES)
        samples = group["hutchinson_samples"]
        _hyper.check_integer("hutchinson_samples", samples, 1)
        _hyper.check_integer("seed", group["seed"], 0, optional=True)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One Newton step for every group; ``closure`` must call ``backward(create_graph=True)``.

        Under ``torch.compile(optimizer.step)`` the closure and the Hessian run eagerly, in one
        graph break (:meth:`_evaluate_and_differentiate`), and the solves and moves compile. A
        singular system then raises torch's ``LinAlgError`` from the compiled solve: the
        ``except`` that turns it into this class's ``ValueError`` does not catch it there.
        """
        loss, measured = self._evaluate_and_differentiate(closure)
        # All steps first: moving a parameter in place would invalidate the graph the other
        # groups' Hessians are differentiated through.
        planned = []
        for group, params, grads, states, curvature in measured:
            keys = self.hyperparameters(group, ("lr", "damping", "hessian", "stack_dims"))
            planned.append((params, solve_steps(params, grads, states, curvature, **keys)))
        for params, steps in planned:
            for param, step in zip(params, steps, strict=True):
                param.add_(step)
        return loss

    @torch.compiler.disable
    def _evaluate_and_differentiate(self, closure: Callable[[], Any] | None) -> tuple[Any, list]:
        """The closure, then each group's curvature, outside torch.compile: the closure's
        ``backward(create_graph=True)`` and the Hessian's backward passes through its graph are
        autograd calls that dynamo does not trace (``torch._dynamo.config.trace_autograd_ops``
        is off by default: "Unsupported Tensor.backward() call"), and a graph compiled from them
        could not be differentiated twice. Returns the loss and, per group with gradients,
        ``(group, params, detached grads, states, curvature)``."""
        loss = self._evaluate(closure)
        measured = []
        for group in self.param_groups:
            params, grads, states = self._gather(group)
            if params:
                stack_shape(params, group["stack_dims"])
                keys = self.hyperparameters(group, ("hessian", "hutchinson_samples", "stack_dims"))
                curvature = measure_curvature(params, grads, states, **keys)
                measured.append((group, params, [g.detach() for g in grads], states, curvature))
        return loss, measured


SPECS = (
    Spec(
        key="newton",
        title="Newton's method",
        summary="Jump to the minimum of the local quadratic model: the gradient divided by the "
        "curvature, in every direction at once.",
        paper=Paper(
            "Nocedal, J. and Wright, S. J.",
            2006,
            "Numerical Optimization (2nd ed.), section 2.2 and chapter 3.3 (Newton's method; "
            "damping after Levenberg, 1944)",
            "Springer",
        ),
        equations=(
            r"\theta_{t+1} = \theta_t - \frac{f'(\theta_t)}{f''(\theta_t)} \quad \text{(1-D)}",
            r"\theta_{t+1} = \theta_t - \eta \, (H_t + \lambda I)^{-1} \nabla f(\theta_t), "
            r"\quad H_t = \nabla^2 f(\theta_t)",
            r"\theta_{t+1, i} = \theta_{t, i} - \eta \, \frac{\partial_i f(\theta_t)}{H_{t, ii} "
            r"+ \lambda} \quad \text{(diagonal Hessian)}",
            r"\mathrm{diag}(H) \approx \frac{1}{N} \sum_{n=1}^{N} v_n \odot H v_n, \quad "
            r"v_n \in \{-1, 1\}^D \text{ (Hutchinson)}",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr", 1.0, "fraction of the Newton step taken", r"\eta", 0.1, 1.0, "log"
            ),
            Hyperparameter(
                "damping",
                0.0,
                "added to the curvature against tiny or negative eigenvalues",
                r"\lambda",
                scale="choice",
                choices=(0.0, 1e-3, 1e-2, 1e-1, 1.0),
            ),
            Hyperparameter(
                "hessian",
                "exact",
                "full Hessian solve, or a Hutchinson estimate of its diagonal",
                scale="choice",
                choices=HESSIAN_MODES,
            ),
            Hyperparameter("hutchinson_samples", 1, "random probes per diagonal estimate", "N"),
        ),
        state=(
            StateBuffer("step", "steps taken", "t"),
            StateBuffer("hessian_diag", "last Hutchinson estimate of diag(H) (diagonal mode)", "h"),
        ),
        factory=Newton,
        order=2,
        needs_closure=True,
        teaches="dividing by the curvature makes every direction converge at the same pace",
    ),
)
