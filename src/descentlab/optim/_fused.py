"""The fused (``fused=True``) path: one kernel per step for a whole param group.

Two sources of kernels, chosen per group:

* torch's own fused kernels (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``,
  ``_fused_adagrad_``) where torch has the algorithm and the hyperparameters are Python numbers:
  the class names the kernel in ``fused_kernel``; the results are torch's ``fused=True`` results.
* for every other elementwise algorithm (and for those four with tensor hyperparameters) the
  algorithm's own functional update compiled by ``torch.compile`` (Inductor: C++ on the CPU,
  Triton on CUDA), which fuses the update's passes over memory into one loop per parameter.

The compiled update is called on chunks of up to ``CHUNK`` parameters (16; the rest in chunks of
8, 4, 2 and 1), each parameter, gradient and parameter-shaped buffer given as a 1-D alias of its
memory, with dynamic sizes: so one graph serves parameters of every size and rank, and a group
needs at most five graphs, however many parameters it has (a non-contiguous parameter, or a group
with per-run tensor hyperparameters, is called in its own shape). What changes from step to step
is given as tensors or unspecialized numbers, so later steps reuse the graphs: the step count (see
``_state.count``), ``lr`` (a 0-d float64 tensor, so that learning-rate schedulers do not recompile
it) and every Python-number entry of the state (turned into a 0-d tensor once). Flags (``amsgrad``,
``maximize``) are constants of the graph: changing them compiles again. A group's first step runs
eagerly, because that step creates state (SGD's momentum buffer) and would otherwise change the
layout. The per-step factors (``1 - beta2 ** step`` ...) are computed once per call, before the
loops (see ``REALIZE_OPCOUNT_THRESHOLD``). The results equal the eager update's to float32
rounding (the compiled code computes the scalar factors in float64 and may reorder or fuse
multiplications).

Per call, torch.compile's wrappers (dynamo's guards, the sizes it reads from each input, AOT
autograd's and Inductor's wrappers) cost a few microseconds per tensor: on small tensors the
step is that overhead. So the aliases and argument lists of each chunk are built once and kept
with the group between steps (``_fused_arguments.ChunkCache``: rebuilt when a parameter loses its
gradient, after ``load_state_dict``, when state is written from outside; a new gradient only
re-points its alias), ``use_duck_shape`` is patched once per step rather than per call, and
Inductor's size asserts (checks of each input's size and stride that the guards have already
made) are left out of the generated code (``size_asserts``). Skipping dynamo's guards once the
chunks are known valid (``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``) and Inductor's
C++ wrapper (``cpp_wrapper``) were measured too and saved nothing (the latter cost more).

The first compiled step costs what Inductor needs to generate and build the code, once per
algorithm and chunk size: about 5 to 30 s for each of up to five graphs on a 2-core CPU (cached on
disk by Inductor between processes). torch.compile needs a C++ compiler on the CPU and Triton on
CUDA; without one, the first step says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.fx.experimental._config
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from ._fused_arguments import ChunkCache
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


def fused_update(
    optimizer_class: type, hyperparameters: dict[str, Any], cache: ChunkCache | None = None
) -> Update:
    """The fused implementation of ``optimizer_class.update`` for these hyperparameters;
    ``cache`` (the group's) keeps the compiled calls' arguments between steps."""
    kernel = getattr(optimizer_class, "fused_kernel", None)
    if kernel is not None and not has_tensor_hyperparameter(hyperparameters):
        return kernel
    return _CompiledStep(optimizer_class.update, cache)


class _CompiledStep:
    """Calls the compiled update on chunks of parameters, giving it the changing values as
    tensors; the chunks' arguments are kept in the group's ``cache`` between steps."""

    def __init__(self, update: Update, cache: ChunkCache | None = None) -> None:
        self.update = update
        self.cache = cache

    def __call__(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict], **hyperparameters: Any
    ) -> None:
        lr = hyperparameters.get("lr")
        if isinstance(lr, float | int) and not isinstance(lr, bool):
            hyperparameters["lr"] = torch.tensor(lr, dtype=torch.float64)
        # Per-run or per-coordinate tensors broadcast against the parameter's own shape.
        flatten = not _shaped_hyperparameter(hyperparameters)
        cache = self.cache if flatten and self.cache is not None else ChunkCache()
        chunks = cache.reuse(params, grads, states) if flatten else None
        if chunks is None:
            if params[0] not in _STEPPED or any(_is_new(state) for state in states):
                # The first step creates state (SGD's momentum buffer, ...): eager, so that the
                # compiled code sees the layout every later step has.
                self.update(params, grads, states, **hyperparameters)
                _STEPPED[params[0]] = True
                return
            require_compiler(params[0].device)
            for param, state in zip(params, states, strict=True):
                _tensor_numbers(state, param)
            if flatten:
                chunks = cache.build(params, grads, states, chunk_sizes)
            else:
                cache.clear()
                cache.alone = list(range(len(params)))
                chunks = []
        step = compiled(self.update)
        for index in cache.alone:
            _tensor_numbers(states[index], params[index])
            step([params[index]], [grads[index]], [states[index]], **hyperparameters)
        if not chunks:
            return
        # Without duck shaping, parameters of equal size get sizes of their own in the graph
        # rather than one shared (and guarded: a chunk of other sizes would compile again).
        with torch.fx.experimental._config.patch(use_duck_shape=False):
            for chunk in chunks:
                step(chunk.params, chunk.grads, chunk.states, **hyperparameters)
        for chunk in chunks:
            for member in chunk.members:
                member.write_back()


def _tensor_numbers(state: dict[str, Any], param: Tensor) -> None:
    """Python-number entries of ``state`` as 0-d tensors, so that a new value does not compile
    the update again."""
    for key, value in state.items():
        if isinstance(value, float):
            state[key] = torch.tensor(value, dtype=param.dtype, device=param.device)


#: Parameters per call of the compiled update. A call's overhead is mostly per tensor (about 8 us
#: per parameter for RMSprop with prepared arguments), plus a few tens of microseconds per call:
#: chunks of 32 took about 0.1 ms off a step of 100 small tensors (RMSprop, Lion; 4 calls instead
#: of 7), while one chunk's graph takes longer to build the larger it is (RMSprop: 14 s for 16
#: parameters, 63 s for 64, measured once each) and a call for the whole list unrolls it into one
#: graph that takes minutes to build for 1000 tensors; one call per parameter made RMSprop's step
#: 5x slower than eager. Chunks of this size (and 8, 4, 2, 1 for the rest) need at most five
#: graphs, whatever the parameter count.
CHUNK = 16


def chunk_sizes(count: int) -> list[int]:
    """``count`` split into calls of ``CHUNK`` parameters, the rest in powers of two."""
    rest = count % CHUNK
    smaller = [CHUNK >> shift for shift in range(1, CHUNK.bit_length())]
    return [CHUNK] * (count // CHUNK) + [size for size in smaller if rest & size]


def _shaped_hyperparameter(hyperparameters: dict[str, Any]) -> bool:
    """Whether a hyperparameter (or an entry of ``betas``) is a tensor with dimensions."""
    return any(
        isinstance(part, Tensor) and part.dim() > 0
        for value in hyperparameters.values()
        for part in (value if isinstance(value, tuple | list) else (value,))
    )


def _is_new(state: dict[str, Any]) -> bool:
    """Whether a parameter's state has not been stepped yet (a step counter at 0)."""
    step = state.get("step")
    return isinstance(step, Tensor) and step.dim() == 0 and step.item() == 0


#: Inductor inlines a computation into every loop that reads it unless it has more operations
#: than this; the default (50 on the CPU) inlines the per-step factors (``beta2 ** step``,
#: NAdam's momentum schedule) into the loop over the elements, where they are computed again for
#: every vector of 16 floats (libm's pow cannot be hoisted). At 2 they are computed once, before
#: the loop, and the elementwise chain still fuses into one loop (seen in ``TORCH_LOGS=output_code``).
REALIZE_OPCOUNT_THRESHOLD = 2

#: Inductor's options for the compiled update: the threshold above, and no ``assert_size_stride``
#: of every input at every call (dynamo's guards check sizes and strides already; leaving them
#: out took about 2 us per parameter off a step, measured on 100 small tensors).
INDUCTOR_OPTIONS = {"realize_opcount_threshold": REALIZE_OPCOUNT_THRESHOLD, "size_asserts": False}


def compiled(update: Update) -> Update:
    """``update`` compiled by torch.compile for one parameter of any size (cached: one wrapper
    per function, whose graphs have dynamic sizes)."""
    if update not in _COMPILED:
        _COMPILED[update] = torch.compile(
            update,
            dynamic=True,
            options=INDUCTOR_OPTIONS,
        )
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
