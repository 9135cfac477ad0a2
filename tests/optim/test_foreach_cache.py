"""foreach=True keeps each group's buckets between steps (``_multi_tensor.BucketCache``): found
once, reused while nothing they came from changed, found again when it did. Every case also
checks that the results stay bit-identical to the single-tensor loop."""

from __future__ import annotations

import copy

import pytest
import torch
from harness import random_params, wavy_loss

import descentlab.optim as optim
from descentlab.optim import _multi_tensor
from descentlab.optim._multi_tensor import BucketCache, StateList, TensorList

SHAPES = [(3, 4), (5,), (2, 3), ()]


def _params(dtype=torch.float32):
    return random_params(SHAPES, seed=3, dtype=dtype)


def _step(optimizer, params):
    optimizer.zero_grad()
    sum(wavy_loss(p.reshape(-1)) * (i + 1) for i, p in enumerate(params)).backward()
    optimizer.step()


@pytest.fixture
def searches(monkeypatch):
    """How many times the buckets were found from scratch."""
    calls = []
    original = _multi_tensor._find_buckets

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_multi_tensor, "_find_buckets", counting)
    return calls


def _pair(key, **settings):
    """The same optimizer on the same parameters, single-tensor and multi-tensor."""
    runs = []
    for foreach in (False, True):
        params = _params()
        entry = optim.spec(key)
        runs.append(
            (params, entry.factory(params, **{**entry.defaults, **settings}, foreach=foreach))
        )
    return runs


def _assert_same(runs):
    (single, single_optimizer), (multi, multi_optimizer) = runs
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a, b)
        for name, value in single_optimizer.state[a].items():
            other = multi_optimizer.state[b][name]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


def _step_both(runs, before=None):
    for params, optimizer in runs:
        if before:
            before(params, optimizer)
        _step(optimizer, params)


@pytest.mark.parametrize("key", ["adam", "asgd", "schedulefree_adamw", "nadam"])
def test_buckets_are_found_once_and_reused(key, searches):
    runs = _pair(key)
    for _ in range(6):
        _step_both(runs)
    assert len(searches) == 1
    _assert_same(runs)


def test_a_state_entry_that_changes_kind_finds_them_again(searches):
    """SGD's momentum buffer is None before the first step and a tensor after it."""
    runs = _pair("momentum")
    for _ in range(5):
        _step_both(runs)
    assert len(searches) == 2
    _assert_same(runs)


def test_a_parameter_without_gradient_finds_them_again(searches):
    runs = _pair("adam")
    _step_both(runs)

    def drop_second_gradient(params, optimizer):
        optimizer.zero_grad()
        sum(wavy_loss(p.reshape(-1)) for p in params).backward()
        params[1].grad = None
        optimizer.step()

    for params, optimizer in runs:
        drop_second_gradient(params, optimizer)
    assert len(searches) == 2
    for _ in range(3):  # the second parameter is now a step behind: a bucket of its own
        _step_both(runs)
    assert len(searches) == 3
    _assert_same(runs)


@pytest.mark.parametrize(
    "change",
    [
        lambda state: state["step"].fill_(40.0),  # written in place: its version counter moves
        lambda state: state.__setitem__("step", torch.tensor(40.0)),  # a new object
    ],
    ids=["in-place", "assigned"],
)
def test_a_step_counter_changed_from_outside_is_seen(change, searches):
    runs = _pair("adam")
    for _ in range(3):
        _step_both(runs)

    def change_first(params, optimizer):
        change(optimizer.state[params[0]])

    _step_both(runs, before=change_first)
    assert len(searches) == 2
    for _ in range(2):
        _step_both(runs)
    _assert_same(runs)
    multi, multi_optimizer = runs[1]
    assert multi_optimizer.state[multi[0]]["step"].item() == 43.0
    assert multi_optimizer.state[multi[1]]["step"].item() == 6.0


def test_a_python_number_entry_changed_from_outside_is_seen(searches):
    """Schedule-Free keeps ``lr_max`` and ``weight_sum`` per parameter."""
    runs = _pair("schedulefree_sgd")
    for _ in range(3):
        _step_both(runs)
    key = next(
        name
        for name, value in runs[1][1].state[runs[1][0][0]].items()
        if not isinstance(value, torch.Tensor) or value.dim() == 0
        if name != "step"
    )

    def bump(params, optimizer):
        entry = optimizer.state[params[0]][key]
        optimizer.state[params[0]][key] = (
            entry * 3 if not isinstance(entry, torch.Tensor) else (entry * 3)
        )

    _step_both(runs, before=bump)
    assert len(searches) == 2
    _step_both(runs)
    _assert_same(runs)


def test_load_state_dict_drops_the_buckets(searches):
    """A state_dict whose parameters are at different step counts: the cached single bucket of
    the optimizer it is loaded into would be wrong."""
    donor_params = _params()
    donor = optim.Adam(donor_params, foreach=False)
    for step in range(4):
        donor.zero_grad()
        sum(wavy_loss(p.reshape(-1)) for p in donor_params).backward()
        if step % 2:
            donor_params[2].grad = None
        donor.step()
    saved = copy.deepcopy(donor.state_dict())

    runs = _pair("adam")
    for _ in range(3):
        _step_both(runs)
    found = len(searches)
    for foreach, (_, optimizer) in zip((False, True), runs, strict=True):
        optimizer.load_state_dict(copy.deepcopy(saved))
        optimizer.param_groups[0]["foreach"] = foreach  # the donor's groups carry its flag
    for _ in range(3):
        _step_both(runs)
    assert len(searches) == found + 1
    _assert_same(runs)
    multi, multi_optimizer = runs[1]
    assert multi_optimizer.state[multi[2]]["step"].item() == 5.0
    assert multi_optimizer.state[multi[1]]["step"].item() == 7.0


def test_a_parameter_cast_to_another_dtype_finds_them_again(searches):
    runs = _pair("rmsprop")
    for _ in range(2):
        _step_both(runs)

    def cast_first(params, optimizer):
        params[0].data = params[0].data.double()
        for name, value in optimizer.state[params[0]].items():
            if isinstance(value, torch.Tensor) and value.dim():
                optimizer.state[params[0]][name] = value.double()

    _step_both(runs, before=cast_first)
    assert len(searches) == 2
    _step_both(runs)
    _assert_same(runs)
    assert runs[1][0][0].dtype == torch.float64


def test_groups_keep_their_own_buckets(searches):
    runs = []
    for foreach in (False, True):
        params = _params()
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.01}]
        runs.append((params, optim.Adam(groups, foreach=foreach)))
    for _ in range(4):
        _step_both(runs)
    assert len(searches) == 2
    _assert_same(runs)


def test_an_update_that_writes_step_counters_apart_drops_the_buckets():
    """The cache trusts a bucket's counters to stay equal; a body that makes them differ (not one
    of ours does) must make the next step read them all again."""
    params = [torch.zeros(2), torch.zeros(3)]
    states = [{"step": torch.tensor(1.0)}, {"step": torch.tensor(1.0)}]
    grads = [torch.ones(2), torch.ones(3)]
    cache = BucketCache()

    def count_apart(params, grads, states):
        counters = states[0]["step"]
        assert counters.uniform and counters.item() == 1.0
        counters.add_(TensorList([torch.tensor(1.0), torch.tensor(2.0)]))

    _multi_tensor.multi_tensor_update(count_apart, params, grads, states, cache)
    assert cache.buckets is None
    buckets = cache.buckets_for(params, grads, states)
    assert [bucket.indices for bucket in buckets] == [[0], [1]]


def test_state_list_marks_only_its_uniform_keys():
    states = [{"step": torch.tensor(2.0), "m": torch.zeros(2)}] * 2
    view = StateList(states, uniform_keys=["step"])
    assert view["step"].uniform and not view["m"].uniform
    assert view.kept_uniform()
    view["step"] = TensorList([torch.tensor(1.0), torch.tensor(5.0)])
    assert not view.kept_uniform()
    with pytest.raises(ValueError, match="tensor for some parameters only"):
        StateList([{"m": torch.zeros(2)}, {"m": None}])["m"]


def test_numbers_wrapped_once_give_the_bits_of_the_per_tensor_loop():
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        tensors = [torch.randn(shape, generator=generator).to(dtype) for shape in ((7,), (2, 5))]
        for number in (0.999, 1e-8, 1 / 3, -2.5e-5, 3):
            checks = [
                (TensorList(tensors) * number, [t * number for t in tensors]),
                (TensorList(tensors) / number, [t / number for t in tensors]),
                (TensorList(tensors) + number, [t + number for t in tensors]),
                (TensorList(tensors) - number, [t - number for t in tensors]),
                (number - TensorList(tensors), [number - t for t in tensors]),
                (number / TensorList(tensors), [number / t for t in tensors]),
            ]
            for result, expected in checks:
                for got, want in zip(result.tensors, expected, strict=True):
                    assert got.dtype == want.dtype and torch.equal(got, want), (dtype, number)


def test_clamp_between_numbers_gives_the_bits_of_the_per_tensor_loop():
    values = [torch.tensor([-2.0, 0.5, float("nan"), 3.0]), torch.tensor([[1e-7, -1e-7]])]
    for low, high in ((-1.0, 1.0), (0.0, None), (None, 0.25), (2.0, 1.0)):
        expected = [torch.clamp(v, low, high) for v in values]
        got = torch.clamp(TensorList(values), low, high)
        for g, e in zip(got.tensors, expected, strict=True):
            assert torch.equal(g.nan_to_num(7.0), e.nan_to_num(7.0)), (low, high)
        in_place = TensorList([v.clone() for v in values])
        assert in_place.clamp_(min=low, max=high) is in_place
        for g, e in zip(in_place.tensors, expected, strict=True):
            assert torch.equal(g.nan_to_num(7.0), e.nan_to_num(7.0)) and g.dtype == e.dtype
    with pytest.raises(RuntimeError):
        TensorList(values).clamp()
