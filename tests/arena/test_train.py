"""Stacked training: K configurations as one model equal each configuration trained alone, every
option of the settings does what it says, and bad settings name themselves."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab.arena.problem import from_model, from_task
from descentlab.arena.train import Settings, train

SHORT = Settings(epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def logreg():
    return from_task("digits-logreg")


def test_batched_configurations_equal_the_same_configurations_alone(logreg):
    configs = [{"lr": 0.001}, {"lr": 0.01}, {"lr": 0.1}]
    together, _ = train(logreg, "adam", configs, [0, 1, 2], SHORT)
    for config, seed, joint in zip(configs, [0, 1, 2], together, strict=True):
        (alone,), _ = train(logreg, "adam", [config], [seed], SHORT)
        assert joint.hyperparameters == alone.hyperparameters == config
        torch.testing.assert_close(
            torch.tensor(joint.train_loss), torch.tensor(alone.train_loss), rtol=1e-5, atol=1e-6
        )
        assert joint.test_metric == pytest.approx(alone.test_metric, abs=1e-6)


def test_each_configuration_has_its_own_seed_and_batch_order(logreg):
    runs, _ = train(logreg, "sgd", [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}], [5, 6, 5], SHORT)
    assert runs[0].train_loss == runs[2].train_loss  # same seed, same everything
    assert runs[0].train_loss != runs[1].train_loss


def test_modes_count_their_steps(logreg):
    rows = logreg.train.inputs.shape[0]
    (batch,), _ = train(logreg, "sgd", [{"lr": 0.5}], [0], Settings(epochs=2, batch_size=None))
    (mini,), _ = train(logreg, "sgd", [{"lr": 0.5}], [0], Settings(epochs=1, batch_size=100))
    assert batch.steps == 2 and batch.steps_per_epoch == 1
    assert mini.steps == math.ceil(rows / 100)


def test_a_diverging_configuration_is_marked_and_does_not_touch_the_others(logreg):
    runs, _ = train(logreg, "sgd", [{"lr": 0.1}, {"lr": 1e6}], [0, 0], SHORT)
    assert not runs[0].diverged and runs[1].diverged
    assert runs[1].diverged_at is not None
    (alone,), _ = train(logreg, "sgd", [{"lr": 0.1}], [0], SHORT)
    assert runs[0].train_loss == pytest.approx(alone.train_loss, rel=1e-5)


def test_clipping_early_stopping_and_layer_norms(logreg):
    (clipped,), _ = train(
        logreg, "sgd", [{"lr": 0.5}], [0], Settings(epochs=2, batch_size=64, clip=1e-3)
    )
    (free,), _ = train(logreg, "sgd", [{"lr": 0.5}], [0], SHORT)
    assert clipped.final_train_loss > free.final_train_loss  # tiny steps learn less
    assert set(free.grad_norms) == {"0.weight", "0.bias"} or free.grad_norms
    assert all(len(norms) == 2 and all(n > 0 for n in norms) for norms in free.grad_norms.values())
    settings = Settings(epochs=6, batch_size=64, early_stopping=1)
    (stopped,), _ = train(logreg, "sgd", [{"lr": 1e-6}], [0], settings)
    assert stopped.best_epoch is not None and len(stopped.val_loss) <= 6


def test_user_model_with_a_loss_that_does_not_fit_is_named():
    inputs, targets = torch.randn(40, 5), torch.full((40,), 2)
    with pytest.raises(ValueError, match="the loss does not fit the model's output"):
        from_model(  # two logits against the class index 2
            lambda: torch.nn.Linear(5, 2),
            torch.nn.functional.cross_entropy,
            (inputs, targets),
            (inputs, targets),
        )
    with pytest.raises(ValueError, match="does not accept the training inputs"):
        from_model(
            lambda: torch.nn.Linear(7, 3),
            torch.nn.functional.cross_entropy,
            (inputs, targets),
            (inputs, targets),
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(epochs=0, batch_size=8), "Invalid epochs"),
        (Settings(epochs=1, batch_size=0), "Invalid batch_size"),
        (Settings(epochs=1, batch_size=8, dropout=1.5), "Invalid dropout"),
        (Settings(epochs=1, batch_size=8, init="zeros"), "Invalid init"),
        (Settings(epochs=1, batch_size=8, clip=-1.0), "Invalid clip"),
    ],
)
def test_bad_settings_are_named(logreg, settings, message):
    with pytest.raises(ValueError, match=message):
        train(logreg, "sgd", [{"lr": 0.1}], [0], settings)
