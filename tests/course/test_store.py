"""The store on SQLite and on a real PostgreSQL server (tests/postgres.py starts one)."""

from __future__ import annotations

import pytest

from descentlab.course.store import Store, is_learner_id, new_learner_id


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = str(tmp_path / "course.sqlite3")
    else:
        # tests/conftest.py's fixture: a real server in a temp dir, or a skip saying why
        url = request.getfixturevalue("postgres_url")
    opened = Store(url)
    yield opened
    opened.close()


def test_progress_is_per_learner_and_survives_reopening(store):
    alice, bob = new_learner_id(), new_learner_id()
    store.mark_lesson_done(alice, "momentum")
    store.mark_lesson_done(alice, "momentum")  # twice: still once
    store.mark_lesson_done(alice, "adam")
    store.record_attempt(alice, "momentum", 2, 3, {"buffer": [0]})
    store.record_attempt(alice, "momentum", 3, 3, {"buffer": [0]})
    store.record_attempt(alice, "momentum", 1, 3, {})
    store.record_attempt(bob, "final", 7, 10, {})
    progress = store.progress(alice)
    assert progress.lessons_done == ["momentum", "adam"]
    record = progress.quizzes["momentum"]
    assert (record.attempts, record.best, record.last, record.total) == (3, 3, 1, 3)
    assert "final" not in progress.quizzes
    reopened = Store(store.url)
    assert reopened.progress(alice) == progress
    reopened.close()


def test_reset_deletes_only_that_learner(store):
    alice, bob = new_learner_id(), new_learner_id()
    store.record_attempt(alice, "final", 5, 10, {"q1": [1]})
    store.record_attempt(bob, "final", 9, 10, {})
    store.mark_lesson_done(bob, "adam")
    store.reset(alice)
    assert store.progress(alice).quizzes == {} and store.progress(alice).lessons_done == []
    assert store.progress(bob).quizzes["final"].best == 9
    assert store.progress(bob).lessons_done == ["adam"]


def test_learner_ids():
    assert is_learner_id(new_learner_id())
    assert not is_learner_id("x" * 32) and not is_learner_id(None) and not is_learner_id("ab")
