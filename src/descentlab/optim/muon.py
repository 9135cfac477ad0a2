"""Muon: momentum whose update matrix is orthogonalized by a Newton-Schulz iteration.

Jordan, K., Jin, Y., Boza, V., You, J., Cesista, F., Newhouse, L. and Bernstein, J. (2024).
Muon: An optimizer for hidden layers in neural networks. Blog post,
https://kellerjordan.github.io/posts/muon/. The shape-dependent learning-rate adjustment
``match_rms_adamw`` is from Liu, J. et al. (2025), Muon is Scalable for LLM Training, arXiv:2502.16982.

For a weight matrix :math:`W` with gradient :math:`G`, Muon keeps a momentum :math:`B` and steps along
:math:`O \\approx U V^\\top`, the orthogonal factor of :math:`B = U S V^\\top`: every singular direction of
the update gets the same size, so rare directions are not drowned by the dominant ones. :math:`O` is
computed without an SVD by a few steps of the quintic iteration
:math:`X \\leftarrow a X + (b A + c A^2) X` with :math:`A = X X^\\top`, whose coefficients push every
singular value of the (Frobenius-normalized) :math:`X` towards 1 (to roughly [0.7, 1.2], by design).

The arithmetic is torch.optim.Muon's: momentum as ``lerp``, Nesterov as ``grad.lerp(buf, momentum)``,
the iteration in bfloat16 (``ns_dtype``), decoupled weight decay ``W <- W (1 - lr wd)``, then
``W <- W - lr * sqrt(max(1, rows / cols)) * O``. Stacked runs (``stack_dims = s``): a parameter of shape
``S + (m, n)`` holds one ``m x n`` matrix per run, and all of them are orthogonalized at once by batched
matrix products, one iteration for the whole stack; the Frobenius normalization is per matrix.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import _hyper
from ._base import Optimizer
from ._hyper import Hyper
from .spec import Hyperparameter, Paper, Spec, StateBuffer

#: Keller Jordan's quintic coefficients and normalization floor (torch.optim.Muon's defaults).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_EPS = 1e-7
NS_STEPS = 5
ADJUST_LR_FUNCTIONS = (None, "original", "match_rms_adamw")


def init_state(param: Tensor) -> dict[str, Any]:
    return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}


def orthogonalize(
    matrices: Tensor,
    coefficients: tuple[float, float, float],
    steps: int,
    eps: float,
    dtype: torch.dtype | None,
) -> Tensor:
    """The Newton-Schulz approximation of the orthogonal factor of each trailing ``m x n`` matrix.

    ``matrices`` has shape ``S + (m, n)``; all ``prod(S)`` matrices go through one batched
    iteration. The work happens in ``dtype`` (bfloat16 as in torch; ``None`` keeps the input's),
    and the result is returned in that dtype, as torch does. Wide form: a tall matrix is transposed
    first so that the Gram matrix :math:`X X^\\top` is the smaller of the two.
    """
    a, b, c = coefficients
    rows, cols = matrices.shape[-2:]
    x = matrices.reshape(-1, rows, cols)
    x = x.to(dtype) if dtype is not None else x.clone()
    tall = rows > cols
    if tall:
        x = x.mT
    # Frobenius norm >= spectral norm, so dividing by it puts every singular value in [0, 1].
    x = x.div(torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True).clamp(min=eps))
    if x.shape[0] == 1:
        # A single matrix takes torch's 2-D kernels (addmm): batched and unbatched bfloat16
        # products round differently now and then, and one run must equal torch.optim.Muon.
        x = x[0]
        for _ in range(steps):
            gram = x @ x.T
            polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.addmm(x, polynomial, x, beta=a)
        x = x.unsqueeze(0)
    else:
        for _ in range(steps):
            gram = x @ x.mT
            polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.baddbmm(x, polynomial, x, beta=a)
    if tall:
        x = x.mT
    return x.reshape(matrices.shape)


def lr_ratio(adjust_lr_fn: str | None, rows: int, cols: int) -> float:
    """The shape factor that gives the orthogonalized update a consistent size (torch's rule)."""
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols))  # "match_rms_adamw" (Liu et al., 2025)


def check_matrix(param: Tensor, stack_dims: int, index: int) -> None:
    if param.dim() - stack_dims != 2:
        raise ValueError(
            f"Muon only supports 2-D parameters (one matrix per run): parameter {index} has shape "
            f"{tuple(param.shape)} with stack_dims={stack_dims}; optimize biases and other "
            "non-matrix parameters with AdamW"
        )


def update(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: Hyper,
    weight_decay: Hyper,
    momentum: Hyper,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    eps: float,
    ns_steps: int,
    adjust_lr_fn: str | None,
    ns_dtype: torch.dtype | None,
    stack_dims: int,
) -> None:
    """One Muon step (torch.optim.Muon's arithmetic), batched over the stack.

    .. math::
        B_t = \\mu B_{t-1} + (1 - \\mu) G_t,\\quad
        \\tilde B_t = (1 - \\mu) G_t + \\mu B_t \\text{ (Nesterov) or } B_t,\\quad
        O_t = \\mathrm{NS}_k(\\tilde B_t)

        W_t = W_{t-1} (1 - \\eta \\lambda) - \\eta \\sqrt{\\max(1, m/n)}\\, O_t
    """
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        check_matrix(param, stack_dims, index)
        buffer = state["momentum_buffer"]
        buffer.lerp_(grad, 1 - momentum)
        direction = grad.lerp(buffer, momentum) if nesterov else buffer
        orthogonal = orthogonalize(direction, ns_coefficients, ns_steps, eps, ns_dtype)
        rows, cols = param.shape[stack_dims:]
        ratio = lr_ratio(adjust_lr_fn, rows, cols)
        param.mul_(1 - lr * weight_decay)
        if isinstance(lr, Tensor):
            # In the parameter's dtype: a 0-d lr would otherwise leave the product in bfloat16.
            param.sub_(orthogonal.to(param.dtype) * (lr * ratio))
        else:
            param.add_(orthogonal, alpha=-(lr * ratio))


class Muon(Optimizer):
    """Muon, a drop-in for ``torch.optim.Muon`` (signature, defaults and float results).

    Jordan, K. et al. (2024). Muon: An optimizer for hidden layers in neural networks.
    For 2-D weights only (one matrix per run when stacked): give biases, embeddings and the
    output layer to AdamW, as the authors recommend. ``ns_dtype`` (descentlab's addition, keyword
    only) is the dtype of the Newton-Schulz iteration: bfloat16 as in torch, or ``None`` for the
    parameter's own dtype (exact float64 orthogonalization for references and landscapes).
    ``lr``, ``weight_decay`` and ``momentum`` may be tensors broadcasting against the parameters.
    """

    init_state = staticmethod(init_state)
    update = staticmethod(update)
    checked_nonnegative = (
        "lr",
        "weight_decay",
        "eps",
    )
    checked_flags = ("nesterov",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        weight_decay: Hyper = 0.1,
        momentum: Hyper = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = NS_EPS,
        ns_steps: int = NS_STEPS,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: torch.dtype | None = torch.bfloat16,
    ) -> None:
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients)
            if isinstance(ns_coefficients, list)
            else ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            ns_dtype=ns_dtype,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        _hyper.check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        coefficients = group["ns_coefficients"]
        if not isinstance(coefficients, tuple) or len(coefficients) != 3:
            raise TypeError(f"ns_coefficients must be a tuple of 3 numbers, got {coefficients!r}")
        for position, value in enumerate(coefficients):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"ns_coefficients[{position}] must be a number, got {value!r}")
        if isinstance(group["eps"], bool) or not isinstance(group["eps"], int | float):
            raise TypeError(f"eps must be a number, got {type(group['eps']).__name__}")
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 100:
            raise ValueError(f"Invalid ns_steps: {steps!r}; it must be an integer in [0, 100)")
        _hyper.check_choice("adjust_lr_fn", group["adjust_lr_fn"], ADJUST_LR_FUNCTIONS)
        dtype = group["ns_dtype"]
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"ns_dtype must be None or a floating-point torch.dtype, got {dtype!r}")
        for index, param in enumerate(group["params"]):
            check_matrix(param, group["stack_dims"], index)


SPECS = (
    Spec(
        key="muon",
        matrices_only=True,
        title="Muon",
        summary="Momentum on weight matrices whose update is orthogonalized: every singular "
        "direction moves by the same amount, computed by a few Newton-Schulz iterations.",
        paper=Paper(
            "Jordan, K., Jin, Y., Boza, V., You, J., Cesista, F., Newhouse, L. and Bernstein, J.",
            2024,
            "Muon: An optimizer for hidden layers in neural networks",
            "blog post",
            "https://kellerjordan.github.io/posts/muon/",
        ),
        equations=(
            r"B_t = \mu B_{t-1} + (1 - \mu)\, G_t",
            r"\tilde B_t = (1 - \mu)\, G_t + \mu B_t \quad \text{(Nesterov)}",
            r"X_0 = \tilde B_t / \|\tilde B_t\|_F, \quad "
            r"X_{j+1} = a X_j + (b A_j + c A_j^2) X_j, \quad A_j = X_j X_j^\top",
            r"O_t = X_k \approx U V^\top \quad (\tilde B_t = U S V^\top)",
            r"W_t = W_{t-1} (1 - \eta \lambda) - \eta \sqrt{\max(1, m/n)}\; O_t",
        ),
        hyperparameters=(
            Hyperparameter("lr", 1e-3, "step size", r"\eta", 1e-4, 1e-1, "log"),
            Hyperparameter(
                "weight_decay",
                0.1,
                "decoupled decay of the weights, scaled by lr",
                r"\lambda",
                1e-3,
                0.3,
                "log",
            ),
            Hyperparameter(
                "momentum", 0.95, "decay of the momentum matrix B", r"\mu", 0.8, 0.99, "log1m"
            ),
            Hyperparameter("nesterov", True, "Nesterov look-ahead on the momentum"),
            Hyperparameter(
                "ns_coefficients",
                NS_COEFFICIENTS,
                "coefficients (a, b, c) of the quintic Newton-Schulz polynomial",
                "(a, b, c)",
            ),
            Hyperparameter("eps", NS_EPS, "floor of the Frobenius norm before normalizing"),
            Hyperparameter("ns_steps", NS_STEPS, "Newton-Schulz iterations per step", "k"),
        ),
        state=(StateBuffer("momentum_buffer", "momentum matrix of the gradient", "B"),),
        factory=Muon,
        family="modern",
        teaches="orthogonalizing a matrix update equalizes its singular values, so no single "
        "direction dominates the step",
    ),
)
