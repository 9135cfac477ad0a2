"""The fused (``fused=True``) path: one kernel per step for a whole param group.

Two sources of kernels, chosen per group:

* torch's own fused kernels (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``,
  ``_fused_adagrad_``) where torch has the algorithm and the hyperparameters are Python numbers:
  the class names the kernel in ``fused_kernel``; the results are torch's ``fused=True`` results.
* for every other elementwise algorithm (and for those four with tensor hyperparameters) the
  algorithm's own functional update compiled by ``torch.compile`` (Inductor: C++ on the CPU,
  Triton on CUDA), which fuses the update's passes over memory into one loop per parameter.

The compiled update is traced once per group layout (the parameters' shapes, dtypes and devices,
the state's keys) and kept by torch.compile's cache; what changes from step to step is given to it
as tensors, so later steps reuse the compiled code: the step count (see ``_state.count``), ``lr``
(a 0-d float64 tensor, so that learning-rate schedulers do not recompile it) and every
Python-number entry of the state (turned into a 0-d tensor once). Other hyperparameters are
constants of the compiled code: changing them compiles again. A group's first step runs eagerly,
because that step creates state (SGD's momentum buffer) and would otherwise change the layout.
The results equal the eager update's to float32 rounding (the compiled code computes the scalar
factors in float64 tensors and may reorder multiplications).

The first compiled step costs what Inductor needs to generate and build the code, once per
algorithm and layout, and it grows with the number of tensors (the loop over the parameters is
unrolled): 5 to 30 s for a few tensors, about a minute for 100 tensors on a 2-core CPU. torch.compile needs a C++ compiler on the CPU and Triton on
CUDA; without one, the first step says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from ._multi_tensor import has_tensor_hyperparameter

Update = Callable[..., None]

#: One torch.compile wrapper per functional update; torch.compile caches a graph per layout.
_COMPILED: dict[Update, Update] = {}
#: The first parameter of every group that has taken an (eager) first step.
_STEPPED: WeakIdKeyDictionary = WeakIdKeyDictionary()
#: Device types whose compiler was found (looked up once: the search runs the compiler).
_COMPILER_FOUND: set[str] = set()


def fused_steps(params: list[Tensor], states: list[dict[str, Any]]) -> list[Tensor]:
    """The step counters as torch's fused kernels want them: float32, on the parameter's device
    (moved there once; the single-tensor path reads them wherever they are)."""
    steps = []
    for param, state in zip(params, states, strict=True):
        step = state["step"]
        if step.device != param.device or step.dtype != torch.float32:
            step = state["step"] = step.to(param.device, torch.float32)
        steps.append(step)
    return steps


def fused_update(optimizer_class: type, hyperparameters: dict[str, Any]) -> Update:
    """The fused implementation of ``optimizer_class.update`` for these hyperparameters."""
    kernel = getattr(optimizer_class, "fused_kernel", None)
    if kernel is not None and not has_tensor_hyperparameter(hyperparameters):
        return kernel
    return _CompiledStep(optimizer_class.update)


class _CompiledStep:
    """Calls the compiled update, giving it the changing values as tensors."""

    def __init__(self, update: Update) -> None:
        self.update = update

    def __call__(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict], **hyperparameters: Any
    ) -> None:
        if params[0] not in _STEPPED or any(_is_new(state) for state in states):
            # The first step creates state (SGD's momentum buffer, ...): eager, so that the
            # compiled code sees the layout every later step has.
            self.update(params, grads, states, **hyperparameters)
            _STEPPED[params[0]] = True
            return
        require_compiler(params[0].device)
        for param, state in zip(params, states, strict=True):
            for key, value in state.items():
                if isinstance(value, float):
                    state[key] = torch.tensor(value, dtype=param.dtype, device=param.device)
        lr = hyperparameters.get("lr")
        if isinstance(lr, float | int) and not isinstance(lr, bool):
            hyperparameters["lr"] = torch.tensor(lr, dtype=torch.float64)
        compiled(self.update)(params, grads, states, **hyperparameters)


def _is_new(state: dict[str, Any]) -> bool:
    """Whether a parameter's state has not been stepped yet (a step counter at 0)."""
    step = state.get("step")
    return isinstance(step, Tensor) and step.dim() == 0 and step.item() == 0


def compiled(update: Update) -> Update:
    """``update`` compiled by torch.compile (cached: one wrapper per function)."""
    if update not in _COMPILED:
        _COMPILED[update] = torch.compile(update, dynamic=False)
    return _COMPILED[update]


def require_compiler(device: torch.device) -> None:
    """Raise a clear error when torch.compile cannot build code for ``device``."""
    if device.type in _COMPILER_FOUND:
        return
    _look_for_compiler(device)
    _COMPILER_FOUND.add(device.type)


def _look_for_compiler(device: torch.device) -> None:
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise RuntimeError(
                "fused=True compiles the update with torch.compile, which needs Triton for CUDA "
                "tensors and it is not installed; install triton or use foreach=True"
            )
        return
    if device.type != "cpu":
        raise RuntimeError(f"fused=True supports CPU and CUDA tensors, not {device.type}")
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as error:  # torch raises its own InvalidCxxCompiler
        raise RuntimeError(
            "fused=True compiles the update with torch.compile, which needs a C++ compiler on "
            f"the CPU and found none ({error}); install g++ (or set CXX) or use foreach=True"
        ) from None
