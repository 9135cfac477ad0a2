"""Schedule-Free SGD and AdamW: no learning-rate schedule, an average of the iterates instead.

Defazio, A., Yang, X. A., Mehta, H., Mishchenko, K., Khaled, A. and Cutkosky, A. (2024). The Road
Less Scheduled. NeurIPS. Three sequences share one gradient per step (Algorithm 1):

.. math::
    y_t = (1 - \\beta) z_t + \\beta x_t, \\qquad g_t = \\nabla f(y_t)

    z_{t+1} = z_t - \\gamma_t\\, \\tilde g_t, \\qquad
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \\qquad
    c_{t+1} = \\frac{t^r \\gamma_{\\max,t}^{p}}{\\sum_{i \\le t} i^r \\gamma_{\\max,i}^{p}}

``z`` takes plain (SGD) or Adam-normalized steps, ``x`` is their weighted average (what a schedule
would otherwise achieve) and the gradient is taken at ``y``, between the two. Weight decay is taken
at ``y``: :math:`\\tilde g_t = g_t / (\\sqrt{v_t} + \\epsilon) + \\lambda y_t` (AdamW) or
:math:`g_t + \\lambda y_t` (SGD). AdamW's step size :math:`\\gamma_t = \\gamma \\sqrt{1-\\beta_2^t}
\\min(1, t / T_{warmup})` folds in Adam's second-moment bias correction and a linear warmup.

The parameters hold ``y`` during training; only ``z`` (and AdamW's ``v``) are stored, and
:math:`x = (y - (1 - \\beta) z) / \\beta` is recovered exactly, as in the authors' implementation,
whose arithmetic this follows (``adamw_schedulefree_paper.py`` and ``sgd_schedulefree.py``).

**Evaluate at x.** ``optimizer.eval()`` moves the parameters to the averaged point ``x`` and
``optimizer.train()`` moves them back to ``y``; ``step`` refuses to run in eval mode. Any loss or
accuracy that is reported (a test set, the lab's recorded paths, the arena's scores) must be measured
in eval mode: ``y`` is where gradients are taken, ``x`` is the answer. :func:`averaged_point`
computes ``x`` without touching the parameters.

Stacked runs: all quantities are elementwise or per-run scalars (the step count, the largest step
size so far and the sum of weights), so per-run tensor hyperparameters work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, speed_flags
from ._hyper import Hyper
from ._state import advance, count, step_counter, write_entry
from ._tensor_list import TensorList
from .spec import Hyperparameter, Paper, Spec, StateBuffer, decay_rate

_PAPER = Paper(
    "Defazio, A., Yang, X. A., Mehta, H., Mishchenko, K., Khaled, A. and Cutkosky, A.",
    2024,
    "The Road Less Scheduled",
    "NeurIPS",
)


def _init(param: Tensor, adam: bool) -> dict[str, Any]:
    state: dict[str, Any] = {
        "step": step_counter(),
        "z": param.detach().clone(memory_format=torch.preserve_format),
        # -1 and 0 as in the reference: the first step's weight is then lr_1^p / lr_1^p = 1.
        "lr_max": -1.0,
        "weight_sum": 0.0,
    }
    if adam:
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def init_state_sgd(param: Tensor) -> dict[str, Any]:
    return _init(param, adam=False)


def init_state_adamw(param: Tensor) -> dict[str, Any]:
    return _init(param, adam=True)


def _in_dtype(value: Hyper, like: Tensor) -> Hyper:
    # The step's averaging weight, in the parameter's dtype (lerp_ takes a weight of its own).
    return value.to(like.dtype) if isinstance(value, Tensor) else value


def _bookkeeping_dtype(like: Tensor) -> torch.dtype:
    """The dtype of ``lr_max`` and ``weight_sum`` as tensors: the parameter's, at least float32.
    A sum of weights kept in bfloat16 (8 significant bits) stops growing once a step's weight is
    under half its last digit, which skews the average within a few hundred steps; the step's
    averaging weight itself is then rounded to the parameter's dtype (``_in_dtype``)."""
    return torch.promote_types(like.dtype, torch.float32)


def _kept(value: Hyper, like: Tensor) -> Hyper:
    """A bookkeeping value as the state keeps it (see :func:`_bookkeeping_dtype`)."""
    return value.to(_bookkeeping_dtype(like)) if isinstance(value, Tensor) else value


def _one(value: Any) -> Any:
    """A bookkeeping entry as one value. On the foreach path, once torch.compile has made it a
    0-d tensor, it reads as the list of its bucket's entries, which all hold one value (buckets
    are formed by equal 0-d entries, ``_multi_tensor._bucket_key``): the first stands for all."""
    return value.tensors[0] if isinstance(value, TensorList) else value


def averaging_weight(state: dict[str, Any], lr: Hyper, r: Hyper, weight_lr_power: Hyper, like):
    """:math:`c_{t+1}`, the weight of the new ``z`` in the running average ``x``; updates ``state``.

    ``lr`` is this step's (warmed-up) step size. Weights grow as :math:`t^r \\gamma_{\\max}^p`, so
    steps taken during warmup count less than later ones.
    """
    step = count(state["step"])
    previous = _one(state["lr_max"])
    if isinstance(lr, Tensor) or isinstance(previous, Tensor):
        dtype = _bookkeeping_dtype(like)
        lr_max = torch.maximum(
            torch.as_tensor(lr, dtype=dtype), torch.as_tensor(previous, dtype=dtype)
        )
    else:
        lr_max = max(lr, previous)
    weight = (step**r) * (lr_max**weight_lr_power)
    weight_sum = _one(state["weight_sum"]) + weight
    write_entry(state, "lr_max", _kept(lr_max, like))
    write_entry(state, "weight_sum", _kept(weight_sum, like))
    if isinstance(weight_sum, Tensor):
        # A zero sum (lr = 0 so far) means nothing to average yet: weight 0, as the reference.
        safe = torch.where(weight_sum > 0, weight_sum, torch.ones_like(weight_sum))
        return _in_dtype(torch.where(weight_sum > 0, weight / safe, 0.0), like)
    return weight / weight_sum if weight_sum != 0 else 0.0


def warmup_factor(step: float | Tensor, warmup_steps: int) -> float | Tensor:
    """:math:`\\min(1, t / T_{warmup})` for the t-th step (t counts from 1)."""
    if warmup_steps == 0:
        # Under torch.compile a Python 1.0 keeps the scheduled lr a Python number, which the
        # compiled graph then holds as a constant: a scheduler's later lr was not seen.
        if isinstance(step, Tensor) and torch.compiler.is_compiling():
            return torch.ones_like(step)
        return 1.0
    if isinstance(step, Tensor):
        return torch.clamp(step / warmup_steps, max=1.0)
    return step / warmup_steps if step <= warmup_steps else 1.0


def _move(y: Tensor, z: Tensor, direction: Tensor, lr: Hyper, beta: Hyper, ckp1: Hyper) -> None:
    """Advance ``y`` and ``z`` in place without forming ``x`` (the reference's two-line form).

    With :math:`z' = z - \\gamma d` and :math:`x' = (1-c) x + c z'`, the new
    :math:`y' = (1-\\beta) z' + \\beta x'` equals :math:`\\mathrm{lerp}(y, z, c) + \\gamma(\\beta(1-c) - 1) d`.
    """
    y.lerp_(z, ckp1)
    _hyper.add_(y, direction, lr * (beta * (1 - ckp1) - 1))
    _hyper.add_(z, direction, -lr)


def update_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    betas: tuple[Hyper, Hyper],
    eps: Hyper,
    weight_decay: Hyper,
    warmup_steps: int,
    r: Hyper,
    weight_lr_power: Hyper,
) -> None:
    """One Schedule-Free AdamW step (Defazio et al., 2024, Algorithm 1); parameters hold ``y``."""
    beta1, beta2 = betas
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        scheduled_lr = lr * warmup_factor(step, warmup_steps) * (1 - beta2**step) ** 0.5
        ckp1 = averaging_weight(state, scheduled_lr, r, weight_lr_power, param)
        exp_avg_sq = state["exp_avg_sq"]
        _hyper.addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)
        direction = grad / exp_avg_sq.sqrt().add_(eps)
        if decay:
            _hyper.add_(direction, param, weight_decay)
        _move(param, state["z"], direction, scheduled_lr, beta1, ckp1)


def update_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    momentum: Hyper,
    weight_decay: Hyper,
    warmup_steps: int,
    r: Hyper,
    weight_lr_power: Hyper,
) -> None:
    """One Schedule-Free SGD step (Defazio et al., 2024); parameters hold ``y``."""
    decay = _hyper.is_nonzero(weight_decay)
    for param, grad, state in zip(params, grads, states, strict=True):
        step = advance(state)
        scheduled_lr = lr * warmup_factor(step, warmup_steps)
        ckp1 = averaging_weight(state, scheduled_lr, r, weight_lr_power, param)
        direction = _hyper.add(grad, param, weight_decay) if decay else grad
        _move(param, state["z"], direction, scheduled_lr, momentum, ckp1)


def averaged_point(param: Tensor, state: dict[str, Any], beta: Hyper) -> Tensor:
    """``x`` from ``y`` (the parameter in train mode) and ``z``: :math:`x = y + (1 - 1/\\beta)(z - y)`."""
    if "z" not in state:
        return param.detach().clone()
    return param.detach().lerp(state["z"], 1 - 1 / beta)


class _ScheduleFree(Optimizer):
    """The train/eval switch shared by both Schedule-Free optimizers."""

    elementwise = True

    def _beta(self, group: dict[str, Any]) -> Hyper:
        raise NotImplementedError

    def evaluation_point(self, param: Tensor) -> Tensor:
        """The averaged point ``x`` of ``param``, without switching modes (for the lab's records)."""
        group = next(g for g in self.param_groups if any(p is param for p in g["params"]))
        return averaged_point(param, self.state[param], self._beta(group))

    @torch.no_grad()
    def eval(self) -> None:
        """Move the parameters to the averaged point ``x``: evaluate and report there."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta = self._beta(group)
                for param in group["params"]:
                    state = self.state[param]
                    if "z" in state:
                        param.lerp_(state["z"], 1 - 1 / beta)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Move the parameters back to the gradient point ``y`` before training resumes."""
        for group in self.param_groups:
            if not group["train_mode"]:
                beta = self._beta(group)
                for param in group["params"]:
                    state = self.state[param]
                    if "z" in state:
                        param.lerp_(state["z"], 1 - beta)
                group["train_mode"] = True

    @property
    def training(self) -> bool:
        """True while the parameters hold ``y`` (train mode)."""
        return all(group["train_mode"] for group in self.param_groups)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        if not self.training:
            raise RuntimeError(
                f"{type(self).__name__}.step called in eval mode: call optimizer.train() before "
                "training and optimizer.eval() before evaluating"
            )
        return super().step(closure)

    def _check_common(self, group: dict[str, Any]) -> None:
        _hyper.check_nonnegative("lr", group["lr"])
        _hyper.check_nonnegative("weight_decay", group["weight_decay"])
        steps = group["warmup_steps"]
        _hyper.check_integer("warmup_steps", steps, 0)
        _hyper.check_nonnegative("r", group["r"])
        _hyper.check_nonnegative("weight_lr_power", group["weight_lr_power"])
        _hyper.check_flag("train_mode", group["train_mode"])


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al., 2024, The Road Less Scheduled, NeurIPS).

    Use a constant learning rate (``warmup_steps`` gives a linear warmup); call ``.eval()`` before
    evaluating or saving a model and ``.train()`` before training again. Starts in train mode.
    ``betas[0]`` is the interpolation :math:`\\beta` between ``z`` and ``x`` (it must lie in (0, 1)),
    ``betas[1]`` Adam's second-moment decay. Hyperparameters may be tensors broadcasting against
    the parameters.
    """

    init_state = staticmethod(init_state_adamw)
    update = staticmethod(update_adamw)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 0.0025,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        warmup_steps: int = 0,
        r: Hyper = 0.0,
        weight_lr_power: Hyper = 2.0,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            train_mode=True,
            **speed_flags(type(self).__name__, foreach, fused),
        )
        super().__init__(params, defaults)

    def _beta(self, group: dict[str, Any]) -> Hyper:
        return group["betas"][0]

    checked_nonnegative = ("eps",)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        self._check_common(group)
        betas = group["betas"]
        _hyper.check_betas("betas", betas)
        # x is recovered as (y - (1 - beta1) z) / beta1, so beta1 = 0 would lose it.
        _hyper.check_range("betas[0]", betas[0], 0.0, 1.0, low_open=True, high_open=True)


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (Defazio et al., 2024, The Road Less Scheduled, NeurIPS).

    ``momentum`` is the interpolation :math:`\\beta` between ``z`` and ``x``, in (0, 1). The
    default ``lr = 0.1`` is descentlab's (the authors' package uses 1.0, which diverges on the
    lab's quartic landscapes). Call ``.eval()`` before evaluating, ``.train()`` before training.
    Starts in train mode.
    """

    init_state = staticmethod(init_state_sgd)
    update = staticmethod(update_sgd)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 0.1,
        momentum: Hyper = 0.9,
        weight_decay: Hyper = 0.0,
        warmup_steps: int = 0,
        r: Hyper = 0.0,
        weight_lr_power: Hyper = 2.0,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            train_mode=True,
            **speed_flags(type(self).__name__, foreach, fused),
        )
        super().__init__(params, defaults)

    def _beta(self, group: dict[str, Any]) -> Hyper:
        return group["momentum"]

    def check_group(self, group: dict[str, Any]) -> None:
        self._check_common(group)
        _hyper.check_range("momentum", group["momentum"], 0.0, 1.0, low_open=True, high_open=True)


_SHARED_HYPERPARAMETERS = (
    Hyperparameter(
        "weight_decay", 0.0, "decay towards 0, taken at the gradient point y", r"\lambda"
    ),
    Hyperparameter(
        "warmup_steps", 0, "steps of linear learning-rate warmup", r"T_{\mathrm{warmup}}"
    ),
    Hyperparameter("r", 0.0, "power of t in the averaging weights (0: weights by step size)", "r"),
    Hyperparameter(
        "weight_lr_power", 2.0, "power of the largest step size so far in the weights", "p"
    ),
)
_SHARED_EQUATIONS = (
    r"c_{t+1} = \frac{t^r \gamma_{\max,t}^{\,p}}{\sum_{i=1}^{t} i^r \gamma_{\max,i}^{\,p}}",
    r"x_{t+1} = (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}",
    r"y_{t+1} = (1 - \beta)\, z_{t+1} + \beta\, x_{t+1} \quad \text{(evaluate at } x\text{)}",
)
# The scalars lr_max and weight_sum (numbers, or per-run tensors) are kept in the state too.
_SHARED_STATE = (StateBuffer("z", "the base sequence that takes the gradient steps", "z"),)

SPECS = (
    Spec(
        key="schedulefree_adamw",
        title="Schedule-Free AdamW",
        summary="Adam-normalized steps on one sequence, an online average of it as the answer, "
        "and gradients taken in between: the benefit of a decaying schedule without one.",
        paper=_PAPER,
        equations=(
            r"y_t = (1 - \beta_1)\, z_t + \beta_1 x_t, \quad g_t = \nabla f(y_t)",
            r"v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \quad "
            r"\gamma_t = \gamma \sqrt{1 - \beta_2^t} \min(1, t / T_{\mathrm{warmup}})",
            r"z_{t+1} = z_t - \gamma_t \left(\frac{g_t}{\sqrt{v_t} + \epsilon} + \lambda y_t\right)",
            *_SHARED_EQUATIONS,
        ),
        hyperparameters=(
            Hyperparameter("lr", 0.0025, "step size of z", r"\gamma", 1e-4, 1e-1, "log"),
            decay_rate(
                0,
                0.9,
                "interpolation between z and the average x where the gradient is taken",
                0.5,
                0.98,
            ),
            decay_rate(1, 0.999, "decay of the squared-gradient average v", 0.9, 0.9999),
            Hyperparameter("eps", 1e-8, "added to the denominator", r"\epsilon"),
            *_SHARED_HYPERPARAMETERS,
        ),
        state=(
            *_SHARED_STATE,
            StateBuffer("exp_avg_sq", "moving average of the squared gradient", "v"),
        ),
        factory=ScheduleFreeAdamW,
        family="modern",
        teaches="averaging the iterates does the work of a learning-rate schedule, so the "
        "training length need not be known in advance",
    ),
    Spec(
        key="schedulefree_sgd",
        title="Schedule-Free SGD",
        summary="Gradient steps on one sequence, an online average of it as the answer, and "
        "gradients taken in between: momentum and a schedule's benefit without a schedule.",
        paper=_PAPER,
        equations=(
            r"y_t = (1 - \beta)\, z_t + \beta x_t, \quad g_t = \nabla f(y_t)",
            r"\gamma_t = \gamma \min(1, t / T_{\mathrm{warmup}})",
            r"z_{t+1} = z_t - \gamma_t\, (g_t + \lambda y_t)",
            *_SHARED_EQUATIONS,
        ),
        hyperparameters=(
            Hyperparameter("lr", 0.1, "step size of z", r"\gamma", 1e-3, 10.0, "log"),
            Hyperparameter(
                "momentum",
                0.9,
                "interpolation between z and the average x where the gradient is taken",
                r"\beta",
                0.5,
                0.98,
                "log1m",
            ),
            *_SHARED_HYPERPARAMETERS,
        ),
        state=_SHARED_STATE,
        factory=ScheduleFreeSGD,
        family="modern",
        teaches="averaging the iterates does the work of a learning-rate schedule, so the "
        "training length need not be known in advance",
    ),
)
