"""Cross-site request forgery: resetting progress needs the learner's token; the cookie is Lax."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from descentlab.course import Settings, create_app
from descentlab.course.csrf import REFUSED, token_for

from .conftest import FIXTURE_CONTENT


def record_an_attempt(client) -> None:
    answer = client.post("/api/quizzes/momentum/attempts", json={"answers": {"buffer": [0]}})
    assert answer.status_code == 200


def attempts(client) -> int:
    quizzes = client.get("/api/progress").json()["quizzes"]
    return quizzes["momentum"]["attempts"] if "momentum" in quizzes else 0


def form_token(client) -> str:
    page = client.get("/progress").text
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert found, "the reset form carries no token"
    return found.group(1)


def test_the_learner_cookie_is_http_only_and_same_site_lax(client):
    cookie = client.get("/").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_the_reset_form_without_or_with_a_wrong_token_is_refused_and_resets_nothing(client):
    record_an_attempt(client)
    for body in ({}, {"csrf_token": "0" * 64}, {"csrf_token": ""}):
        refused = client.post("/progress/reset", data=body, follow_redirects=False)
        assert refused.status_code == 403
        assert "Nothing was reset" in refused.text and "form token" in refused.text
        assert attempts(client) == 1
    # another learner's token is not this learner's
    mine = client.cookies.get("learner")
    client.cookies.clear()
    other_token = form_token(client)
    client.cookies.set("learner", mine)
    refused = client.post("/progress/reset", data={"csrf_token": other_token})
    assert refused.status_code == 403 and attempts(client) == 1


def test_the_reset_form_with_the_learners_token_resets(client):
    record_an_attempt(client)
    answer = client.post("/progress/reset", data={"csrf_token": form_token(client)})
    assert answer.status_code == 200 and "No quiz attempts yet." in answer.text
    assert attempts(client) == 0


def test_the_api_reset_needs_the_token_header(client):
    record_an_attempt(client)
    for headers in ({}, {"X-CSRF-Token": "f" * 64}):
        refused = client.post("/api/progress/reset", headers=headers)
        assert refused.status_code == 403 and refused.json()["message"] == REFUSED
    assert attempts(client) == 1
    token = client.get("/api/progress").json()["csrf_token"]
    answer = client.post("/api/progress/reset", headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.json() == {"lessons_done": [], "quizzes": {}}
    assert attempts(client) == 0


def test_tokens_survive_a_restart_on_the_same_database(tmp_path):
    settings = Settings(
        database=str(tmp_path / "course.sqlite3"), content_dir=FIXTURE_CONTENT,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    with TestClient(create_app(settings)) as first:
        token = form_token(first)
        learner = first.cookies.get("learner")
        record_an_attempt(first)
    with TestClient(create_app(settings)) as second:
        second.cookies.set("learner", learner)
        assert token == token_for(second.app.state.csrf_secret, learner)
        assert second.post("/progress/reset", data={"csrf_token": token}).status_code == 200
        assert attempts(second) == 0
