"""fused=True: torch's fused kernels for Adam, AdamW, SGD and Adagrad (equal to torch's fused
path), and the compiled update for every other elementwise algorithm (equal to eager to float32
rounding, compiled once). Tests that compile are marked ``compile`` (``pytest -m compile``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo.utils
from harness import compiled_graphs, reset_compiled_graphs, wavy_loss

import descentlab.optim as optim
from descentlab.optim import _fused

SHAPES = [(3, 4), (5,), (2, 3)]


def _params(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(shape, generator=generator) * 2 - 1).requires_grad_() for shape in SHAPES]


def _train(make, steps, params=None, schedule=False, after_step=None):
    params = params or _params()
    optimizer = make(params)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 7, 0.8) if schedule else None
    for step in range(steps):
        optimizer.zero_grad()
        sum(wavy_loss(p.reshape(-1)) * (i + 1) for i, p in enumerate(params)).backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
        if after_step:
            after_step(step + 1)
    return params, optimizer


TORCH_KERNELS = [
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    ("Adam", {"lr": 0.02}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.01, "momentum": 0.5, "dampening": 0.2}),
    ("SGD", {"lr": 0.01}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01}),
]


@pytest.mark.parametrize(("name", "settings"), TORCH_KERNELS, ids=[n for n, _ in TORCH_KERNELS])
def test_torch_kernels_equal_torch_fused_path(name, settings):
    update = getattr(optim, name).update
    _fused._COMPILED.pop(update, None)  # (an earlier test may have compiled it on purpose)
    ours, ours_optimizer = _train(lambda p: getattr(optim, name)(p, fused=True, **settings), 15)
    theirs, _ = _train(lambda p: getattr(torch.optim, name)(p, fused=True, **settings), 15)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    eager, _ = _train(lambda p: getattr(optim, name)(p, **settings), 15)
    for a, b in zip(ours, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert update not in _fused._COMPILED


def test_torch_state_dict_of_a_fused_run_resumes_ours():
    theirs, torch_optimizer = _train(lambda p: torch.optim.Adam(p, lr=0.01, fused=True), 5)
    mine = [p.detach().clone().requires_grad_() for p in theirs]
    optimizer = optim.Adam(mine, lr=0.01, fused=True)
    optimizer.load_state_dict(copy.deepcopy(torch_optimizer.state_dict()))
    _train(lambda p: optimizer, 5, params=mine)
    _train(lambda p: torch_optimizer, 5, params=theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert torch.equal(a, b)


def test_default_path_compiles_nothing():
    reset_compiled_graphs()
    for key in ("rmsprop", "yogi", "adam"):
        _train(lambda p, key=key: optim.create(key, p), 3)
    assert compiled_graphs() == 0


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_fused, "_COMPILER_FOUND", set())
    no_compiler = torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler-here",)})
    with no_compiler, pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler"):
        _train(lambda p: optim.RMSprop(p, fused=True), 2)


def test_fused_must_be_a_flag():
    with pytest.raises(TypeError, match="fused must be True, False or None"):
        optim.Yogi(_params(), fused=1)


# ----------------------------------------------------------------------------- compiled


#: A representative few (each compiles for 1-3 s): adaptive, sign-based, where-based, averaged.
COMPILED = [
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("yogi", {}),
    ("nadam", {}),
    ("quickprop", {}),
    ("asgd", {"t0": 5}),
    ("schedulefree_adamw", {"warmup_steps": 5}),
]


@pytest.mark.compile
@pytest.mark.parametrize(("key", "settings"), COMPILED, ids=[k for k, _ in COMPILED])
def test_compiled_update_equals_eager_and_compiles_once(key, settings):
    entry = optim.spec(key)

    def make(fused):
        return lambda p: entry.factory(p, **{**entry.defaults, **settings}, fused=fused)

    eager, _ = _train(make(False), 100, schedule=True)
    reset_compiled_graphs()
    graphs = {}
    params, _ = _train(
        make(True),
        100,
        schedule=True,
        after_step=lambda step: graphs.setdefault(step, compiled_graphs()),
    )
    # Step 1 runs eagerly (it creates state), step 2 compiles one graph per chunk size (the three
    # parameters of three ranks: a chunk of 2 and one of 1, flattened), the rest reuse them while
    # the scheduler changes lr every 7 steps.
    assert _fused.chunk_sizes(len(SHAPES)) == [2, 1]
    assert graphs[1] == 0 and graphs[2] == 2
    assert graphs[100] == 2, "recompiled after the first compiled step"
    assert not torch._dynamo.utils.counters["graph_break"]
    for a, b in zip(params, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6


@pytest.mark.compile
def test_tensor_hyperparameters_compile_for_torch_kernel_algorithms():
    """Adam with per-run lr on stacked runs cannot take torch's kernel: it compiles ours."""
    lr = torch.tensor([[1e-3], [1e-2], [3e-2]])

    def run(fused):
        stacked = torch.linspace(-1, 1, 12).reshape(3, 4).requires_grad_()
        optimizer = optim.Adam([{"params": [stacked], "stack_dims": 1}], lr=lr, fused=fused)
        for _ in range(30):
            optimizer.zero_grad()
            wavy_loss(stacked).sum().backward()
            optimizer.step()
        return stacked.detach()

    eager = run(False)
    reset_compiled_graphs()
    fused = run(True)
    assert compiled_graphs() == 1
    torch.testing.assert_close(fused, eager, rtol=1e-6, atol=1e-7)


@pytest.mark.compile
def test_chunks_of_any_sizes_and_ranks_share_one_graph():
    """Eight parameters of five ranks and sizes are one chunk: one graph (their 1-D aliases),
    reused by eight parameters of equal sizes; a non-contiguous parameter steps alone, in its
    own shape. Results equal eager to float32 rounding, state keeps the parameters' shapes."""
    shapes = [(4, 5), (7,), (2, 3, 2), (11,), (3, 3), (5, 1, 2), (13,), (2, 2, 2, 2)]

    def params(shapes, seed):
        generator = torch.Generator().manual_seed(seed)
        made = [(torch.rand(s, generator=generator) * 2 - 1).requires_grad_() for s in shapes]
        transposed = (torch.rand(3, 4, generator=generator) * 2 - 1).t().requires_grad_()
        return [*made, transposed]

    def run(fused, shapes, seed):
        return _train(
            lambda p: optim.NAdam(p, lr=0.01, fused=fused), 20, params=params(shapes, seed)
        )

    eager, _ = run(False, shapes, 1)
    reset_compiled_graphs()
    fused, optimizer = run(True, shapes, 1)
    assert not fused[-1].is_contiguous()
    assert compiled_graphs() == 2  # the chunk of eight, the transposed parameter
    for a, b in zip(fused, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6
    for param in fused:
        assert optimizer.state[param]["exp_avg"].shape == param.shape
    run(True, [(6,)] * 8, 2)
    assert compiled_graphs() == 2


@pytest.mark.compile
def test_a_new_dtype_of_a_state_entry_takes_a_graph_built_for_it():
    """Compiled code reads the memory as the dtype it was built for: a step counter made float64
    in place (``.data``), or an entry the update assigns in a new dtype (irprop+'s last loss, once
    the closure returns a float64 loss), must lead to a graph for the new layout."""

    def counter_to_double(step):
        if step == 3:
            for state in optimizer_of["run"].state.values():
                state["step"].data = state["step"].data.double()

    optimizer_of = {}

    def nadam(fused):
        def make(params):
            optimizer_of["run"] = optim.NAdam(params, lr=0.01, fused=fused)
            return optimizer_of["run"]

        return _train(make, 8, after_step=counter_to_double)[0]

    for a, b in zip(nadam(True), nadam(False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)

    def irprop(fused):
        params = _params()
        optimizer = optim.Rprop(params, lr=0.01, variant="irprop+", fused=fused)
        for step in range(8):

            def closure(step=step):
                optimizer.zero_grad()
                loss = sum(wavy_loss(p.reshape(-1)) * (i + 1) for i, p in enumerate(params))
                loss.backward()
                return loss.detach().double() if step >= 3 else loss

            optimizer.step(closure)
        return params, optimizer

    (fused, fused_optimizer), (eager, _) = irprop(True), irprop(False)
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        assert fused_optimizer.state[a]["prev_loss"].dtype == torch.float64
