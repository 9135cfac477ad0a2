"""The protocol end to end: equal budgets, reproducible recommendations, resumable storage, and
bad input named before any training starts."""

from __future__ import annotations

import pytest
import torch

from descentlab import arena
from descentlab.arena import protocol

FAST = {"epochs": 2, "progress": False, "notice": lambda message: None}


@pytest.fixture(scope="module")
def small():
    return arena.compare("digits-logreg", optimizers="sgd,adam,rprop", budget=3, seeds=2, **FAST)


def test_every_optimizer_gets_exactly_the_budget_and_the_seeds(small):
    for key in ("sgd", "adam", "rprop"):
        tune = small.runs_of(key, "tune")
        seeds = small.runs_of(key, "seed")
        assert len(tune) == 3 and len(seeds) == 2
        assert len({run.hyperparameters["lr"] for run in tune}) == 3
        chosen = protocol.choose(tune)
        assert all(run.hyperparameters == chosen.hyperparameters for run in seeds)
        assert sorted(run.seed for run in seeds) == [1, 2]  # fresh seeds, not the tuning seed 0
    # Rprop's spec says full-batch: one step per epoch, and the comparison says so.
    assert small.runs_of("rprop", "tune")[0].steps_per_epoch == 1
    assert any("rprop" in notice for notice in small.notices)


def test_the_recommendation_names_the_best_with_its_evidence(small):
    recommendation = small.recommendation
    ranked = [summary.optimizer for summary in small.summaries]
    assert recommendation.best == ranked[0]
    assert recommendation.runner_up == ranked[1]
    assert small.summaries[0].title in recommendation.text
    assert len(recommendation.evidence) == 3
    assert recommendation.lr_range is not None


def test_the_same_seeds_give_the_same_recommendation(small):
    again = arena.compare("digits-logreg", optimizers="sgd,adam,rprop", budget=3, seeds=2, **FAST)
    assert again.recommendation.text == small.recommendation.text
    assert [r.train_loss for r in again.runs] == [r.train_loss for r in small.runs]


def test_a_stored_comparison_resumes_without_training_again(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = arena.compare("toy2d", optimizers="adam", budget=2, seeds=1, storage=url, **FAST)
    from descentlab.arena import study

    def refuse(*args, **kwargs):
        raise AssertionError("a finished comparison trained again")

    monkeypatch.setattr(study, "train", refuse)
    second = arena.compare("toy2d", optimizers="adam", budget=2, seeds=1, storage=url, **FAST)
    assert second.to_json() == first.to_json()


def test_the_json_round_trip_keeps_everything(small):
    assert arena.Comparison.from_json(small.to_json()).to_json() == small.to_json()
    assert len(small.csv_rows()) == len(small.runs) == 3 * (3 + 2)


def test_a_users_own_model_is_compared():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 4, generator=generator)
    targets = (inputs[:, 0] + inputs[:, 1] > 0).long()
    result = arena.compare(
        lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)),
        torch.nn.functional.cross_entropy,
        (inputs[:150], targets[:150]),
        (inputs[150:], targets[150:]),
        optimizers=["adam", "sgd"],
        budget=2,
        seeds=1,
        metric="accuracy",
        **FAST,
    )
    assert result.recommendation.best in ("adam", "sgd")
    assert result.summaries[0].test_metric > 0.5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"task": "digits-resnet"}, "unknown task 'digits-resnet'"),
        ({"optimizers": "adam,adamm"}, "unknown optimizer 'adamm'"),
        ({"budget": 0}, "Invalid budget"),
        ({"seeds": 0}, "Invalid seeds"),
        ({"search": "random"}, "Invalid search"),
        ({"workers": 2}, "workers > 1 needs a database server"),
        ({"weight_decay": 0.1, "optimizers": "rprop"}, "rprop has no weight decay"),
        ({"storage": "not a url"}, "must be a database URL"),
    ],
)
def test_bad_input_is_named(arguments, message):
    arguments = {"task": "toy2d", "optimizers": "adam", "budget": 1, "seeds": 1, **arguments}
    task = arguments.pop("task")
    with pytest.raises(ValueError, match=message):
        arena.compare(task, **arguments, **FAST)


def test_an_unreachable_storage_is_named():
    with pytest.raises(ConnectionError, match="cannot open the storage postgresql"):
        arena.compare(
            "toy2d",
            optimizers="adam",
            budget=1,
            seeds=1,
            storage="postgresql+psycopg2://nobody@127.0.0.1:1/none",
            **FAST,
        )


def test_the_tpe_search_spends_the_budget_on_every_tuned_hyperparameter():
    first = arena.compare("toy2d", optimizers="adam", budget=3, seeds=1, search="tpe", **FAST)
    tune = first.runs_of("adam", "tune")
    assert len(tune) == 3
    assert {"lr", "beta1", "beta2"} <= set(tune[0].hyperparameters)
    assert len({run.hyperparameters["beta1"] for run in tune}) == 3
    again = arena.compare("toy2d", optimizers="adam", budget=3, seeds=1, search="tpe", **FAST)
    assert [r.hyperparameters for r in again.runs] == [r.hyperparameters for r in first.runs]


def test_a_trial_taken_by_a_worker_that_died_before_its_first_heartbeat_is_run(
    tmp_path, monkeypatch
):
    """The window between taking a trial and its first beat: the trial is adopted, goes stale
    and is retried, so the comparison still completes every planned trial exactly once."""
    from optuna.trial import TrialState

    from descentlab.arena import study

    monkeypatch.setattr(study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(study, "GRACE_SECONDS", 2)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    arguments = {"optimizers": "adam", "budget": 2, "seeds": 1, "storage": url, **FAST}
    original, deserted = study.create_or_load, []

    def create_and_desert(storage, name, items, seed=0):
        created = original(storage, name, items, seed)
        if not deserted:  # the first worker takes a trial and dies before any heartbeat
            deserted.append(name)
            created.ask()
            raise KeyboardInterrupt
        return created

    monkeypatch.setattr(study, "create_or_load", create_and_desert)
    with pytest.raises(KeyboardInterrupt):
        arena.compare("toy2d", **arguments)
    result = arena.compare("toy2d", **arguments)
    trials = study.optuna.load_study(study_name=deserted[0], storage=url).get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3 == len(result.runs)
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [0]  # deserted, retried
