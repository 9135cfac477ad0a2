"""The advisor: a real (tiny) arena comparison in the background, polled to its recommendation."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from descentlab.course import Settings, create_app

from .conftest import FIXTURE_CONTENT

pytest.importorskip("sklearn", reason="the arena's tasks need scikit-learn (the arena extra)")


@pytest.fixture
def small_client(tmp_path):
    settings = Settings(
        database=str(tmp_path / "course.sqlite3"), content_dir=FIXTURE_CONTENT,
        cache_dir=tmp_path / "cache", advisor_budget=1, advisor_seeds=1,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_comparison_reports_progress_then_a_recommendation(small_client):
    page = small_client.get("/advisor").text
    assert 'value="toy2d"' in page and 'value="adam" checked' in page
    job = small_client.post("/api/advisor", json={"task": "toy2d", "optimizers": ["sgd", "adam"]})
    assert job.status_code == 202
    job_id = job.json()["id"]
    seen_progress = set()
    deadline = time.monotonic() + 240
    while True:
        state = small_client.get(f"/api/advisor/{job_id}").json()
        seen_progress.add((state["done"], state["total"]))
        if state["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state["status"] == "done", state
    result = state["result"]
    assert result["recommendation"]["best"] in ("sgd", "adam")
    assert result["recommendation"]["text"]
    assert {row["optimizer"] for row in result["summary"]} == {"sgd", "adam"}
    assert state["done"] == state["total"] > 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"task": "chess", "optimizers": ["sgd"]}, "unknown task 'chess'"),
        ({"task": "toy2d", "optimizers": ["warp"]}, "unknown optimizer 'warp'"),
        (
            {"task": "toy2d", "optimizers": ["sgd", "adam", "lion", "yogi", "rprop"]},
            "body.optimizers",
        ),
        ({"task": "toy2d", "optimizers": []}, "body.optimizers"),
        ({"task": "toy2d", "optimizers": ["sgd", "sgd"]}, "listed twice"),
    ],
)
def test_bad_advisor_requests_are_422(small_client, body, words):
    answer = small_client.post("/api/advisor", json=body)
    assert answer.status_code == 422 and words in answer.json()["message"]


def test_an_unknown_job_is_404(small_client):
    assert small_client.get("/api/advisor/nope").status_code == 404
