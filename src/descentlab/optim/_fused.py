"""The fused (``fused=True``) path: one kernel per step for a whole param group.

Two sources of kernels, chosen per group:

* torch's own fused kernels (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``,
  ``_fused_adagrad_``) where torch has the algorithm and the hyperparameters are Python numbers:
  the class names the kernel in ``fused_kernel``; the results are torch's ``fused=True`` results.
* for every other elementwise algorithm (and for those four with tensor hyperparameters) the
  algorithm's own functional update compiled by Inductor (C++ on the CPU, Triton on CUDA), which
  fuses the update's passes over memory into one loop per parameter.

The compiled update is called on chunks of up to ``CHUNK`` parameters (32; the rest in chunks of
16, 8, 4, 2 and 1), each parameter, gradient and parameter-shaped buffer given as a 1-D alias of
its memory, with symbolic sizes: so one graph serves parameters of every size and rank, and a
group needs at most six graphs, however many parameters it has (more where its parameters
differ in which loops Inductor runs in parallel, see below, or in sizes of 1). What changes from step to step
is given as tensors, so later steps reuse the graphs: the step count (see ``_state.count``),
``lr`` (a 0-d float64 tensor, so that learning-rate schedulers do not recompile it) and every
Python-number entry of the state (turned into a 0-d tensor once). The other hyperparameters and
flags (``amsgrad``, ``maximize``) are constants of the graph: changing them compiles again. A
group's first step runs eagerly, because that step creates state (SGD's momentum buffer) and
would otherwise change the layout. The per-step factors (``1 - beta2 ** step`` ...) are computed
once per call, before the loops (see ``REALIZE_OPCOUNT_THRESHOLD``). The results equal the eager
update's to float32 rounding (the compiled code computes the scalar factors in float64 and may
reorder or fuse multiplications).

Two layers keep the Python per step small, because on small tensors a step is that Python:

* the aliases and argument lists of each chunk are built once and kept with the group between
  steps (``_fused_arguments.ChunkCache``: rebuilt when a parameter loses its gradient, after
  ``load_state_dict``, when state is written from outside; a new gradient only re-points its
  alias);
* a chunk's graph is traced once and compiled by Inductor directly, then called without
  torch.compile's per-call layers (dynamo's guards and AOT autograd's runtime wrapper), which the
  chunk cache makes redundant (``_fused_graph``). A chunk that path cannot serve (a group with
  per-run tensor hyperparameters, a non-contiguous parameter, which step in their own shapes) goes
  through ``torch.compile`` (``compiled``), with dynamic sizes.

The generated code (``TORCH_LOGS=output_code``) is what the floor assumes: one C++ function per
chunk, one OpenMP parallel region, and for each parameter one vectorized loop that reads the
gradient, the parameter and each buffer once and stores the parameter and buffers in place (no
``copy_`` pass for the mutated inputs), the per-step factors hoisted. The floor of
``benchmarks/step_speed.py`` is the step's bytes over the bandwidth of a large ``copy_``, which
moves its bytes with a write-allocate read on top; an in-place update does not, which is how a
fused step can come in under it. ``benchmarks/fused_split.py`` times each layer of a step.

Whether a loop is shared among the threads is decided when its graph is built, from the sizes of
that first call (under ``cpp.min_chunk_size``, 512 floats a thread, it stays serial), and the
graph serves every later size. So the direct graphs are keyed on that decision for each
parameter (``_fused_graph._parallel_loops``); a chunk stepped through torch.compile keeps the
decision its graph was first built with.

The first compiled step costs what Inductor needs to generate and build the code, once per
algorithm, chunk size and set of constants: seconds per graph (``step_speed.py`` prints the
slowest warm-up step; cached on disk by Inductor between processes). It needs a C++ compiler on
the CPU and Triton on CUDA; without one, the first step says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.fx.experimental._config
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from . import _fused_graph
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
        loss = hyperparameters.get("loss")
        if isinstance(loss, float | int) and not isinstance(loss, bool):
            # A closure's ``loss.item()``: a new number every step, a constant of the graph
            # (a new graph per step) unless it enters as a tensor, as the update makes it.
            hyperparameters["loss"] = torch.as_tensor(loss)
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
        left = _fused_graph.run(self.update, chunks, hyperparameters)
        if left:
            # Without duck shaping, parameters of equal size get sizes of their own in the graph
            # rather than one shared (and guarded: a chunk of other sizes would compile again).
            with torch.fx.experimental._config.patch(use_duck_shape=False):
                for chunk in left:
                    step(chunk.params, chunk.grads, chunk.states, **hyperparameters)
            # The direct graphs write back what they assigned themselves (``_fused_graph.run``).
            for chunk in left:
                for member in chunk.members:
                    member.write_back()


def _tensor_numbers(state: dict[str, Any], param: Tensor) -> None:
    """Python-number entries of ``state`` as 0-d tensors, so that a new value does not compile
    the update again: in the parameter's dtype, at least float32 (a running sum in bfloat16
    stops growing)."""
    dtype = torch.promote_types(param.dtype, torch.float32)
    for key, value in state.items():
        if isinstance(value, float):
            state[key] = torch.tensor(value, dtype=dtype, device=param.device)


#: Parameters per call of the compiled update. Fewer calls cost less Python per step, and a
#: larger chunk's graph takes longer to build (a call for the whole list unrolls it into one graph
#: that grows with the parameter count); chunks of this size (and 16, 8, 4, 2, 1 for the rest)
#: need at most six graphs for alike parameters, whatever their count.
CHUNK = 32


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
#: of every input at every call (the chunk cache, and dynamo's guards where torch.compile steps,
#: check sizes and strides already).
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
