"""A chunk's compiled update called without torch.compile's per-call layers (see ``_fused``).

``torch.compile`` wraps the code Inductor generates in dynamo's guards and AOT autograd's runtime
wrapper, Python that runs at every call (on large parameters from the cold caches each kernel
leaves): through them, a fused RMSprop step of 10M parameters in 100 tensors took 5.2 ms against
a 3.6 ms floor (``benchmarks/step_speed.py``, 2 threads, 2026-12-02). A chunk's arguments do not
change between steps except through what ``ChunkCache.reuse`` already checks (the same aliases,
state entries and memory), so the guards check nothing new.
This module therefore traces the update over a chunk once, with ``make_fx`` (functionalized: the
in-place updates become ``copy_`` into the inputs, which Inductor stores in place), compiles the
graph with Inductor's ``compile_fx_inner`` and calls the generated code directly, with one list
of the chunk's tensors.

What a graph assumes is its key: the algorithm, the hyperparameters that are Python values (they
are constants of the graph; ``lr`` and tensor hyperparameters are inputs), and for every tensor
its dtype, device and rank, and which of its sizes are 0 or 1 (the symbolic trace specializes
those), and which parameters' loops run in parallel (``_parallel_loops``). Sizes are otherwise
symbolic, without duck shaping, so one graph serves every chunk of
that structure. The trace relates only a parameter's own sizes (its gradient and buffers have its
size, which ``_fused_arguments`` guarantees).

Entries the update assigns instead of changing in place (irprop+'s ``prev_loss``) are outputs
of the graph, put into both state dicts after each call (``Member.take``); the updates write
their 0-d bookkeeping in place where they can (ASGD, NAdam, Schedule-Free), since each output is
a new tensor per parameter and step. An update that assigns a non-tensor, deletes an entry or
cannot be traced this way is left to torch.compile (``None`` in the cache), as is every chunk
when these private entry points of torch are missing; both give the same results, the latter
slower.

The first build of a graph costs what Inductor takes to generate and compile it: a few seconds
(``benchmarks/step_speed.py`` prints the slowest warm-up step of each optimizer). Inductor's
graph cache is not used (see ``_compile``); the C++ it generates is cached on disk by its text.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.fx.experimental._config
from torch import Tensor

#: Graph keys whose builds are kept: beyond this many sets of constants for one algorithm and
#: structure (a scheduler moving ``momentum`` or ``betas``), chunks fall back to torch.compile,
#: whose own recompile limit then returns them to eager steps.
MAX_CONSTANT_SETS = 8

_GRAPHS: dict[tuple, _Graph | None] = {}
_CONSTANT_SETS: dict[tuple, set[tuple]] = {}
#: Graphs built ("graphs") and keys left to torch.compile ("declined"), for tests and benchmarks.
stats: Counter[str] = Counter()


def clear() -> None:
    """Forget every built graph (chunks that hold one keep it) and the counts in ``stats``."""
    _GRAPHS.clear()
    _CONSTANT_SETS.clear()
    stats.clear()


class _Unsupported(Exception):
    """The update does something the direct graph cannot carry (then torch.compile steps)."""


def _tensor_key(tensor: Tensor) -> tuple:
    return (tensor.dtype, tensor.device, tuple(min(size, 2) for size in tensor.shape))


def _parallel_loops(params: list[Tensor]) -> tuple[int, tuple[bool, ...]]:
    """The threads, and for each parameter whether Inductor shares its loop among them.

    Inductor decides that when it generates the code, from the sizes of the first call: a loop of
    fewer than ``cpp.min_chunk_size`` elements a thread stays serial (``decide_parallel_depth``).
    A graph first built on small parameters would then step large ones on one thread, so the
    decision is part of the key (and the code is not taken from Inductor's disk cache, which
    would not know it: see ``_compile``).
    """
    from torch._inductor import config as inductor_config

    threads = torch.get_num_threads()
    least = threads * inductor_config.cpp.min_chunk_size
    return threads, tuple(param.numel() >= least for param in params)


def _hyperparameter_layout(hyperparameters: dict[str, Any]) -> tuple[tuple, list[Tensor]]:
    """The hyperparameters' part of a graph key, and their tensors (the graph's last inputs)."""
    key, tensors = [], []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, tuple | list):
            parts = []
            for part in value:
                if isinstance(part, Tensor):
                    parts.append(("tensor", _tensor_key(part)))
                    tensors.append(part)
                else:
                    parts.append(("value", part))
            key.append((name, type(value).__name__, tuple(parts)))
        elif isinstance(value, Tensor):
            key.append((name, "tensor", _tensor_key(value)))
            tensors.append(value)
        else:
            key.append((name, "value", value))
    return tuple(key), tensors


def _state_layout(flat_state: dict[str, Any]) -> tuple:
    return tuple(
        (name, "tensor", _tensor_key(value))
        if isinstance(value, Tensor)
        else (name, "value", value)
        for name, value in flat_state.items()
    )


class _Graph:
    """One compiled graph: call it with the chunk's input list; it returns the assigned entries."""

    __slots__ = ("assigning", "call", "slots")

    def __init__(self, call: Callable[[list], Any], slots: list[tuple[int, str]]) -> None:
        self.call = call
        #: (member, state key) of each output: the entries the update assigned.
        self.slots = slots
        #: The members that have such entries.
        self.assigning = sorted({member for member, _ in slots})


class ChunkRunner:
    """A chunk's graph and argument list for one set of hyperparameter constants; a graph of
    None: the direct path does not serve the chunk with these constants (torch.compile does)."""

    __slots__ = ("arguments", "graph", "hyper_key", "positions")

    def __init__(self, graph: _Graph | None, chunk: Any, hyper_key: tuple) -> None:
        self.graph = graph
        self.hyper_key = hyper_key
        self.arguments, positions = _arguments(chunk) if graph else ([], {})
        #: Where each output (an assigned entry) sits in ``arguments``; None for an entry that
        #: was not a tensor when the graph was traced (SGD's first momentum buffer).
        self.positions = [positions.get(slot) for slot in graph.slots] if graph else []


def _arguments(chunk: Any) -> tuple[list[Tensor], dict[tuple[int, str], int]]:
    """The chunk's tensors in the graph's order (parameters, gradients, each member's state
    tensors; the tensor hyperparameters follow), and where each state tensor sits."""
    arguments = [*chunk.params, *chunk.grads]
    positions = {}
    for member, state in enumerate(chunk.states):
        for name, value in state.items():
            if isinstance(value, Tensor):
                positions[member, name] = len(arguments)
                arguments.append(value)
    return arguments, positions


def run(update: Callable[..., None], chunks: list, hyperparameters: dict[str, Any]) -> list:
    """Step each of ``chunks`` (``_fused_arguments.Chunk``) through its direct graph; returns the
    chunks the direct path does not serve (the caller steps them through torch.compile)."""
    hyper_key, hyper_tensors = _hyperparameter_layout(hyperparameters)
    left = []
    for chunk in chunks:
        runner = chunk.runner
        if runner is None or runner.hyper_key != hyper_key:
            runner = chunk.runner = _runner(update, chunk, hyperparameters, hyper_key)
        if runner.graph is None:
            left.append(chunk)
            continue
        arguments = runner.arguments
        outputs = runner.graph.call([*arguments, *hyper_tensors])
        if runner.graph.slots:
            _write_back(chunk, runner, outputs)
    return left


def _write_back(chunk: Any, runner: ChunkRunner, outputs: Any) -> None:
    """Put the entries the update assigned into the members' states, and into the runner's
    arguments where they take the place of a tensor of the same layout; otherwise the chunk's
    layout has changed (a new tensor entry, a new dtype) and its next step finds a new graph."""
    members, arguments = chunk.members, runner.arguments
    for (member, name), position, value in zip(
        runner.graph.slots, runner.positions, outputs, strict=True
    ):
        members[member].take(name, value)
        if position is not None and _tensor_key(value) == _tensor_key(arguments[position]):
            arguments[position] = value
        else:
            chunk.runner = None
    for member in runner.graph.assigning:
        members[member].taken()


def _runner(
    update: Callable[..., None], chunk: Any, hyperparameters: dict[str, Any], hyper_key: tuple
) -> ChunkRunner:
    layouts = tuple(_state_layout(state) for state in chunk.states)
    structure = (
        update,
        tuple(_tensor_key(param) for param in chunk.params),
        tuple(_tensor_key(grad) for grad in chunk.grads),
        layouts,
        _parallel_loops(chunk.params),
    )
    key = (*structure, hyper_key)
    if key not in _GRAPHS:
        seen = _CONSTANT_SETS.setdefault(structure, set())
        if len(seen) >= MAX_CONSTANT_SETS:
            return ChunkRunner(None, chunk, hyper_key)
        seen.add(hyper_key)
        _GRAPHS[key] = _build(update, chunk, hyperparameters)
    return ChunkRunner(_GRAPHS[key], chunk, hyper_key)


def _build(
    update: Callable[..., None], chunk: Any, hyperparameters: dict[str, Any]
) -> _Graph | None:
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    try:
        graph = _trace_and_compile(update, chunk, hyperparameters)
    except (_Unsupported, GuardOnDataDependentSymNode):
        # The latter: the update branches on a tensor's value (a tensor weight_decay that
        # switches its term on), which a graph cannot; torch.compile breaks its graph there.
        stats["declined"] += 1
        return None
    except Exception as error:  # private entry points of torch: a missing or changed one
        warnings.warn(
            f"fused=True: compiling {update.__qualname__} without torch.compile's wrappers failed "
            f"({type(error).__name__}: {error}); stepping through torch.compile instead",
            RuntimeWarning,
            stacklevel=4,
        )
        stats["declined"] += 1
        return None
    stats["graphs"] += 1
    return graph


def _trace_and_compile(
    update: Callable[..., None], chunk: Any, hyperparameters: dict[str, Any]
) -> _Graph:
    graph, slots = trace(update, chunk, hyperparameters)
    return _Graph(_compile(graph), slots)


def _compile(graph: torch.fx.GraphModule) -> Callable[[list], Any]:
    """Inductor's code for ``graph``: a function of one list of inputs (which it empties)."""
    from torch._guards import TracingContext, detect_fake_mode, tracing
    from torch._inductor import config as inductor_config
    from torch._inductor.compile_fx import compile_fx_inner

    from ._fused import INDUCTOR_OPTIONS

    fake_inputs = [node.meta["val"] for node in graph.graph.nodes if node.op == "placeholder"]
    context = TracingContext(detect_fake_mode(fake_inputs))
    # Not from Inductor's graph cache: its key leaves out the sizes that decide which loops run
    # in parallel (see ``_parallel_loops``). The C++ is still cached by its source text.
    options = {**INDUCTOR_OPTIONS, "fx_graph_cache": False}
    with tracing(context), inductor_config.patch(options):
        compiled = compile_fx_inner(graph, fake_inputs, is_inference=True)
    call = compiled.current_callable
    if call is None:
        raise RuntimeError("Inductor returned no callable")
    return call


def trace(
    update: Callable[..., None], chunk: Any, hyperparameters: dict[str, Any]
) -> tuple[torch.fx.GraphModule, list[tuple[int, str]]]:
    """The functional graph of ``update`` over ``chunk`` (symbolic sizes, Inductor's
    decompositions applied) and the (member, state key) of each of its outputs; raises
    ``_Unsupported`` where the update assigns a non-tensor or adds or deletes entries."""
    from torch._inductor.decomposition import select_decomp_table
    from torch.fx.experimental.proxy_tensor import make_fx

    count = len(chunk.params)
    layouts = [list(state.items()) for state in chunk.states]
    slots: list[tuple[int, str]] = []

    def step(*inputs: Tensor) -> tuple[Tensor, ...]:
        stream = iter(inputs)
        params = [next(stream) for _ in range(count)]
        grads = [next(stream) for _ in range(count)]
        states = [
            {name: next(stream) if isinstance(value, Tensor) else value for name, value in layout}
            for layout in layouts
        ]
        handed = [dict(state) for state in states]
        update(params, grads, states, **_with_tensors(hyperparameters, stream))
        slots.clear()
        outputs = []
        for member, (state, before) in enumerate(zip(states, handed, strict=True)):
            if state.keys() != before.keys():
                raise _Unsupported("the update adds or deletes state entries")
            for name, value in state.items():
                if value is before[name]:
                    continue
                if not isinstance(value, Tensor):
                    raise _Unsupported(f"the update assigns a non-tensor to {name!r}")
                slots.append((member, name))
                outputs.append(value)
        return tuple(outputs)

    inputs = _arguments(chunk)[0] + _hyperparameter_layout(hyperparameters)[1]
    # The symbolic trace turns each input into a fake tensor (its metadata, no data): the real
    # tensors are neither read nor written, so they are not copied (a chunk can be gigabytes).
    inputs = [tensor.detach() for tensor in inputs]
    functional = torch.func.functionalize(step, remove="mutations_and_views")
    with (
        torch.no_grad(),
        _compiling(),
        torch.fx.experimental._config.patch(use_duck_shape=False),
    ):
        # Inductor's decompositions, as AOT autograd applies them before Inductor sees a graph.
        graph = make_fx(functional, select_decomp_table(), tracing_mode="symbolic")(*inputs)
    return graph, list(slots)


def _with_tensors(hyperparameters: dict[str, Any], stream: Iterator[Tensor]) -> dict[str, Any]:
    """``hyperparameters`` with each tensor replaced by the next traced input (sorted order, as
    ``_hyperparameter_layout`` lists them)."""
    rebuilt = {}
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, tuple | list):
            value = type(value)(next(stream) if isinstance(p, Tensor) else p for p in value)
        elif isinstance(value, Tensor):
            value = next(stream)
        rebuilt[name] = value
    return rebuilt


class _compiling:
    """While tracing, ``torch.compiler.is_compiling()`` is True, as under torch.compile and in
    torch.export's non-strict tracing: the updates then keep step counts as tensors and skip
    their eager-only checks (``_state.count``)."""

    def __enter__(self) -> None:
        self.before = torch.compiler._is_compiling_flag
        torch.compiler._is_compiling_flag = True

    def __exit__(self, *exc: object) -> None:
        torch.compiler._is_compiling_flag = self.before
