"""Averaged stochastic gradient descent: SGD with a decaying step and a running average of iterates.

Polyak, B. T. and Juditsky, A. B. (1992). Acceleration of Stochastic Approximation by Averaging.
SIAM Journal on Control and Optimization 30(4). The step-size schedule
``eta_t = lr / (1 + lambd * lr * t)^alpha`` and the averaging start ``t0`` follow Xu, W. (2011),
Towards Optimal One Pass Large Scale Learning with Averaged Stochastic Gradient Descent
(arXiv:1107.2490), as implemented in Bottou's sgd code and in ``torch.optim.ASGD``.

The iterate itself is plain SGD with a shrink ``(1 - lambd * eta)`` and a slowly decaying step;
the answer is the average ``ax`` of the iterates from step ``t0`` on (before that ``ax`` tracks the
iterate). Averaging cancels the noise of the late iterates, which is why it reaches the optimal
asymptotic rate with a step that decays more slowly than ``1/t``. Note that the parameters hold
the iterate: copy ``state["ax"]`` into them to evaluate the averaged point.

This is a drop-in for ``torch.optim.ASGD``: same signature, defaults, state keys (``step``,
``eta``, ``mu``, ``ax``) and arithmetic (its single-tensor path, which torch uses on CPU).
torch keeps ``eta`` and ``mu`` as 0-d tensors of its scalar dtype (float32 unless the default
dtype is float64), so the step size is rounded to float32 even for float64 parameters; we do the
same, also when tensor hyperparameters make ``eta`` and ``mu`` hold one value per run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._state import advance, apply_weight_decay, scalar_dtype, step_counter, write_entry
from .spec import Hyperparameter, Paper, Spec, StateBuffer


def init_state(param: Tensor, *, lr: Hyper) -> dict[str, Any]:
    # eta and mu live in torch's scalar dtype, as in torch.optim.ASGD; a tensor lr gives one eta
    # per run, in that same dtype, so that numbers and tensors take identical values.
    return {
        "step": step_counter(),
        "eta": torch.as_tensor(lr, dtype=scalar_dtype()).detach().clone(),
        "mu": torch.ones((), dtype=scalar_dtype()),
        "ax": torch.zeros_like(param, memory_format=torch.preserve_format),
    }


def _store(state: dict[str, Any], key: str, value: Hyper) -> None:
    """Write a new eta or mu in the state's dtype: into the 0-d tensor as torch does, or as a
    new per-run tensor (``write_entry``, which keeps a compiled graph free of new tensors)."""
    if isinstance(value, Tensor):
        write_entry(state, key, value.to(state[key].dtype))
    else:
        state[key].copy_(torch.as_tensor(value))


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    lambd: Hyper,
    alpha: Hyper,
    t0: Hyper,
    weight_decay: Hyper,
    maximize: bool,
) -> None:
    """One ASGD step (torch.optim.ASGD's arithmetic).

    .. math::
        \\theta_t = (1 - \\lambda\\eta_{t-1})\\,\\theta_{t-1} - \\eta_{t-1} g_t,\\quad
        \\bar\\theta_t = \\bar\\theta_{t-1} + \\mu_{t-1}(\\theta_t - \\bar\\theta_{t-1})

        \\eta_t = \\frac{\\gamma}{(1 + \\lambda\\gamma t)^{\\alpha}},\\quad
        \\mu_t = \\frac{1}{\\max(1, t - t_0)}
    """
    numbers_only = not any(
        isinstance(value, Tensor) for value in (lr, lambd, alpha, t0, weight_decay)
    )
    for param, grad, state in zip(params, grads, states, strict=True):
        grad = apply_weight_decay(grad, param, weight_decay, maximize)
        step = advance(state)
        eta, mu, ax = state["eta"], state["mu"], state["ax"]

        if numbers_only and eta.dim() == 0 and not torch.compiler.is_compiling():
            eta_value = eta.item()  # torch steps with Python numbers read from the state
            param.mul_(1 - lambd * eta_value)
            param.add_(grad, alpha=-eta_value)
        else:
            # A float64 parameter's shrink in float64, as the number path computes it in Python.
            eta = eta.to(torch.promote_types(eta.dtype, param.dtype))
            param.mul_(1 - lambd * eta)
            _hyper.sub_(param, grad, eta)

        if mu.dim() == 0 and not torch.compiler.is_compiling():
            if mu.item() != 1:
                ax.add_(param.sub(ax).mul_(mu))
            else:
                ax.copy_(param)  # before t0: the average is the iterate itself
        else:
            ax.copy_(torch.where(mu == 1, param, ax + (param - ax) * mu))

        _store(state, "eta", lr / ((1 + lambd * lr * step) ** alpha))
        if isinstance(t0, Tensor) or isinstance(step, Tensor):
            _store(state, "mu", 1 / torch.clamp(step - t0, min=1))
        else:
            _store(state, "mu", 1 / max(1, step - t0))


class ASGD(Optimizer):
    """Averaged SGD, a drop-in for ``torch.optim.ASGD`` (signature, defaults, state, numerics).

    Polyak, B. T. and Juditsky, A. B. (1992). Acceleration of Stochastic Approximation by
    Averaging. SIAM J. Control Optim. 30(4). The average is ``state["ax"]``; the parameters hold
    the SGD iterate. Every hyperparameter may be a tensor broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = (
        "lr",
        "lambd",
        "alpha",
        "weight_decay",
    )
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        lambd: Hyper = 1e-4,
        alpha: Hyper = 0.75,
        t0: Hyper = 1e6,
        weight_decay: Hyper = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        *,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lambd=lambd,
            alpha=alpha,
            t0=t0,
            weight_decay=weight_decay,
            maximize=maximize,
            **torch_flags("ASGD", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim casts every floating state tensor but ``step`` to the parameter's dtype on
        load, which would turn a float32 ``eta``/``mu`` into float64 and make a resumed run part
        from the uninterrupted one; keep the dtypes they were saved with."""
        saved_ids = [index for group in state_dict["param_groups"] for index in group["params"]]
        saved_state = state_dict["state"]
        dtypes = [
            {key: saved_state[i][key].dtype for key in ("eta", "mu") if key in saved_state[i]}
            if i in saved_state
            else {}
            for i in saved_ids
        ]
        super().load_state_dict(state_dict)
        params = [param for group in self.param_groups for param in group["params"]]
        for param, kept in zip(params, dtypes, strict=True):
            for key, dtype in kept.items():
                self.state[param][key] = self.state[param][key].to(dtype)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_number("t0", group["t0"])


SPECS = (
    Spec(
        key="asgd",
        title="Averaged SGD (ASGD)",
        summary="SGD with a slowly decaying step whose answer is the running average of its "
        "iterates from step t0 on: averaging cancels the noise that a constant step leaves.",
        paper=Paper(
            "Polyak, B. T. and Juditsky, A. B.",
            1992,
            "Acceleration of Stochastic Approximation by Averaging",
            "SIAM Journal on Control and Optimization 30(4)",
        ),
        equations=(
            r"\theta_t = (1 - \lambda \eta_{t-1})\, \theta_{t-1} - \eta_{t-1}\, g_t",
            r"\bar\theta_t = \bar\theta_{t-1} + \mu_{t-1} (\theta_t - \bar\theta_{t-1})",
            r"\eta_t = \frac{\gamma}{(1 + \lambda \gamma t)^{\alpha}}, \quad "
            r"\mu_t = \frac{1}{\max(1, t - t_0)}",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-2, "initial step size", r"\gamma", 1e-4, 1.0, "log"),
            Hyperparameter(
                "lambd",
                1e-4,
                "decay term: shrinks the weights and sets how fast the step decays",
                r"\lambda",
                1e-6,
                1e-2,
                "log",
            ),
            Hyperparameter(
                "alpha",
                0.75,
                "power of the step-size decay (1: eta ~ 1/t)",
                r"\alpha",
                0.5,
                1.0,
                "linear",
            ),
            Hyperparameter(
                "t0",
                1e6,
                "step from which the iterates are averaged",
                "t_0",
                1.0,
                1e6,
                "log",
            ),
            Hyperparameter(
                "weight_decay", 0.0, "coupled L2 penalty added to the gradient", r"\lambda_2"
            ),
        ),
        state=(
            StateBuffer("eta", "current step size", r"\eta"),
            StateBuffer("mu", "weight of the newest iterate in the average", r"\mu"),
            StateBuffer("ax", "running average of the iterates (the answer)", r"\bar\theta"),
        ),
        elementwise=True,
        factory=ASGD,
        family="modern",
        teaches="averaging the iterates of noisy SGD cancels the noise that a constant step "
        "leaves behind",
    ),
)
