"""Shared studies on a real PostgreSQL server: two workers finish one comparison with every planned
trial done exactly once, and a worker killed with SIGKILL and started again loses nothing and
repeats nothing that had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from descentlab import arena
from descentlab.arena import study

#: A comparison big enough to kill mid-way: 3 optimizers x (4 tuning points + 2 seeds).
ARGUMENTS = {"optimizers": "sgd,adam,rmsprop", "budget": 4, "seeds": 2, "epochs": 6}
PLANNED = 3 * (4 + 2)


@pytest.fixture
def database(postgres_url):
    """A fresh database on the session's server, so each test starts from an empty storage."""
    return _fresh_database(postgres_url)


def _plan_trials(url: str):
    """The one study's trials, read through a storage that is closed again before returning.

    The kill test polls ten times a second; an engine left to the garbage collector keeps its
    connection open, and under load the polls exhausted the server's connections.
    """
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
    try:
        (summary,) = optuna.get_all_study_summaries(storage=storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        return study.get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def _completed(trials):
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    keys = [
        (
            t.user_attrs["plan"]["optimizer"],
            t.user_attrs["plan"]["phase"],
            t.user_attrs["plan"]["index"],
        )
        for t in done
    ]
    return done, keys


def test_two_workers_finish_one_comparison_each_trial_once(database):
    result = arena.compare(
        "digits-logreg", storage=database, workers=2, batch=2, progress=False, **ARGUMENTS
    )
    done, keys = _completed(_plan_trials(database))
    assert len(done) == PLANNED
    assert max(Counter(keys).values()) == 1  # exactly once
    assert len(result.runs) == PLANNED
    alone = arena.compare("digits-logreg", progress=False, **ARGUMENTS)
    assert alone.recommendation.best == result.recommendation.best


def _worker(url: str) -> subprocess.Popen:
    code = (
        "from descentlab import arena; "
        f"arena.compare('digits-logreg', storage={url!r}, batch=2, progress=False, **{ARGUMENTS!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_worker_started_again_loses_and_repeats_nothing(database):
    # The tables first, so that the polls below never race the worker to create them.
    study.close_storage(study.open_storage(database))
    worker = _worker(database)
    deadline = time.monotonic() + 300
    finished_before: dict[int, float] = {}
    running_at_kill: list[int] = []
    while time.monotonic() < deadline:
        time.sleep(0.1)  # poll often: on a quiet machine a group of two trainings takes ~1 s
        try:
            trials = _plan_trials(database)
        except ValueError:  # the study is not created yet
            continue
        done, _ = _completed(trials)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(done) >= 4 and running:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            after = _plan_trials(database)
            finished_before = {t.number: t.value for t in _completed(after)[0]}
            # Under load the worker may finish what it held between the poll and the kill.
            running_at_kill = [t.number for t in after if t.state == TrialState.RUNNING]
            break
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else "worker exited"
    assert finished_before, "the worker was never caught mid-comparison"
    assert len(finished_before) < PLANNED

    again = _worker(database)
    _, errors = again.communicate(timeout=600)
    assert again.returncode == 0, errors

    trials = _plan_trials(database)
    done, keys = _completed(trials)
    assert len(done) == PLANNED and max(Counter(keys).values()) == 1
    # What had finished is untouched: same trials, same values; nothing ran twice.
    assert {t.number: t.value for t in done if t.number in finished_before} == finished_before
    # The trials it held when killed were failed and retried (their numbers, not run again).
    failed = {t.number for t in trials if t.state == TrialState.FAIL}
    assert failed == set(running_at_kill), (failed, running_at_kill)


def test_a_comparison_closes_its_connections(database):
    """A process that compares again and again must not hold a connection per comparison."""
    small = {"optimizers": "sgd", "budget": 1, "seeds": 1, "epochs": 1}
    arena.compare("digits-logreg", storage=database, progress=False, **small)
    name = database.rsplit("/", 1)[1]
    engine = sqlalchemy.create_engine(database, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
    )
    with engine.connect() as connection:
        assert connection.execute(query, {"name": name}).scalar() == 0


def _fresh_database(postgres_url: str) -> str:
    name = f"arena_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def test_workers_opening_an_empty_database_together_all_open_it(postgres_url):
    """Optuna creates its tables on first use; the workers that lose that race try again."""
    for _ in range(4):
        url = _fresh_database(postgres_url)
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_together(url=url, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                study.close_storage(study.open_storage(url))
            except BaseException as error:  # noqa: BLE001 (collected, asserted below)
                errors.append(error)

        threads = [threading.Thread(target=open_together) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
