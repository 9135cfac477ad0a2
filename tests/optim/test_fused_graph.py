"""The fused path's direct graphs (``_fused_graph``): every elementwise update, traced over a chunk
and run as that graph, steps as the eager update does, with the entries it assigns carried back
into the state. Inductor is left out here (the graph runs as traced, so every key and variant
fits in seconds); tests/optim/test_fused.py compiles a representative few."""

from __future__ import annotations

import pytest
import torch
from harness import compiled_graphs, reset_compiled_graphs, wavy_loss
from test_foreach import CASES

import descentlab.optim as optim
from descentlab.optim import _fused, _fused_graph

SHAPES = [(3, 4), (5,), (2, 1, 3), (1,)]


@pytest.fixture
def uncompiled(monkeypatch):
    """Direct graphs run as traced, forgotten before and after the test (so that no other test
    takes one of these for Inductor's)."""
    handed = []

    def run_as_traced(graph):
        handed.append(graph)
        return lambda inputs: graph(*inputs)

    monkeypatch.setattr(_fused_graph, "_compile", run_as_traced)
    reset_compiled_graphs()
    yield handed
    _fused_graph.clear()


def _operations_inductor_calls_out(graph):
    """The graph's operations Inductor has no lowering for: each would run as a separate call
    (for each parameter, where the update does it per parameter) between its kernels."""
    from torch._inductor.lowering import lowerings

    return {
        str(node.target)
        for node in graph.graph.nodes
        if node.op == "call_function" and node.target not in lowerings
    }


def _train(key, settings, fused, steps=15):
    entry = optim.spec(key)
    generator = torch.Generator().manual_seed(3)
    params = [(torch.rand(s, generator=generator) * 2 - 1).requires_grad_() for s in SHAPES]
    values = {**entry.defaults, **settings}
    if getattr(entry.factory, "fused_kernel", None) is not None:
        values["lr"] = torch.tensor(values["lr"])  # not torch's kernel: the compiled update
    optimizer = entry.factory(params, **values, fused=fused)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 4, 0.7)

    def closure():
        optimizer.zero_grad()
        loss = sum(wavy_loss(p.reshape(-1)) for p in params)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)  # irprop+ compares losses
        scheduler.step()
    return params, optimizer


@pytest.mark.parametrize(("key", "settings"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_the_traced_update_steps_as_the_eager_one(key, settings, uncompiled):
    eager, eager_optimizer = _train(key, settings, fused=False)
    reset_compiled_graphs()
    fused, optimizer = _train(key, settings, fused=True)
    # Four parameters: one chunk of four, one graph; nothing left to torch.compile.
    assert _fused.chunk_sizes(len(SHAPES)) == [4]
    assert _fused_graph.stats == {"graphs": 1}
    assert compiled_graphs() == 1
    (graph,) = uncompiled
    assert _operations_inductor_calls_out(graph) == set()
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(fused, eager, strict=True):
        ours, theirs = optimizer.state[a], eager_optimizer.state[b]
        assert ours.keys() == theirs.keys()
        for name, value in theirs.items():
            if isinstance(value, torch.Tensor):
                assert ours[name].shape == value.shape, name
                torch.testing.assert_close(ours[name].float(), value.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("key", "settings", "names"),
    [
        # irprop+ writes the loss it saw into its 0-d entry, Schedule-Free its bookkeeping.
        ("rprop", {"variant": "irprop+"}, ("prev_loss",)),
        ("schedulefree_adamw", {"warmup_steps": 3}, ("lr_max", "weight_sum")),
    ],
)
def test_scalar_entries_reach_the_state_at_every_step(key, settings, names, uncompiled):
    _, optimizer = _train(key, settings, fused=True, steps=6)
    (graph,) = _fused_graph._GRAPHS.values()
    assert graph.slots == []  # written in place: the graph returns nothing
    _, eager = _train(key, settings, fused=False, steps=6)
    for ours, theirs in zip(optimizer.state.values(), eager.state.values(), strict=True):
        for name in names:
            torch.testing.assert_close(
                torch.as_tensor(ours[name]).double(), torch.as_tensor(theirs[name]).double()
            )


class _Peak(optim.Optimizer):
    """Sign descent that keeps, per parameter, the largest gradient seen so far as a new 0-d
    tensor at each step: an update that assigns its state entry rather than writing into it."""

    elementwise = True

    @staticmethod
    def init_state(param):
        return {"peak": torch.zeros((), dtype=param.dtype)}

    @staticmethod
    def update(params, grads, states, *, lr):
        for param, grad, state in zip(params, grads, states, strict=True):
            state["peak"] = torch.maximum(state["peak"], grad.abs().amax())
            param.sub_(grad.sign() * lr)

    def __init__(self, params, lr=0.1, *, fused=None):
        super().__init__(params, {"lr": lr, "fused": fused, "foreach": None})


def test_entries_an_update_assigns_are_graph_outputs_put_back_into_the_state(uncompiled):
    def train(fused):
        params = [torch.linspace(-1, 1, 5 * (i + 1)).requires_grad_() for i in range(4)]
        optimizer = _Peak(params, lr=torch.tensor(0.1), fused=fused)
        for step in range(6):
            optimizer.zero_grad()
            sum(((p - step) ** 2 * (i + 1)).sum() for i, p in enumerate(params)).backward()
            optimizer.step()
        return params, optimizer

    eager_params, eager = train(False)
    fused_params, fused = train(True)
    (graph,) = _fused_graph._GRAPHS.values()
    assert graph.slots == [(member, "peak") for member in range(4)]  # one chunk of four
    for a, b in zip(fused_params, eager_params, strict=True):
        torch.testing.assert_close(a, b)
        assert fused.state[a]["peak"].item() == eager.state[b]["peak"].item() > 0


def test_new_constants_build_new_graphs_up_to_a_limit(uncompiled, monkeypatch):
    """A hyperparameter that is a Python value is a constant of the graph: a new value builds a
    graph; past ``MAX_CONSTANT_SETS`` for one structure, chunks go to torch.compile instead."""
    monkeypatch.setattr(_fused_graph, "MAX_CONSTANT_SETS", 2)
    calls = []
    monkeypatch.setattr(_fused, "compiled", lambda update: lambda *a, **k: calls.append(1))
    param = torch.ones(4, requires_grad=True)
    optimizer = optim.RMSprop([param, torch.ones(3, requires_grad=True)], fused=True)
    for alpha in (0.9, 0.9, 0.8, 0.7):
        optimizer.param_groups[0]["alpha"] = alpha
        for p in optimizer.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        optimizer.step()
    # Step 1 is eager; 0.9 builds once for steps 2 and 3, 0.8 builds the second; 0.7 declines.
    assert _fused_graph.stats == {"graphs": 2}
    assert len(calls) == 1


def test_a_failed_build_warns_and_steps_through_torch_compile(monkeypatch):
    def broken(graph):
        raise NotImplementedError("no Inductor here")

    monkeypatch.setattr(_fused_graph, "_compile", broken)
    calls = []
    monkeypatch.setattr(_fused, "compiled", lambda update: lambda *a, **k: calls.append(1))
    reset_compiled_graphs()
    params = [torch.ones(4, requires_grad=True)]
    optimizer = optim.Yogi(params, fused=True)
    try:
        for step in range(3):
            params[0].grad = torch.ones(4)
            if step == 1:
                with pytest.warns(RuntimeWarning, match="NotImplementedError: no Inductor here"):
                    optimizer.step()
            else:
                optimizer.step()
        assert len(calls) == 2 and _fused_graph.stats == {"declined": 1}
    finally:
        _fused_graph.clear()


def test_runs_stay_finite():
    """The comparisons above compare numbers: no run of theirs diverges."""
    for key, settings in CASES:
        params, _ = _train(key, settings, fused=False)
        assert all(torch.isfinite(p).all() for p in params), (key, settings)


def test_large_parameters_do_not_take_a_graph_built_for_small_ones(uncompiled):
    """Inductor makes a loop parallel or serial from the sizes it first sees: the graph key holds
    that decision per parameter, so small and large parameters get graphs of their own."""

    def step_twice(numel):
        params = [torch.ones(numel, requires_grad=True) for _ in range(2)]
        optimizer = optim.Lion(params, fused=True)
        for _ in range(2):
            for param in params:
                param.grad = torch.ones(numel)
            optimizer.step()

    threads = torch.get_num_threads()
    least = threads * torch._inductor.config.cpp.min_chunk_size
    step_twice(8)
    step_twice(16)
    assert _fused_graph.stats == {"graphs": 1}
    step_twice(least)
    assert _fused_graph.stats == {"graphs": 2}
    step_twice(least + 5)
    assert _fused_graph.stats == {"graphs": 2}


def test_the_trace_leaves_the_real_tensors_alone_and_refuses_what_it_cannot_carry():
    """Tracing runs the update on fake tensors: the chunk's tensors keep their values. An update
    that assigns a non-tensor or drops an entry is refused (then torch.compile steps it)."""
    from types import SimpleNamespace

    params, grads = [torch.ones(3)], [torch.full((3,), 2.0)]
    states = [{"step": torch.tensor(1.0), "buffer": torch.zeros(3)}]
    chunk = SimpleNamespace(params=params, grads=grads, states=states)

    def moves(params, grads, states, *, lr):
        for param, grad, state in zip(params, grads, states, strict=True):
            state["step"].add_(1)
            state["buffer"].add_(grad)
            param.sub_(lr * state["buffer"])

    graph, slots = _fused_graph.trace(moves, chunk, {"lr": torch.tensor(0.5)})
    assert slots == []
    assert params[0].tolist() == [1.0] * 3 and states[0]["buffer"].tolist() == [0.0] * 3
    assert states[0]["step"].item() == 1.0
    inputs = [torch.ones(3), torch.full((3,), 2.0), torch.tensor(1.0), torch.zeros(3)]
    graph(*inputs, torch.tensor(0.5))
    assert inputs[0].tolist() == [0.0] * 3 and inputs[2].item() == 2.0

    def assigns_a_number(params, grads, states, *, lr):
        states[0]["step"] = 3.0

    def drops_an_entry(params, grads, states, *, lr):
        del states[0]["buffer"]

    for update in (assigns_a_number, drops_an_entry):
        with pytest.raises(_fused_graph._Unsupported):
            _fused_graph.trace(update, chunk, {"lr": torch.tensor(0.5)})


@pytest.mark.parametrize("variant", ["irprop-", "rprop-"])
def test_rprop_compiled_form_keeps_nan_and_infinity_where_eager_does(variant, uncompiled):
    """Rprop's selections are written with torch.where when compiled (``rprop._compiled_step``):
    a NaN or infinite gradient leaves the same values, NaN included, as the eager step."""

    def run(fused):
        params = [torch.ones(6, requires_grad=True) for _ in range(2)]
        optimizer = optim.Rprop(params, variant=variant, fused=fused)
        gradients = [
            [1.0, -1.0, 2.0, 0.0, 1.0, -2.0],
            [-1.0, -1.0, float("nan"), 3.0, float("inf"), 2.0],
            [1.0, 1.0, 1.0, -3.0, -1.0, 0.0],
            [1.0, -1.0, 1.0, 1.0, 1.0, 1.0],
        ]
        for values in gradients:
            for param in params:
                param.grad = torch.tensor(values)
            optimizer.step()
        return params, optimizer

    fused, fused_optimizer = run(True)
    eager, eager_optimizer = run(False)
    assert _fused_graph.stats["graphs"] == 1
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, equal_nan=True, rtol=0, atol=0)
        for name in ("prev", "step_size"):
            torch.testing.assert_close(
                fused_optimizer.state[a][name], eager_optimizer.state[b][name], equal_nan=True
            )


def _race(build, steps=6, change=None, shapes=((3, 3), (7,))):
    """Parameters and optimizer after ``steps`` steps of random gradients (written into the
    existing gradients, as backward does); ``change(step, params, optimizer)`` runs before each."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
    optimizer = build(params)
    for step in range(steps):
        for param in params:
            fresh = torch.randn(param.shape, generator=generator)
            if param.grad is None:
                param.grad = fresh
            else:
                param.grad.copy_(fresh)
        if change is not None:
            change(step, params, optimizer)
        optimizer.step()
    return params, optimizer


def _same_runs(build, change, steps=6):
    eager, eager_optimizer = _race(lambda p: build(p, False), steps, change)
    fused, fused_optimizer = _race(lambda p: build(p, True), steps, change)
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        for name, value in eager_optimizer.state[b].items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(fused_optimizer.state[a][name], value)


def test_a_state_entry_the_update_creates_is_taken_into_the_state(uncompiled):
    """SGD creates its momentum buffer at the first step with momentum, which (a parameter whose
    gradient comes late, momentum switched on later) can be a compiled step: the graph returns it,
    the chunk's next step takes a graph with the buffer among its arguments."""

    def late_gradient(step, params, optimizer):
        if step < 3:
            params[1].grad = None

    def momentum_later(step, params, optimizer):
        if step == 3:
            optimizer.param_groups[0]["momentum"] = 0.9

    for change, momentum in ((late_gradient, 0.9), (momentum_later, 0.0)):
        _same_runs(
            lambda p, fused, momentum=momentum: optim.SGD(
                p, lr=torch.tensor(0.05), momentum=momentum, fused=fused
            ),
            change,
        )


def _state_moved_in_place(step, params, optimizer):
    if step == 3:
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.data = value.data.clone()  # what .to(device) or pin_memory() do


def _gradient_transposed(step, params, optimizer):
    if step == 3:
        params[0].grad = params[0].grad.t()  # same memory, read in another order


def _parameter_transposed(step, params, optimizer):
    if step == 3:
        params[0].data = params[0].data.t()


@pytest.mark.parametrize(
    "change", [_state_moved_in_place, _gradient_transposed, _parameter_transposed]
)
def test_tensors_given_new_memory_or_order_in_place_are_seen(change, uncompiled):
    """The same tensor objects with new memory, or the same memory in another order, must not
    be stepped through the aliases of the old (the chunks are built again)."""
    _same_runs(lambda p, fused: optim.RMSprop(p, lr=0.01, momentum=0.5, fused=fused), change)


def test_a_tensor_hyperparameter_that_switches_a_term_declines_the_graph_quietly(
    uncompiled, monkeypatch, recwarn
):
    """``weight_decay=torch.tensor(0.1)``: whether the term is on depends on the tensor's value,
    which a graph cannot branch on; the chunk steps through torch.compile (here the eager update),
    with the same numbers, and nothing warns of a failure."""
    monkeypatch.setattr(_fused, "compiled", lambda update: update)
    _same_runs(
        lambda p, fused: optim.RMSprop(p, lr=0.01, weight_decay=torch.tensor(0.1), fused=fused),
        None,
    )
    assert _fused_graph.stats["declined"] >= 1
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_loss_given_as_a_number_enters_the_graph_as_a_tensor(uncompiled):
    """irprop+ compares losses; a closure returning ``loss.item()`` gives a new number at every
    step, which must not build a graph per step."""

    def run(fused):
        params = [p.detach().clone().requires_grad_() for p in _race(lambda p: None, 0)[0]]
        optimizer = optim.Rprop(params, lr=0.01, variant="irprop+", fused=fused)

        def closure():
            optimizer.zero_grad()
            loss = sum(wavy_loss(p.reshape(-1)) for p in params)
            loss.backward()
            return loss.item()

        for _ in range(8):
            optimizer.step(closure)
        return params

    eager, fused = run(False), run(True)
    assert _fused_graph.stats == {"graphs": 1}
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_schedule_free_keeps_its_running_sums_in_float32_for_bfloat16_parameters(uncompiled):
    """The eager step keeps ``lr_max`` and ``weight_sum`` as Python numbers; the fused path makes
    them tensors, which in bfloat16 would stop the sum growing (2 % off after 300 steps)."""

    def run(fused):
        params = [torch.linspace(-1, 1, 6, dtype=torch.bfloat16).requires_grad_()]
        optimizer = optim.create("schedulefree_adamw", params, lr=0.01, fused=fused)
        for _ in range(300):
            optimizer.zero_grad()
            (params[0].float() ** 2).sum().backward()
            optimizer.step()
        return optimizer.state[params[0]]

    eager, fused = run(False), run(True)
    assert fused["weight_sum"].dtype == torch.float32
    assert float(fused["weight_sum"]) == pytest.approx(eager["weight_sum"], rel=1e-5)
