"""The registry: every key of the course, each with a complete spec that builds its optimizer."""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as optim

COURSE_KEYS = [
    "sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw",
    "nadam", "adamax", "radam", "rprop", "yogi", "quickprop", "newton", "bfgs", "lbfgs",
]  # fmt: skip


def test_names_lists_every_course_key_in_teaching_order():
    assert optim.names(family="classic") == COURSE_KEYS


@pytest.mark.parametrize("key", optim.names())
def test_spec_is_complete(key):
    entry = optim.spec(key)
    assert entry.key == key
    assert entry.title and entry.summary and entry.teaches
    assert entry.paper.authors and entry.paper.title and 1900 < entry.paper.year < 2100
    assert entry.equations and all(isinstance(line, str) and line for line in entry.equations)
    assert entry.family in ("classic", "modern")
    names = [h.name for h in entry.hyperparameters]
    assert len(names) == len(set(names)), "duplicate hyperparameter"
    for hyper in entry.hyperparameters:
        assert hyper.meaning, hyper.name
        if hyper.tuned and hyper.scale != "choice":
            assert hyper.low <= hyper.default <= hyper.high, (hyper.name, hyper.default)
    assert any(h.tuned for h in entry.hyperparameters), "nothing for the arena to tune"


@pytest.mark.parametrize("key", optim.names())
def test_create_builds_the_spec_defaults_and_state_names_match(key):
    entry = optim.spec(key)
    param = torch.randn(3, 2, requires_grad=True)
    optimizer = optim.create(key, [param])
    assert isinstance(optimizer, entry.factory)
    assert isinstance(optimizer, torch.optim.Optimizer)
    group = optimizer.param_groups[0]
    for argument, value in entry.defaults.items():
        assert group[argument] == value, argument

    def closure():
        optimizer.zero_grad()
        loss = (param**2).sum() + param.sum()
        loss.backward(create_graph=entry.order > 1)
        return loss

    optimizer.step(closure)
    stored = set(optimizer.state[param])
    for buffer in entry.state:
        # Optional buffers (amsgrad, centered...) may be absent with the defaults.
        if buffer.name in stored:
            assert isinstance(optimizer.state[param][buffer.name], torch.Tensor | type(None))
    assert stored or not entry.state


def test_momentum_and_nesterov_are_sgd_configured():
    param = torch.zeros(2, requires_grad=True)
    momentum = optim.create("momentum", [param])
    nesterov = optim.create("nesterov", [param], lr=0.1)
    assert isinstance(momentum, optim.SGD) and momentum.defaults["momentum"] == 0.9
    assert nesterov.defaults["nesterov"] and nesterov.defaults["lr"] == 0.1


def test_spec_names_and_constructor_names_both_work():
    param = torch.zeros(2, requires_grad=True)
    assert optim.create("adam", [param], beta2=0.99).defaults["betas"] == (0.9, 0.99)
    assert optim.create("adam", [param], betas=(0.8, 0.9)).defaults["betas"] == (0.8, 0.9)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; choose one of sgd"):
        optim.spec("adamm")
    with pytest.raises(ValueError, match="adam has no hyperparameter 'momentum'"):
        optim.create("adam", [torch.zeros(1, requires_grad=True)], momentum=0.9)
    with pytest.raises(TypeError, match="optimizer name must be a string"):
        optim.spec(3)
    with pytest.raises(ValueError, match="unknown family"):
        optim.names(family="ancient")


def test_grid_spans_the_tuning_range_on_its_scale():
    lr = optim.spec("adam").hyperparameter("lr")
    grid = lr.grid(5)
    assert grid[0] == pytest.approx(lr.low) and grid[-1] == pytest.approx(lr.high)
    ratios = [b / a for a, b in zip(grid, grid[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # evenly spaced in log
    beta2 = optim.spec("adam").hyperparameter("beta2")
    gaps = [1 - v for v in beta2.grid(3)]
    assert gaps[0] / gaps[1] == pytest.approx(gaps[1] / gaps[2])  # 1 - beta evenly in log
