"""The compiled fused path keeps each chunk's 1-D aliases and argument lists between steps
(``_fused_arguments.ChunkCache``): built once, reused while the tensors they stand for are
unchanged, built again when a parameter loses its gradient, after ``load_state_dict``, when state
is written from outside or a parameter moves; a new gradient re-points its own alias. The first
tests check the cache itself (no compiling); those marked ``compile`` check whole runs against
the eager path."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
import torch._dynamo.utils
from harness import compiled_graphs, reset_compiled_graphs, wavy_loss

import descentlab.optim as optim
from descentlab.optim import _fused
from descentlab.optim._fused_arguments import ChunkCache

SHAPES = [(3, 4), (5,), (2, 3)]


def _params(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(shape, generator=generator) * 2 - 1).requires_grad_() for shape in SHAPES]


def _members(shapes=SHAPES):
    """Parameters, gradients and RMSprop-like states, as the fused path is handed them."""
    params = _params()
    grads = [torch.randn(shape) for shape in shapes]
    states = [{"step": torch.tensor(1.0), "square_avg": torch.rand(shape)} for shape in shapes]
    return params, grads, states


def _built(params, grads, states):
    cache = ChunkCache()
    chunks = cache.build(params, grads, states, _fused.chunk_sizes)
    return cache, chunks


def test_chunks_alias_the_tensors_and_are_reused():
    params, grads, states = _members()
    cache, chunks = _built(params, grads, states)
    assert [len(chunk.members) for chunk in chunks] == _fused.chunk_sizes(3) == [2, 1]
    flat = [member for chunk in chunks for member in chunk.members]
    for member, param, grad, state in zip(flat, params, grads, states, strict=True):
        assert member.flat_param.dim() == 1 and member.flat_param.data_ptr() == param.data_ptr()
        assert member.flat_grad.data_ptr() == grad.data_ptr()
        assert member.flat_state["square_avg"].data_ptr() == state["square_avg"].data_ptr()
        assert member.flat_state["step"] is state["step"]  # not parameter-shaped: as it is
    assert cache.reuse(params, grads, states) is chunks


def test_new_gradients_repoint_their_own_aliases():
    params, grads, states = _members()
    cache, chunks = _built(params, grads, states)
    aliases = [member.flat_grad for chunk in chunks for member in chunk.members]
    new = [grad * 2 for grad in grads]  # as zero_grad(set_to_none=True) and backward give
    assert cache.reuse(params, new, states) is chunks
    for alias, grad in zip(aliases, new, strict=True):
        assert alias.data_ptr() == grad.data_ptr()
        assert torch.equal(alias, grad.reshape(-1))
    assert [member.flat_grad for chunk in chunks for member in chunk.members] == aliases


def test_a_dropped_gradient_is_not_kept_alive():
    params, grads, states = _members()
    cache, chunks = _built(params, grads, states)
    gradient = weakref.ref(grads[0])
    member = chunks[0].members[0]
    del grads[0]
    gc.collect()
    assert gradient() is None
    assert member.flat_grad.untyped_storage().nbytes() == 0 and member.grad_pointer is None


def test_a_gradient_on_reused_memory_is_pointed_at_again():
    """A new gradient may get the freed gradient's memory: the alias must point at it anyway."""
    params, grads, states = _members()
    cache, chunks = _built(params, grads, states)
    grads[0] = None
    gc.collect()
    grads[0] = torch.full(SHAPES[0], 3.0)
    assert cache.reuse(params, grads, states) is chunks
    assert torch.equal(chunks[0].members[0].flat_grad, torch.full((12,), 3.0))


@pytest.mark.parametrize(
    "change",
    [
        "state entry assigned",
        "state entry added",
        "state dict replaced",
        "parameter moved",
        "parameter without gradient",
        "non-contiguous gradient",
    ],
)
def test_changes_build_the_chunks_again(change):
    params, grads, states = _members()
    cache, _ = _built(params, grads, states)
    if change == "state entry assigned":
        states[1]["square_avg"] = torch.zeros(SHAPES[1])
    elif change == "state entry added":
        states[2]["momentum_buffer"] = torch.zeros(SHAPES[2])
    elif change == "state dict replaced":
        states[0] = dict(states[0])
    elif change == "parameter moved":
        params[1].data = params[1].data.clone()
    elif change == "parameter without gradient":
        del params[2], grads[2], states[2]
    else:
        grads[0] = torch.randn(4, 3).t()
    assert cache.reuse(params, grads, states) is None


def test_a_non_contiguous_parameter_steps_alone():
    params, grads, states = _members()
    params[0] = params[0].detach().t().contiguous().t()
    grads[0] = grads[0].t().contiguous().t()
    states[0]["square_avg"] = torch.zeros_like(params[0])
    cache, chunks = _built(params, grads, states)
    assert cache.alone == [0] and [len(chunk.members) for chunk in chunks] == [2]


def test_entries_the_update_assigns_reach_the_state_without_a_rebuild():
    params, grads, states = _members()
    cache, chunks = _built(params, grads, states)
    member = chunks[0].members[1]
    member.flat_state["lr_max"] = torch.tensor(0.5)  # as Schedule-Free's update assigns it
    member.flat_state["buffer"] = torch.ones(5)  # a new parameter-sized buffer, 1-D
    member.write_back()
    assert states[1]["lr_max"] is member.flat_state["lr_max"]
    assert states[1]["buffer"].shape == SHAPES[1]
    assert cache.reuse(params, grads, states) is chunks


# ----------------------------------------------------------------------------- compiled


def _loss(params):
    return sum(wavy_loss(p.reshape(-1)) * (i + 1) for i, p in enumerate(params))


def _run(fused, steps=24, between=None):
    """RMSprop (momentum, centered: three buffers) for ``steps`` steps; ``between(step,
    params, optimizer)`` changes something after a step. zero_grad gives new gradients."""
    params = _params()
    optimizer = optim.RMSprop(params, lr=0.01, momentum=0.5, centered=True, fused=fused)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        _loss(params).backward()
        optimizer.step()
        if between:
            between(step, params, optimizer)
    return params, optimizer


@pytest.fixture
def builds(monkeypatch):
    """How many times the chunks were built."""
    calls = []
    original = ChunkCache.build

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ChunkCache, "build", counting)
    return calls


def _assert_close(fused, eager):
    for a, b in zip(fused, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6


@pytest.mark.compile
def test_new_gradients_every_step_build_once_and_compile_once(builds):
    eager, _ = _run(False)
    graphs = {}

    def count_graphs(step, params, optimizer):
        graphs[step] = compiled_graphs()

    reset_compiled_graphs()
    fused, _ = _run(True, between=count_graphs)
    assert len(builds) == 1
    assert graphs[24] == graphs[2], "recompiled after the first compiled step"
    _assert_close(fused, eager)


def _lose_gradient(step, params, optimizer):
    if step == 8:  # the next step sees the second parameter without a gradient
        params[1].grad = None
        params[1].requires_grad_(False)
    if step == 9:
        params[1].requires_grad_(True)


def _write_state(step, params, optimizer):
    if step == 8:
        optimizer.state[params[0]]["square_avg"] = torch.full_like(params[0], 0.5)
    if step == 12:
        optimizer.state[params[2]]["momentum_buffer"].zero_()  # in place: seen through the alias


def _reload_state(step, params, optimizer):
    if step == 8:
        optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))


def _move_parameters(step, params, optimizer):
    if step == 8:
        torch.nn.utils.vector_to_parameters(
            torch.nn.utils.parameters_to_vector(params) * 0.5, params
        )


@pytest.mark.compile
@pytest.mark.parametrize(
    ("between", "expected_builds"),
    [(_lose_gradient, 3), (_write_state, 2), (_reload_state, 2), (_move_parameters, 2)],
    ids=["parameter loses its gradient", "state written", "load_state_dict", "parameters moved"],
)
def test_changes_between_steps_give_the_eager_result(builds, between, expected_builds):
    eager, _ = _run(False, between=between)
    fused, optimizer = _run(True, between=between)
    assert len(builds) == expected_builds
    _assert_close(fused, eager)
    for param in fused:
        assert optimizer.state[param]["square_avg"].shape == param.shape
