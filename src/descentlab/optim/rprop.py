"""Rprop: resilient backpropagation, one adaptive step size per coordinate driven by gradient signs.

Every coordinate keeps its own step size. When the gradient keeps its sign the step size grows by
``eta_plus``; when the sign flips, the last step jumped over a minimum and the step size shrinks by
``eta_minus``; the step taken is the step size in the direction of ``-sign(gradient)``, so the size
of the gradient is ignored. Step sizes stay within ``step_sizes = (min, max)``.

Four variants, named as in Igel, C. and Hüsken, M. (2000). Improving the Rprop Learning Algorithm.
Proceedings of the Second International ICSC Symposium on Neural Computation (NC 2000):

* ``"rprop+"``: the original of Riedmiller, M. and Braun, H. (1993). A Direct Adaptive Method for
  Faster Backpropagation Learning: The RPROP Algorithm. IEEE International Conference on Neural
  Networks. Where the sign flips, go back to the previous location (undo the previous step) and
  forget the gradient, so that the next step does not change the step size again.
* ``"rprop-"``: no backtracking; the gradient is remembered as it is.
* ``"irprop-"`` (the default, and what ``torch.optim.Rprop`` implements): no backtracking, but the
  gradient is forgotten where the sign flips, so that coordinate does not move this step.
* ``"irprop+"``: like ``"rprop+"``, but the previous step is undone only if the loss went up
  (``E_t > E_{t-1}``), so the step needs the loss: ``step(closure)``.

State (torch's names first, so a ``torch.optim.Rprop`` state_dict loads into ours): ``step``,
``prev`` (the remembered gradient), ``step_size``; plus ``prev_update`` (the change the last step
made to the parameter) for the ``+`` variants and ``prev_loss`` for ``"irprop+"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer, torch_flags
from ._hyper import Hyper
from ._stack import expand_to
from ._state import advance, step_counter, write_entry
from .spec import Hyperparameter, Paper, Spec, StateBuffer

VARIANTS = ("rprop+", "rprop-", "irprop+", "irprop-")
#: The variants that undo the previous step where the gradient's sign flips.
_BACKTRACKING = ("rprop+", "irprop+")


def _as_dtype(value: Hyper, like: Tensor) -> Hyper:
    # A tensor hyperparameter in the parameter's dtype multiplies exactly like a Python float does,
    # so K stacked runs match K separate runs bit for bit.
    return value.to(dtype=like.dtype) if isinstance(value, Tensor) else value


def _bounds(low: Hyper, high: Hyper, like: Tensor) -> tuple[Hyper, Hyper]:
    """``clamp``'s bounds: both numbers, or both tensors in ``like``'s dtype (torch has no
    clamp of a tensor bound and a number bound), which select the same values."""
    if not isinstance(low, Tensor) and not isinstance(high, Tensor):
        return low, high
    return tuple(
        bound.to(like.dtype)
        if isinstance(bound, Tensor)
        else torch.tensor(bound, dtype=like.dtype, device=like.device)  # 1.2 not via float32
        for bound in (low, high)
    )


def _initial_step_size(param: Tensor, lr: Hyper) -> Tensor:
    if isinstance(lr, Tensor):
        return torch.empty_like(param, memory_format=torch.preserve_format).copy_(lr)
    return torch.full_like(param, lr, memory_format=torch.preserve_format)


def init_state(param: Tensor, *, lr: Hyper, variant: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "step": step_counter(),
        "prev": torch.zeros_like(param, memory_format=torch.preserve_format),
        "step_size": _initial_step_size(param, lr),
    }
    if variant in _BACKTRACKING:
        state["prev_update"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    if variant == "irprop+":
        # Unknown until the first step; NaN compares false, so nothing is undone against it.
        state["prev_loss"] = torch.tensor(float("nan"), device=param.device)
    return state


def _loss_tensor(loss: Any, params: list[Tensor], stack_dims: int) -> Tensor:
    """The loss as a tensor: one value for all runs, or one per run (the stack shape)."""
    if loss is None:
        raise ValueError(
            "Rprop variant 'irprop+' needs the loss: call step(closure) with a closure that "
            "re-evaluates and returns it (or pass loss= to the functional update)"
        )
    loss = torch.as_tensor(loss)
    if loss.requires_grad:  # (a traced step's loss never does: no detach in its graph)
        loss = loss.detach()
    if not loss.is_floating_point():
        loss = loss.to(torch.get_default_dtype())
    stack = params[0].shape[:stack_dims] if stack_dims else torch.Size()
    if loss.dim() > 0 and loss.shape != stack:
        raise ValueError(
            f"loss of shape {tuple(loss.shape)} must be a single number or have the stack shape "
            f"{tuple(stack)} (one loss per run)"
        )
    return loss


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    etas: tuple[Hyper, Hyper],
    step_sizes: tuple[Hyper, Hyper],
    variant: str,
    maximize: bool,
    stack_dims: int = 0,
    loss: Any = None,
) -> None:
    """One Rprop step; ``"irprop-"`` follows torch.optim.Rprop's arithmetic exactly.

    With :math:`p = g_{t-1} g_t` per coordinate (:math:`g_{t-1}` as remembered in ``prev``):

    .. math::
        \\Delta_t = \\operatorname{clip}\\bigl(\\Delta_{t-1}\\cdot
            (\\eta_+ \\text{ if } p > 0,\\ \\eta_- \\text{ if } p < 0,\\ 1 \\text{ else}),
            \\Delta_{\\min}, \\Delta_{\\max}\\bigr)

        \\theta_t = \\theta_{t-1} - \\operatorname{sign}(g_t)\\,\\Delta_t
            \\quad (g_t := 0 \\text{ where } p < 0 \\text{, except in rprop-})

    and in the backtracking variants, where :math:`p < 0` (and, for irprop+, the loss rose):
    :math:`\\theta_t = \\theta_{t-1} - \\Delta\\theta_{t-1}`.

    Like torch, the step size is clipped on every step, so a first step size ``lr`` outside
    ``step_sizes`` is clipped at the first step (the papers clip only when it changes). ``lr`` is
    read once, when a parameter's state is created: later changes (schedulers) have no effect, as
    in torch. ``loss`` (irprop+ only) is one number, or one per run of shape
    ``param.shape[:stack_dims]``. A NaN gradient leaves that coordinate's parameter and step size
    as they were (``torch.sign(NaN)`` is 0: no step) and NaN in ``prev``, so that the next step
    keeps the step size and moves by its own gradient's sign; an infinite gradient where the sign flips leaves NaN in ``prev`` (torch
    writes 0), because the forgetting is a multiplication by 0 rather than a masked write.
    """
    eta_minus, eta_plus = etas
    step_min, step_max = step_sizes
    backtracks = variant in _BACKTRACKING
    current_loss = _loss_tensor(loss, params, stack_dims) if variant == "irprop+" else None
    for param, grad, state in zip(params, grads, states, strict=True):
        advance(state)
        if maximize:
            grad = -grad
        prev, step_size = state["prev"], state["step_size"]
        if not backtracks and torch.compiler.is_compiling():
            _compiled_step(param, grad, prev, step_size, etas, step_sizes, variant)
            continue
        # Selections by sign are written as exact arithmetic on sign(g_{t-1} g_t) in {-1, 0, 1}
        # instead of masks (torch.where and boolean indexing are slow passes on CPU). The buffer of
        # the remembered gradient holds, in turn, the sign, the selector and the new gradient.
        selector = _selector(prev.mul_(grad).sign_(), eta_plus)
        # selector is 1 + X sign(...) with X >= eta_plus - 1 and X >= 1 - eta_minus: clamping it
        # to [eta_minus, eta_plus] gives exactly eta_plus, 1 or eta_minus.
        factor = torch.clamp(selector, *_bounds(eta_minus, eta_plus, prev))
        step_size.mul_(factor).clamp_(*_bounds(step_min, step_max, prev))
        if variant == "rprop-":
            prev.copy_(grad)
        else:
            # keep is 0 where the sign flipped and 1 elsewhere: the gradient there is forgotten.
            keep = prev.clamp_(0, 1)
            flipped = keep == 0 if backtracks else None
            keep.mul_(grad)
        direction = torch.sign(prev, out=factor)
        if not backtracks:
            param.addcmul_(direction, step_size, value=-1)
            continue
        _backtrack(param, state, flipped, direction, step_size, current_loss, maximize)


def _compiled_step(
    param: Tensor,
    grad: Tensor,
    prev: Tensor,
    step_size: Tensor,
    etas: tuple[Hyper, Hyper],
    step_sizes: tuple[Hyper, Hyper],
    variant: str,
) -> None:
    """``update``'s step for rprop- and irprop- as a compiler sees it: the same numbers (NaN and
    infinity included), chosen with ``torch.where`` rather than built from signs.

    Inductor fuses either form into one loop; in that loop the chain of signs, clamps and
    products cost about twice the memory traffic of the step (``benchmarks/fused_split.py
    rprop``), a selection by comparison much less. Eagerly the selections are the slow passes.
    """
    product = prev * grad
    eta_minus, eta_plus = (_as_dtype(eta, prev) for eta in etas)
    # A NaN product selects 1, as torch.sign(NaN) is 0 in the eager form.
    # The scalars as tensors of the parameter's dtype: torch.where of Python numbers would give
    # the default dtype, rounding a float64 run's 1.2 through float32.
    one = torch.ones((), dtype=prev.dtype, device=prev.device)
    eta_plus, eta_minus = (eta * one for eta in (eta_plus, eta_minus))
    factor = torch.where(product > 0, eta_plus, torch.where(product < 0, eta_minus, one))
    step_size.copy_(torch.clamp(step_size * factor, *_bounds(*step_sizes, prev)))
    if variant == "rprop-":
        prev.copy_(grad)
    else:
        # The gradient is forgotten where the sign flipped: 0 * grad, NaN for an infinite one.
        prev.copy_(torch.where(product < 0, grad * 0, grad))
    param.addcmul_(torch.sign(prev), step_size, value=-1)


def _selector(sign: Tensor, eta_plus: Hyper) -> Tensor:
    """``1 + X sign`` in place, with ``X`` large enough for the clamp in :func:`update`."""
    if isinstance(eta_plus, Tensor):
        return sign.mul_(_as_dtype(eta_plus, sign)).add_(1)
    if eta_plus > 2:
        return sign.mul_(eta_plus).add_(1)
    return sign.add_(1)


def _backtrack(
    param: Tensor,
    state: dict[str, Any],
    flipped: Tensor,
    direction: Tensor,
    step_size: Tensor,
    current_loss: Tensor | None,
    maximize: bool,
) -> None:
    """The + variants: undo the previous update where the sign flipped (and the loss rose)."""
    prev_update = state.get("prev_update")
    if prev_update is None:  # switched from a variant that does not keep it
        prev_update = state["prev_update"] = torch.zeros_like(param)
    undo = flipped
    if current_loss is not None:
        current = current_loss.to(param.device)
        previous = state.get("prev_loss")
        if previous is None:
            undo = torch.zeros_like(flipped)
        else:
            went_up = current < previous if maximize else current > previous
            # One loss for all runs is a 0-d tensor, which broadcasts as it is.
            undo = flipped & (went_up if went_up.dim() == 0 else expand_to(went_up, param))
        write_entry(state, "prev_loss", current)
    move = direction.mul_(step_size).neg_()
    # Where the step is undone the forgotten gradient made ``move`` zero: take the previous update
    # back instead (Riedmiller & Braun's "go back to the previous location").
    torch.where(undo, prev_update.neg_(), move, out=prev_update)
    param.add_(prev_update)


class Rprop(Optimizer):
    """Rprop, a drop-in for ``torch.optim.Rprop`` (signature, defaults, float results).

    ``variant`` picks one of Igel & Hüsken's (2000) four forms: ``"irprop-"`` (default, torch's),
    ``"irprop+"`` (needs ``step(closure)``), ``"rprop+"`` (Riedmiller & Braun 1993, with
    backtracking), ``"rprop-"``. Every hyperparameter may be a tensor broadcasting against the
    parameters. See :func:`update` for the arithmetic.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    elementwise = True
    checked_nonnegative = ("lr",)
    checked_flags = ("maximize",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-2,
        etas: tuple[Hyper, Hyper] = (0.5, 1.2),
        step_sizes: tuple[Hyper, Hyper] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        variant: str = "irprop-",
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            etas=tuple(etas) if isinstance(etas, list) else etas,
            step_sizes=tuple(step_sizes) if isinstance(step_sizes, list) else step_sizes,
            maximize=maximize,
            variant=variant,
            **torch_flags("Rprop", foreach, capturable, differentiable, fused),
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        etas = group["etas"]
        if not isinstance(etas, tuple | list) or len(etas) != 2:
            raise TypeError(f"etas must be a tuple (eta_minus, eta_plus), got {etas!r}")
        _hyper.check_range("etas[0]", etas[0], 0.0, 1.0, low_open=True, high_open=True)
        _hyper.check_range("etas[1]", etas[1], 1.0, low_open=True)
        bounds = group["step_sizes"]
        if not isinstance(bounds, tuple | list) or len(bounds) != 2:
            raise TypeError(f"step_sizes must be a tuple (min, max), got {bounds!r}")
        _hyper.check_nonnegative("step_sizes[0]", bounds[0])
        _hyper.check_nonnegative("step_sizes[1]", bounds[1])
        try:
            ordered = bool(torch.all(torch.as_tensor(bounds[0]) <= torch.as_tensor(bounds[1])))
        except RuntimeError:
            ordered = False
        if not ordered:
            raise ValueError(f"Invalid step_sizes: {bounds!r}; it must satisfy 0 <= min <= max")
        _hyper.check_choice("variant", group["variant"], VARIANTS)

    @torch.no_grad()
    def closure_required(self) -> str | None:
        if any(
            self.hyperparameters(group, ("variant",))["variant"] == "irprop+"
            for group in self.param_groups
        ):
            return "variant 'irprop+' undoes a step only if the loss went up"
        return None


_RIEDMILLER = Paper(
    "Riedmiller, M. and Braun, H.",
    1993,
    "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm",
    "IEEE International Conference on Neural Networks",
)
#: Where the four variants are named and compared (the spec cites the original).
VARIANTS_PAPER = Paper(
    "Igel, C. and Hüsken, M.",
    2000,
    "Improving the Rprop Learning Algorithm",
    "Second International ICSC Symposium on Neural Computation (NC 2000)",
)

SPECS = (
    Spec(
        key="rprop",
        title="Rprop (resilient backpropagation)",
        summary="One step size per coordinate that grows while the gradient keeps its sign and "
        "shrinks when it flips; steps use only the gradient's sign, never its size.",
        paper=_RIEDMILLER,
        equations=(
            r"\Delta_{t} = \begin{cases} \min(\eta_+ \Delta_{t-1}, \Delta_{\max}) & "
            r"g_{t-1} g_t > 0 \\ \max(\eta_- \Delta_{t-1}, \Delta_{\min}) & g_{t-1} g_t < 0 "
            r"\\ \Delta_{t-1} & \text{otherwise} \end{cases}",
            r"g_t \leftarrow 0 \quad \text{where } g_{t-1} g_t < 0",
            r"\theta_t = \theta_{t-1} - \operatorname{sign}(g_t)\, \Delta_t",
        ),
        hyperparameters=(
            Hyperparameter(
                "lr", 1e-2, "initial step size of every coordinate", r"\Delta_0", 1e-4, 1e-1, "log"
            ),
            Hyperparameter(
                "eta_minus",
                0.5,
                "factor that shrinks a step size when its gradient's sign flips",
                r"\eta_-",
                0.2,
                0.8,
                "linear",
                argument="etas",
                index=0,
            ),
            Hyperparameter(
                "eta_plus",
                1.2,
                "factor that grows a step size while its gradient keeps its sign",
                r"\eta_+",
                1.05,
                1.5,
                "linear",
                argument="etas",
                index=1,
            ),
            Hyperparameter(
                "step_size_min",
                1e-6,
                "smallest allowed step size",
                r"\Delta_{\min}",
                argument="step_sizes",
                index=0,
            ),
            Hyperparameter(
                "step_size_max",
                50.0,
                "largest allowed step size",
                r"\Delta_{\max}",
                argument="step_sizes",
                index=1,
            ),
            Hyperparameter(
                "variant",
                "irprop-",
                "rprop+ backtracks where the sign flips, irprop+ only if the loss rose; the - "
                "forms never backtrack, the i forms forget the gradient after a flip",
                scale="choice",
                choices=VARIANTS,
            ),
        ),
        state=(
            StateBuffer(
                "prev", "the gradient remembered from the last step (0 after a flip)", "g_{t-1}"
            ),
            StateBuffer("step_size", "per-coordinate step size", r"\Delta"),
            StateBuffer(
                "prev_update", "the last change of the parameter (+ variants)", r"\Delta\theta"
            ),
            StateBuffer("prev_loss", "the loss at the last step (irprop+)", "E_{t-1}"),
        ),
        full_batch=True,
        elementwise=True,
        factory=Rprop,
        teaches="the sign of the gradient is enough when every coordinate adapts its own step",
    ),
)
