"""foreach=True: the multi-tensor path runs each elementwise algorithm's one update over lists,
bit-identical on the CPU to the single-tensor loop, but for the methods in ``REORDERED``, whose
foreach form takes the same formula in fewer passes and so rounds differently (float32: within
a few units in the last place after 12 steps; float64: within 1e-12); tensor hyperparameters fall
back to the loop."""

from __future__ import annotations

import pytest
import torch
from harness import random_params, wavy_loss

import descentlab.optim as optim
from descentlab.optim import _multi_tensor
from descentlab.optim._multi_tensor import StateList, TensorList

ELEMENTWISE = [
    key for key in optim.names() if getattr(optim.spec(key).factory, "elementwise", False)
]
#: Settings beyond the registry's defaults that switch on other branches of the update.
VARIANTS = {
    "sgd": [{"weight_decay": 0.1, "maximize": True}],
    "momentum": [{"dampening": 0.3, "weight_decay": 0.01}],
    "adagrad": [{"lr_decay": 0.1, "weight_decay": 0.05}],
    "adadelta": [{"rho": 0.8, "weight_decay": 0.1, "maximize": True}],
    "rmsprop": [{"centered": True, "momentum": 0.5, "weight_decay": 0.01}],
    "adam": [{"amsgrad": True, "weight_decay": 0.1, "maximize": True}],
    "adamw": [{"amsgrad": True}],
    "nadam": [{"decoupled_weight_decay": True, "weight_decay": 0.1}],
    "radam": [
        {"decoupled_weight_decay": True, "weight_decay": 0.1},
        {"weight_decay": 0.1, "maximize": True, "betas": (0.8, 0.9)},
    ],
    "quickprop": [{"mu": 2.0, "weight_decay": 0.1}],
    "rprop": [{"variant": "rprop-"}, {"variant": "rprop+"}, {"variant": "irprop+"}],
    "yogi": [{"bias_correction": False, "weight_decay": 0.1}],
    "asgd": [{"t0": 3, "weight_decay": 0.1}],
    "lion": [{"weight_decay": 0.1, "maximize": True}],
    "adabelief": [{"decoupled": False, "weight_decay": 0.1}],
    "schedulefree_adamw": [{"warmup_steps": 3, "weight_decay": 0.1, "r": 1.0}],
    "schedulefree_sgd": [{"warmup_steps": 3, "weight_decay": 0.1}],
}
#: Methods whose foreach form computes the same formula in another order, and how.
REORDERED = {
    "adadelta": "one root of the quotient instead of the quotient of two roots",
    "radam": "the number factors multiplied together first, then one addcdiv_",
}
CASES = [(key, {}) for key in ELEMENTWISE] + [
    (key, variant) for key, variants in VARIANTS.items() for variant in variants
]
SHAPES = [(3, 4), (5,), (), (2, 1, 3)]


def _params(dtype=torch.float32):
    return random_params(SHAPES, seed=7, dtype=dtype)


def _train(key, settings, foreach, steps=12, skip_every=0, params=None):
    """Steps on a sum of per-parameter losses; with ``skip_every`` one parameter's gradient is
    left out every so many steps, so parameters reach different step counts."""
    params = params or _params()
    entry = optim.spec(key)
    optimizer = entry.factory(params, **{**entry.defaults, **settings}, foreach=foreach)

    def closure(skip):
        optimizer.zero_grad()
        loss = sum(wavy_loss(p.reshape(-1)) * (i + 1) for i, p in enumerate(params))
        loss.backward()
        if skip:
            params[1].grad = None
        return loss

    for step in range(steps):
        skip = bool(skip_every) and step % skip_every == 0
        optimizer.step(lambda skip=skip: closure(skip))
    return params, optimizer


def _compare(single, multi, single_optimizer, multi_optimizer, same):
    """Parameters and every state entry: ``same(a, b)`` for tensors, == for numbers."""
    for a, b in zip(single, multi, strict=True):
        assert same(a, b)
    for a, b in zip(single, multi, strict=True):
        for name, value in single_optimizer.state[a].items():
            other = multi_optimizer.state[b][name]
            if isinstance(value, torch.Tensor):
                assert same(value, other), name
            else:
                assert value == other, name


def _within(rtol, atol):
    return lambda a, b: torch.allclose(a, b, rtol=rtol, atol=atol) and a.dtype == b.dtype


EXACT_CASES = [(key, settings) for key, settings in CASES if key not in REORDERED]
REORDERED_CASES = [(key, settings) for key, settings in CASES if key in REORDERED]


@pytest.mark.parametrize(
    ("key", "settings"), EXACT_CASES, ids=[f"{k}{s or ''}" for k, s in EXACT_CASES]
)
def test_bit_identical_to_the_single_tensor_loop(key, settings):
    single, single_optimizer = _train(key, settings, foreach=False, skip_every=4)
    multi, multi_optimizer = _train(key, settings, foreach=True, skip_every=4)
    _compare(single, multi, single_optimizer, multi_optimizer, torch.equal)


@pytest.mark.parametrize(
    ("key", "settings"), REORDERED_CASES, ids=[f"{k}{s or ''}" for k, s in REORDERED_CASES]
)
def test_reordered_forms_differ_from_the_loop_by_rounding_only(key, settings):
    """float32: a few units in the last place after 12 steps (values are of order 1); float64:
    1e-12, so the foreach form is the same formula, not a near one."""
    single, single_optimizer = _train(key, settings, foreach=False, skip_every=4)
    multi, multi_optimizer = _train(key, settings, foreach=True, skip_every=4)
    _compare(single, multi, single_optimizer, multi_optimizer, _within(1e-5, 1e-6))
    single, single_optimizer = _train(
        key, settings, foreach=False, skip_every=4, params=_params(torch.float64)
    )
    multi, multi_optimizer = _train(
        key, settings, foreach=True, skip_every=4, params=_params(torch.float64)
    )
    _compare(single, multi, single_optimizer, multi_optimizer, _within(1e-12, 1e-14))


def test_the_multi_tensor_path_really_runs(monkeypatch):
    calls = []
    original = _multi_tensor.multi_tensor_update

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(_multi_tensor, "multi_tensor_update", counting)
    _train("adam", {}, foreach=True, steps=2)
    assert calls == [len(SHAPES), len(SHAPES)]
    calls.clear()
    _train("adam", {}, foreach=False, steps=2)
    _train("adam", {}, foreach=None, steps=2)  # torch's default: only on CUDA
    assert calls == []


def test_one_foreach_call_per_operation_after_the_first_step(monkeypatch):
    """The update's body runs once per bucket: one ``_foreach_lerp_`` call per step for the
    three parameters with dimensions, and one for the 0-d parameter (which steps alone)."""
    params, optimizer = _train("adam", {}, foreach=True, steps=1)
    seen = []
    original = torch._foreach_lerp_

    def counting(*args, **kwargs):
        seen.append(len(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "_foreach_lerp_", counting)
    for param in params:
        param.grad = torch.ones_like(param)
    optimizer.step()
    assert sorted(seen) == [1, len(SHAPES) - 1]


def test_mixed_dtypes_split_into_buckets_and_stay_exact():
    def mixed():
        params = _params()
        params[2] = params[2].detach().double().requires_grad_()
        return params

    single, _ = _train("adam", {}, foreach=False, params=mixed())
    multi, _ = _train("adam", {}, foreach=True, params=mixed())
    assert multi[2].dtype == torch.float64
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("key", ["adam", "rmsprop", "lion"])
def test_tensor_hyperparameters_and_stacked_runs_take_the_single_tensor_loop(key, monkeypatch):
    """Per-run lr of shape (K, 1) on a stacked (K, D) parameter: foreach=True falls back to the
    loop (whose broadcasting it needs) and still equals it."""
    calls = []
    monkeypatch.setattr(_multi_tensor, "multi_tensor_update", lambda *a, **k: calls.append(1))
    lr = torch.tensor([[1e-3], [1e-2], [3e-2]])
    results = []
    for foreach in (False, True):
        stacked = torch.linspace(-1, 1, 12).reshape(3, 4).requires_grad_()
        optimizer = optim.create(
            key, [{"params": [stacked], "stack_dims": 1}], lr=lr, foreach=foreach
        )
        for _ in range(5):
            optimizer.zero_grad()
            wavy_loss(stacked).sum().backward()
            optimizer.step()
        results.append(stacked.detach())
    assert calls == []
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0][0], results[0][1])


def test_stacked_runs_with_plain_numbers_take_the_multi_tensor_path():
    results = []
    for foreach in (False, True):
        stacked = [torch.linspace(-1, 1, 12).reshape(3, 4).requires_grad_()]
        optimizer = optim.create("nadam", [{"params": stacked, "stack_dims": 1}], foreach=foreach)
        for _ in range(5):
            optimizer.zero_grad()
            wavy_loss(stacked[0]).sum().backward()
            optimizer.step()
        results.append(stacked[0].detach())
    assert torch.equal(results[0], results[1])


def test_foreach_and_fused_together_are_refused():
    with pytest.raises(ValueError, match="foreach=True and fused=True"):
        optim.Adam([torch.zeros(2, requires_grad=True)], foreach=True, fused=True)


def test_foreach_must_be_a_flag():
    with pytest.raises(TypeError, match="foreach must be True, False or None"):
        optim.Lion([torch.zeros(2, requires_grad=True)], foreach="yes")


def test_tensor_list_arithmetic_matches_each_tensor():
    a = [torch.rand(3), torch.rand(2, 2)]
    b = [torch.rand(3) + 0.5, torch.rand(2, 2) + 0.5]
    left, right = TensorList(a), TensorList(b)
    expected = [(1 - x) / y * 2 + x**2 for x, y in zip(a, b, strict=True)]
    result = (1 - left) / right * 2 + left**2
    assert all(torch.equal(r, e) for r, e in zip(result.tensors, expected, strict=True))
    out = TensorList([torch.empty(3), torch.empty(2, 2)])
    torch.maximum(left, right, out=out)
    assert all(
        torch.equal(o, torch.maximum(x, y)) for o, x, y in zip(out.tensors, a, b, strict=True)
    )
    assert torch.where(left > 0.5, left, 0.0).tensors[0].shape == (3,)


def test_tensor_list_refuses_values_that_differ_between_elements():
    values = TensorList([torch.tensor(1.0), torch.tensor(2.0)])
    with pytest.raises(ValueError, match="item"):
        values.item()
    with pytest.raises(TypeError, match="ambiguous"):
        bool(values)
    assert TensorList([torch.tensor(3.0), torch.tensor(3.0)]).item() == 3.0


def test_state_list_reads_and_writes_every_state():
    states = [{"m": torch.zeros(2), "count": 1.5}, {"m": torch.ones(3), "count": 1.5}]
    view = StateList(states)
    assert isinstance(view["m"], TensorList) and view["count"] == 1.5
    view["m"] = view["m"] + 1
    view["count"] = 2.0
    assert torch.equal(states[1]["m"], torch.full((3,), 2.0))
    assert states[0]["count"] == 2.0 and "m" in view and view.get("missing") is None


def _moved_in_place(key, entry, index, steps=6, **settings):
    """Parameters and the moved entry after ``steps`` steps in which, before the fourth, the
    ``entry`` of parameter ``index`` gets new memory in place (``.data = ...``: the same object,
    its version counter unchanged), a buffer then also written through the tensor itself."""
    runs = []
    for foreach in (False, True):
        params = [torch.nn.Parameter(torch.linspace(-1, 2, n)) for n in (3, 2)]
        optimizer = optim.create(key, params, foreach=foreach, **settings)
        for t in range(steps):
            for i, p in enumerate(params):
                p.grad = torch.full_like(p, 0.3 * (t + 1) * (i + 1)) - 0.1 * p.detach()
            if t == 3:
                value = optimizer.state[params[index]][entry]
                if value.dim():
                    value.data = value.data.clone()
                    value.mul_(0.5)
                else:
                    value.data = value.data + 90
            optimizer.step()
        runs.append((params, optimizer.state[params[index]][entry]))
    (eager, eager_entry), (listed, listed_entry) = runs
    for a, b in zip(listed, eager, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(listed_entry, eager_entry)


def test_a_quickprop_buffer_given_new_memory_in_place_leaves_its_flat_tensor():
    """Quickprop's foreach form keeps its buffers as parts of one flat tensor; a part moved by
    ``.data`` still names that tensor as its base, and the first part's offset is 0 either way."""
    _moved_in_place("quickprop", "prev_update", index=0)
    _moved_in_place("quickprop", "prev_grad", index=1)


def test_a_step_counter_given_new_memory_in_place_is_read_again():
    """A bucket's step counters are read once while they stay the same tensors at the same
    version; ``.data = ...`` keeps both, so their memory is checked too."""
    _moved_in_place("adam", "step", index=1, lr=0.1)
    _moved_in_place("asgd", "eta", index=0)
