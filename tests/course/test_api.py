"""The JSON API through FastAPI's TestClient: races, contours, quizzes, progress, and bad input."""

from __future__ import annotations

import pytest

from descentlab import lab, landscapes, optim

RAVINE_RACE = {
    "landscape": "ravine",
    "start": [-2.8, 1.0],
    "steps": 120,
    "optimizers": [
        {"key": "sgd", "hyperparameters": {"lr": 0.45}},
        {"key": "momentum", "hyperparameters": {"lr": 0.05, "momentum": 0.9}},
    ],
}


def test_landscapes_and_optimizers_list_the_catalogs(client):
    listed = client.get("/api/landscapes").json()
    assert [row["name"] for row in listed] == list(landscapes.names())
    optimizers = client.get("/api/optimizers").json()
    assert [row["key"] for row in optimizers] == optim.names()
    adam = next(row for row in optimizers if row["key"] == "adam")
    lr = next(h for h in adam["hyperparameters"] if h["name"] == "lr")
    assert (lr["low"], lr["high"], lr["scale"]) == (1e-5, 0.1, "log")


def test_a_race_matches_the_lab(client):
    answer = client.post("/api/race", json=RAVINE_RACE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = lab.race(
        "ravine", [("sgd", {"lr": 0.45}), ("momentum", {"lr": 0.05, "momentum": 0.9})],
        [[-2.8, 1.0]], 120,
    )  # fmt: skip
    assert body["steps"] == 120 and body["landscape"]["dim"] == 2
    for index, run in enumerate(body["runs"]):
        assert len(run["path"]) == 121 and len(run["loss"]) == 121
        assert run["path"][-1] == pytest.approx(expected.path[-1, index].tolist(), abs=1e-6)
        assert run["final_loss"] == pytest.approx(float(expected.final_loss[index]), abs=1e-9)
    assert body["runs"][1]["hyperparameters"]["momentum"] == 0.9


def test_an_expression_races_and_a_one_dimensional_landscape_draws_a_curve(client):
    body = {**RAVINE_RACE, "landscape": "x**2 - y**2", "start": [1.0, 0.01], "steps": 30}
    answer = client.post("/api/race", json=body).json()
    # the saddle: y grows away from 0 for plain GD
    assert abs(answer["runs"][0]["path"][-1][1]) > 0.01
    curve = client.get("/api/contours", params={"landscape": "x_cos_x"}).json()
    assert curve["dim"] == 1 and len(curve["curve"][0]) == len(curve["curve"][1]) > 100
    lines = client.get("/api/contours", params={"landscape": "ravine"}).json()
    assert lines["dim"] == 2 and len(lines["levels"]) > 5
    assert all(len(xs) == len(ys) for level in lines["levels"] for xs, ys in level["lines"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": 1001}, "body.steps"),
        ({"steps": 0}, "body.steps"),
        ({"start": [1.0, 2.0, 3.0]}, "body.start"),
        ({"landscape": "x" * 201}, "body.landscape"),
        ({"optimizers": []}, "body.optimizers"),
        ({"optimizers": [{"key": "sgd"}] * 5}, "body.optimizers"),
        ({"optimizers": [{"key": "warp"}]}, "body.optimizers.0.key"),
        (
            {"optimizers": [{"key": "sgd", "hyperparameters": {"lr": "fast"}}]},
            "body.optimizers.0.hyperparameters.lr",
        ),
        ({"extra": 1}, "body.extra"),
    ],
)
def test_bad_race_requests_are_422_naming_the_field(client, change, field):
    answer = client.post("/api/race", json={**RAVINE_RACE, **change})
    assert answer.status_code == 422
    assert answer.json()["message"].startswith(field)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"landscape": "volcano"}, "unknown landscape 'volcano'"),
        ({"landscape": "x**2 + __import__('os')"}, "unknown function '__import__'"),
        ({"start": [1.0]}, "start"),
        (
            {"optimizers": [{"key": "sgd", "hyperparameters": {"momentun": 0.9}}]},
            "no numeric hyperparameter 'momentun'",
        ),
        ({"optimizers": [{"key": "sgd", "hyperparameters": {"lr": -1.0}}]}, "lr"),
    ],
)
def test_races_the_lab_rejects_are_422_with_its_message(client, change, words):
    answer = client.post("/api/race", json={**RAVINE_RACE, **change})
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["message"]


def test_an_oversized_body_is_refused(client):
    answer = client.post(
        "/api/race",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413


def test_a_quiz_never_sends_its_answers(client):
    quiz = client.get("/api/quizzes/momentum").json()
    assert [q["id"] for q in quiz["questions"]] == ["buffer", "effective", "ravine"]
    text = str(quiz)
    assert "correct" not in text and "explanation" not in text
    assert "<math" in quiz["questions"][0]["prompt_html"]
    assert client.get("/api/quizzes/nope").status_code == 404


def test_checking_one_question_gives_every_explanation(client):
    feedback = client.post(
        "/api/quizzes/momentum/questions/buffer/check", json={"choices": [1]}
    ).json()
    assert feedback["correct"] is False
    assert [c["chosen"] for c in feedback["choices"]] == [False, True]
    assert feedback["choices"][1]["explanation"] == "That is RMSprop's."
    assert client.get("/api/progress").json()["quizzes"] == {}  # checking records nothing


def test_an_attempt_is_scored_recorded_and_marks_the_lesson_done(client):
    answer = client.post(
        "/api/quizzes/gradient-descent/attempts",
        json={"answers": {"direction": [0], "big-lr": [1], "knobs": [1, 0]}},
    ).json()
    assert (answer["score"], answer["total"]) == (2, 3)
    assert answer["message"] == "Your score is 2/3"
    assert [q["correct"] for q in answer["questions"]] == [True, False, True]
    better = client.post(
        "/api/quizzes/gradient-descent/attempts",
        json={"answers": {"direction": [0], "big-lr": [0], "knobs": [0, 1]}},
    ).json()
    assert better["score"] == 3
    client.post("/api/quizzes/gradient-descent/attempts", json={"answers": {}})
    progress = client.get("/api/progress").json()
    assert progress["lessons_done"] == ["gradient-descent"]
    assert progress["quizzes"]["gradient-descent"] == {
        "attempts": 3,
        "best": 3,
        "last": 0,
        "total": 3,
    }


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"nope": [0]}, "has no question 'nope'"),
        ({"direction": [7]}, "body.answers.direction.0"),
        ({"direction": [2]}, "numbered 0 to 1"),
        ({"direction": [0, 1]}, "takes one choice"),
    ],
)
def test_bad_attempts_are_422_and_not_recorded(client, answers, words):
    answer = client.post("/api/quizzes/gradient-descent/attempts", json={"answers": answers})
    assert answer.status_code == 422
    assert words in answer.json()["message"]
    assert client.get("/api/progress").json()["quizzes"] == {}


def test_learners_see_only_their_own_progress_and_reset_it(client):
    client.post("/api/quizzes/momentum/attempts", json={"answers": {"buffer": [0]}})
    mine = client.cookies.get("learner")
    assert mine and len(mine) == 32
    client.cookies.clear()
    assert client.get("/api/progress").json()["quizzes"] == {}  # a new learner
    other = client.cookies.get("learner")
    assert other != mine
    client.cookies.set("learner", mine)
    assert client.get("/api/progress").json()["quizzes"]["momentum"]["attempts"] == 1
    token = client.get("/api/progress").json()["csrf_token"]
    reset = client.post("/api/progress/reset", headers={"X-CSRF-Token": token})
    assert reset.json() == {"lessons_done": [], "quizzes": {}}
    client.cookies.set("learner", "not-a-valid-id")
    assert client.get("/api/progress").json()["quizzes"] == {}


def test_a_failing_race_worker_is_a_503_not_a_traceback(client, monkeypatch):
    from descentlab.course import races

    def broken(requests):
        raise MemoryError("out of memory")

    monkeypatch.setattr(races, "compute_runs", broken)
    answer = client.post("/api/race", json={**RAVINE_RACE, "steps": 11})
    assert answer.status_code == 503
    assert answer.json()["message"] == "the race worker failed: out of memory"
