"""Prodigy: Adam whose learning rate is estimated on the fly from the distance travelled.

Mishchenko, K. and Defazio, A. (2024). Prodigy: An Expeditiously Adaptive Parameter-Free Learner.
ICML (arXiv:2306.06101, 2023). Prodigy keeps an estimate :math:`d_k` of the distance
:math:`D = \\|x_0 - x_*\\|` from the start to a solution and runs Adam with step size
:math:`\\gamma_k d_k` (``lr`` is a multiplier, 1 by default). The estimate only grows:

.. math::
    r_{k+1} = \\beta_3 r_k + \\gamma_k d_k^2 \\langle g_k, x_0 - x_k \\rangle, \\qquad
    s_{k+1} = \\beta_3 s_k + \\gamma_k d_k^2 g_k

    d_{k+1} = \\max\\Big(d_k,\\; c\\, \\frac{r_{k+1}}{\\|s_{k+1}\\|_1}\\Big)

:math:`\\langle g, x_0 - x\\rangle \\le f(x_0) - f(x)`-type bounds make :math:`r / \\|s\\|_1` a lower
bound on :math:`D` for convex problems, so :math:`d` climbs from the tiny :math:`d_0` to the scale of
a good step size within a few dozen steps. The :math:`(1 - \\beta_3)` factor of the paper's averages
cancels in the ratio and is left out, as in the authors' implementation; like it, ``r`` and ``s``
carry an extra common factor :math:`1/d_0` that also cancels (it keeps them away from underflow).
The step uses :math:`d_k` both as the step size and in :math:`d_k \\epsilon`, as in the paper's
algorithm box (the authors' package uses :math:`d_{k+1}` in the :math:`\\epsilon` term, a
difference of order :math:`\\epsilon`). Weight decay is decoupled, :math:`x \\leftarrow x (1 -
\\lambda \\gamma_k d_k)`, the package's default.

One estimate for all param groups, as in the paper and ``prodigyopt``: ``d`` is a reduction over
every parameter of every group. With ``stack_dims = s`` it is one ``d`` per run, the sums running
over each run's own coordinates; ``d`` and ``r`` (``d_numerator``) are stored, with shape ``S``, in
every parameter's state so that they travel in the ``state_dict``. ``lr``, ``d0``, ``d_coef`` and
``beta3`` enter the estimate and must therefore be per run (tensors of shape ``S + (1, ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from ._stack import as_stack, expand_to, fit, slice_sum, stack_shape
from ._state import advance, step_counter
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate


def per_run(name: str, value: Hyper, param: Tensor, stack_dims: int) -> Tensor:
    """A hyperparameter as one value per run: a tensor of shape ``S`` in the parameter's dtype."""
    own = param.dim() - stack_dims
    stack = param.shape[:stack_dims]
    value = fit(value, param, stack_dims)
    if not isinstance(value, Tensor):
        return torch.full(stack, value, dtype=param.dtype, device=param.device)
    trailing = value.shape[max(0, value.dim() - own) :] if own else ()
    if any(size != 1 for size in trailing):
        raise ValueError(
            f"{name} enters Prodigy's per-run estimate of d, so it must be one value per run "
            f"(shape {tuple(stack) + (1,) * own}), got shape {tuple(value.shape)}"
        )
    return torch.broadcast_to(value, tuple(stack) + (1,) * own).reshape(stack).to(param.dtype)


def _each(value: Hyper, param: Tensor) -> Hyper:
    """A per-run value shaped to broadcast against ``param``; plain numbers stay numbers."""
    return expand_to(value, param) if isinstance(value, Tensor) else value


def init_state(param: Tensor, *, d0: Hyper, stack_dims: int) -> dict[str, Any]:
    zeros = torch.zeros_like(param, memory_format=torch.preserve_format)
    return {
        "step": step_counter(),
        "d": per_run("d0", d0, param, stack_dims),
        "d_numerator": torch.zeros(
            param.shape[:stack_dims], dtype=param.dtype, device=param.device
        ),
        "p0": param.detach().clone(memory_format=torch.preserve_format),
        "s": zeros.clone(),
        "exp_avg": zeros.clone(),
        "exp_avg_sq": zeros,
    }


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    beta3: Hyper | None,
    eps: Hyper,
    weight_decay: Hyper,
    d0: Hyper,
    d_coef: Hyper,
    safeguard_warmup: bool,
    stack_dims: int,
) -> None:
    """One Prodigy step of parameters that share one estimate ``d``: the estimate, then Adam."""
    settings = dict(
        lr=lr,
        betas=betas,
        beta3=beta3,
        eps=eps,
        weight_decay=weight_decay,
        d0=d0,
        d_coef=d_coef,
        safeguard_warmup=safeguard_warmup,
        stack_dims=stack_dims,
    )
    update_groups([(params, grads, states, settings)])


Group = tuple[list[Tensor], list[Tensor], list[dict[str, Any]], dict[str, Any]]


def update_groups(groups: list[Group]) -> None:
    """One Prodigy step over several param groups sharing one estimate ``d`` (per run).

    Each entry is ``(params, grads, states, hyperparameters)`` as :func:`update` takes them. The
    paper's estimate is one number for the whole model, so ``r`` and :math:`\\|s\\|_1` sum over
    every group: the same parameters split into groups step exactly as in one. A group's own
    ``lr`` weights its terms of ``r`` and ``s`` and scales its step (``lr = 0`` freezes a group and
    adds nothing new to the estimate); ``betas``, ``eps`` and ``weight_decay`` are the group's own.
    ``d0``, ``d_coef`` and ``beta3`` define the shared estimate and are taken from the first group
    (the class checks that every group agrees).
    """
    first_params, _, _, first = groups[0]
    # The estimate is carried in every parameter's state; a parameter that missed steps (no
    # gradient) holds an older copy, so read it from the state that has taken the most steps.
    all_states = [state for _, _, states, _ in groups for state in states]
    compiling = torch.compiler.is_compiling()
    if compiling:
        d_latest, numerator_latest = _latest_traced(all_states)
    else:
        latest = max(all_states, key=lambda state: state["step"].item())
        d_latest, numerator_latest = latest["d"], latest["d_numerator"]
    stack_dims = first["stack_dims"]
    beta3 = first["beta3"]
    if beta3 is None:
        beta3 = first["betas"][1] ** 0.5
    numbers = (
        not compiling
        and stack_dims == 0
        and not any(
            isinstance(value, Tensor)
            for *_, settings in groups
            for key in ("lr", "betas", "beta3", "eps", "weight_decay", "d0", "d_coef")
            for value in (settings[key] if key == "betas" else (settings[key],))
        )
    )
    like = first_params[0]
    if numbers:
        # One run, plain-number settings: d and every coefficient as Python numbers, so the
        # passes over the parameters take torch's fused scalar forms (alpha=, value=).
        d0_run, coef_run, beta3_run = first["d0"], first["d_coef"], beta3
        d = d_latest.item()
    else:
        d0_run = per_run("d0", first["d0"], like, stack_dims)
        coef_run = per_run("d_coef", first["d_coef"], like, stack_dims)
        beta3_run = per_run("beta3", beta3, like, stack_dims)
        d = d_latest
    numerator = numerator_latest * beta3_run
    denominator = torch.zeros_like(numerator)
    step_sizes = []
    for params, grads, states, settings in groups:
        lr_run = settings["lr"] if numbers else per_run("lr", settings["lr"], like, stack_dims)
        step_size = d * lr_run  # the step size of this step, gamma_k d_k (per run)
        step_sizes.append(step_size)
        # r and s grow by (d / d0) * gamma d g: the paper's gamma d^2 g over the constant d0.
        growth = (d / d0_run) * (d if settings["safeguard_warmup"] else step_size)
        for param, grad, state in zip(params, grads, states, strict=True):
            beta1, beta2 = fit(settings["betas"], param, stack_dims)
            advance(state)
            moved = slice_sum((state["p0"] - param).mul_(grad), stack_dims)
            numerator = numerator + as_stack(moved, stack_dims) * (d / d0_run) * step_size
            d_each = _each(d, param)
            _hyper.add_(state["exp_avg"].mul_(beta1), grad, d_each * (1 - beta1))
            _hyper.addcmul_(
                state["exp_avg_sq"].mul_(beta2), grad, grad, d_each * d_each * (1 - beta2)
            )
            s = _hyper.add_(state["s"].mul_(_each(beta3_run, param)), grad, _each(growth, param))
            own_dims = list(range(stack_dims, s.dim()))
            s_norm = torch.linalg.vector_norm(s, ord=1, dim=own_dims) if own_dims else s.abs()
            denominator = denominator + s_norm
    # No gradient seen yet (or lr = 0 so far): nothing to estimate from, d stays.
    estimate = coef_run * numerator / torch.where(denominator > 0, denominator, 1.0)
    d_tensor = torch.as_tensor(d, dtype=numerator.dtype)
    new_d = torch.where(denominator > 0, torch.maximum(d_tensor, estimate), d_tensor)
    for (params, _, states, settings), step_size in zip(groups, step_sizes, strict=True):
        for param, state in zip(params, states, strict=True):
            state["d"] = new_d.clone()
            state["d_numerator"] = numerator.clone()
            size = _each(step_size, param)
            weight_decay, eps = fit((settings["weight_decay"], settings["eps"]), param, stack_dims)
            if _hyper.is_nonzero(weight_decay):
                param.mul_(1 - weight_decay * size)
            denom = state["exp_avg_sq"].sqrt().add_(_each(d, param) * eps)
            _hyper.addcdiv_(param, state["exp_avg"], denom, -size)


def _latest_traced(states: list[dict[str, Any]]) -> tuple[Tensor, Tensor]:
    """``d`` and ``d_numerator`` of the state with the most steps, without ``.item()`` (which
    would break a torch.compile graph); eager code picks the state in Python instead."""
    step, d, numerator = states[0]["step"], states[0]["d"], states[0]["d_numerator"]
    for state in states[1:]:
        newer = state["step"] > step
        step = torch.maximum(step, state["step"])
        d = torch.where(newer, state["d"], d)
        numerator = torch.where(newer, state["d_numerator"], numerator)
    return d, numerator


class Prodigy(Optimizer):
    """Prodigy (Mishchenko & Defazio, 2024, ICML): Adam with a learned step size ``d``.

    Leave ``lr = 1``; to ask for larger or smaller steps change ``d_coef``. ``beta3`` (default
    :math:`\\sqrt{\\beta_2}`) is the decay of the estimate's averages, ``d0`` its tiny start, and
    ``safeguard_warmup`` leaves ``lr`` out of the denominator (for warmup schedules). One
    estimate ``d`` serves every param group (per run when stacked): ``optimizer.state[p]["d"]``
    for any parameter ``p``. Groups may differ in ``lr``, ``betas``, ``eps`` and
    ``weight_decay``; ``d0``, ``d_coef`` and ``beta3`` define the shared estimate and must agree.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    #: One step reads the whole group (see ``Optimizer.couples_parameters``).
    couples_parameters = True
    checked_nonnegative = (
        "lr",
        "eps",
        "weight_decay",
    )
    checked_betas = ("betas",)
    checked_flags = ("safeguard_warmup",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1.0,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        beta3: Hyper | None = None,
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        d0: Hyper = 1e-6,
        d_coef: Hyper = 1.0,
        safeguard_warmup: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            beta3=beta3,
            eps=eps,
            weight_decay=weight_decay,
            d0=d0,
            d_coef=d_coef,
            safeguard_warmup=safeguard_warmup,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        if group["beta3"] is not None:
            _hyper.check_range("beta3", group["beta3"], 0.0, 1.0, high_open=True)
        _hyper.check_range("d0", group["d0"], 0.0, low_open=True)
        _hyper.check_range("d_coef", group["d_coef"], 0.0, low_open=True)
        first = self.param_groups[0]
        if first is not group:
            self._check_shares_the_estimate(first, group)

    @staticmethod
    def _check_shares_the_estimate(first: dict[str, Any], group: dict[str, Any]) -> None:
        """Every group feeds one estimate d: its settings and stack shape must agree."""

        def beta3_of(settings: dict[str, Any]) -> Hyper:
            beta3 = settings["beta3"]
            return settings["betas"][1] ** 0.5 if beta3 is None else beta3

        for name, mine, theirs in (
            ("d0", group["d0"], first["d0"]),
            ("d_coef", group["d_coef"], first["d_coef"]),
            ("beta3", beta3_of(group), beta3_of(first)),
        ):
            same = (
                torch.equal(torch.as_tensor(mine), torch.as_tensor(theirs))
                if isinstance(mine, Tensor) or isinstance(theirs, Tensor)
                else mine == theirs
            )
            if not same:
                raise ValueError(
                    f"Invalid {name} in a second param group: Prodigy keeps one estimate d for "
                    f"all groups, so {name} (which defines it) must equal the first group's"
                )
        mine = stack_shape(group["params"], group["stack_dims"])
        theirs = stack_shape(first["params"], first["stack_dims"])
        if mine != theirs:
            raise ValueError(
                f"Prodigy keeps one estimate d per run for all groups, so every group needs the "
                f"same stack shape: this group has {tuple(mine)}, the first {tuple(theirs)}"
            )

    @property
    def steps_by_update(self) -> bool:
        """One ``update`` call steps the optimizer only when it has a single group."""
        return len(self.param_groups) == 1

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of every group, with one estimate ``d`` over all of them."""
        loss = self._evaluate(closure)
        groups = []
        for group in self.param_groups:
            params, grads, states = self._gather(group)
            if params:
                groups.append(
                    (params, grads, states, self.hyperparameters(group, self._update_keys))
                )
        if groups:
            update_groups(groups)
        return loss


SPECS = (
    Spec(
        key="prodigy",
        title="Prodigy",
        summary="Adam with its learning rate estimated on the fly: a lower bound on the distance "
        "to the solution, from how far the gradients have pointed back to the start.",
        paper=Paper(
            "Mishchenko, K. and Defazio, A.",
            2024,
            "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
            "ICML",
            "https://arxiv.org/abs/2306.06101",
        ),
        equations=(
            r"m_{k+1} = \beta_1 m_k + (1 - \beta_1)\, d_k g_k, \quad "
            r"v_{k+1} = \beta_2 v_k + (1 - \beta_2)\, d_k^2 g_k^2",
            r"r_{k+1} = \beta_3 r_k + \gamma_k d_k^2 \langle g_k, x_0 - x_k \rangle, \quad "
            r"s_{k+1} = \beta_3 s_k + \gamma_k d_k^2 g_k",
            r"d_{k+1} = \max\left(d_k,\; c\, \frac{r_{k+1}}{\|s_{k+1}\|_1}\right)",
            r"x_{k+1} = x_k (1 - \lambda \gamma_k d_k) - \gamma_k d_k \, "
            r"\frac{m_{k+1}}{\sqrt{v_{k+1}} + d_k \epsilon}",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr", 1.0, "multiplier of the estimated step size d", r"\gamma", 0.1, 10.0, "log"
            ),
            decay_rate(0, 0.9, "decay of the gradient average m", 0.5, 0.99),
            decay_rate(1, 0.999, "decay of the squared-gradient average v", 0.9, 0.9999),
            Hyperparameter("beta3", None, "decay of r and s (None: sqrt(beta2))", r"\beta_3"),
            Hyperparameter("eps", 1e-8, "added to the denominator, times d", r"\epsilon"),
            Hyperparameter("weight_decay", 0.0, "decoupled decay, scaled by lr d", r"\lambda"),
            Hyperparameter("d0", 1e-6, "initial (under-)estimate of the distance", "d_0"),
            Hyperparameter("d_coef", 1.0, "multiplier of the estimate of d", "c", 0.1, 10.0, "log"),
            Hyperparameter("safeguard_warmup", False, "leave lr out of s (use with lr warmup)"),
        ),
        state=(
            StateBuffer("d", "estimated distance to the solution: the step size (per run)", "d"),
            StateBuffer("d_numerator", "weighted sum of <g, x0 - x> (per run)", "r"),
            StateBuffer("s", "weighted sum of gradients", "s"),
            StateBuffer("p0", "the starting point", "x_0"),
            StateBuffer("exp_avg", "moving average of d g", "m"),
            StateBuffer("exp_avg_sq", "moving average of d^2 g^2", "v"),
        ),
        factory=Prodigy,
        family="modern",
        teaches="the learning rate can be estimated during training from how far the "
        "gradients say the solution is",
    ),
)
