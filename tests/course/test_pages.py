"""The HTML pages and the clips, through FastAPI's TestClient."""

from __future__ import annotations

import json
import re
from html import unescape

from descentlab import optim


def test_home_lists_the_lessons_in_order_with_a_start_button(client):
    page = client.get("/").text
    assert page.index("Gradient descent") < page.index("Momentum")
    assert 'id="start" href="/lessons/gradient-descent"' in page


def test_a_lesson_shows_spec_equations_sections_widget_clip_quiz_and_neighbours(client):
    page = client.get("/lessons/momentum").text
    # the spec's equations, rendered from the registry: one block <math> per equation
    spec_block = page[page.index('<div class="spec">') : page.index('<div class="race-widget"')]
    blocks = spec_block.count('display="block"')
    assert blocks >= len(optim.spec("sgd").equations) + len(optim.spec("momentum").equations)
    for heading in ("Key idea", "Advantages", "Disadvantages", "Common misconception"):
        assert f"<h2>{heading}</h2>" in page
    config = json.loads(unescape(re.search(r"data-config='([^']*)'", page).group(1)))
    assert config["landscape"] == "ravine" and config["steps"] == 120
    sliders = {(s["key"], s["name"]) for s in config["sliders"]}
    assert sliders == {("sgd", "lr"), ("momentum", "lr"), ("momentum", "momentum")}
    lr = next(s for s in config["sliders"] if s["key"] == "momentum" and s["name"] == "lr")
    spec_lr = optim.spec("momentum").hyperparameter("lr")
    assert (lr["low"], lr["high"], lr["scale"]) == (spec_lr.low, spec_lr.high, spec_lr.scale)
    assert 'src="/clips/momentum.mp4"' in page and "momentum builds speed" in page
    assert 'rel="prev" href="/lessons/gradient-descent"' in page and 'href="/quiz"' in page
    assert 'data-question="buffer"' in page and "RMSprop's" not in page  # no answers in the page


def test_unknown_pages_are_friendly_404s(client):
    answer = client.get("/lessons/nope")
    assert answer.status_code == 404 and "There is no lesson called 'nope'" in unescape(answer.text)
    assert "<!doctype html>" in answer.text.lower()
    assert client.get("/api/quizzes/nope").json()["message"] == "no quiz 'nope'"


def test_the_review_page_has_every_registry_optimizer(client):
    page = client.get("/review").text
    for key in optim.names():
        assert f'<tr id="{key}">' in page
    assert page.count("<math") >= sum(len(optim.spec(key).equations) for key in optim.names())


def test_the_final_quiz_page_and_the_progress_page(client):
    assert client.get("/quiz").text.count('class="question"') == 10
    client.post("/api/quizzes/final/attempts", json={"answers": {"q0": [0]}})
    progress = client.get("/progress").text
    assert 'class="best">1/10<' in progress
    token = re.search(r'name="csrf_token" value="(\w+)"', progress).group(1)
    answer = client.post("/progress/reset", data={"csrf_token": token}, follow_redirects=True)
    assert "No quiz attempts yet." in answer.text


def test_the_playground_restores_its_query_and_names_bad_parts(client):
    page = client.get(
        "/playground",
        params=[("landscape", "himmelblau"), ("opt", "rmsprop:lr=0.02"), ("opt", "sgd:lr=0.01"),
                ("start", "1,-2"), ("steps", "77")],
    ).text  # fmt: skip
    assert 'value="himmelblau"' in page and 'value="1.0,-2.0"' in page and 'value="77"' in page
    assert 'value="rmsprop" selected' in page and 'value="lr=0.02"' in page
    bad = client.get("/playground", params={"landscape": "volcano", "opt": "warp", "steps": "9999"})
    text = unescape(bad.text)
    assert "unknown landscape 'volcano'" in text and "unknown optimizer 'warp'" in text
    assert "steps: a whole number from 1 to 1000" in text


def test_a_clip_is_rendered_once_then_served_from_the_cache(client, tmp_path):
    answer = client.get("/clips/gradient-descent.mp4")
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    assert answer.content[4:8] == b"ftyp"  # an MP4 container
    cached = list((tmp_path / "cache" / "clips").glob("gradient-descent-*.mp4"))
    assert len(cached) == 1
    modified = cached[0].stat().st_mtime_ns
    assert client.get("/clips/gradient-descent.mp4").content == answer.content
    assert cached[0].stat().st_mtime_ns == modified
    assert client.get("/clips/nope.mp4").status_code == 404


def test_every_packaged_lesson_renders_and_its_race_runs(tmp_path):
    """The shipped lessons (the content writers') through the real app: page, widget race, quiz."""
    from fastapi.testclient import TestClient

    from descentlab.course import Settings, create_app

    settings = Settings(database=str(tmp_path / "db.sqlite3"), cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings)) as client:
        course = client.app.state.course
        for lesson in course.lessons:
            page = client.get(f"/lessons/{lesson.slug}")
            assert page.status_code == 200, lesson.slug
            assert page.text.count("<math") >= sum(
                len(optim.spec(key).equations) for key in lesson.front.optimizers
            )
            quiz = client.get(f"/api/quizzes/{lesson.front.quiz}")
            assert quiz.status_code == 200 and 3 <= len(quiz.json()["questions"]) <= 5
            if lesson.front.race is None:
                assert "/clips/" not in page.text
                continue
            # Every race has its clip: 2-D landscapes and 1-D curves alike.
            assert f'src="/clips/{lesson.slug}.mp4"' in page.text, lesson.slug
            config = json.loads(unescape(re.search(r"data-config='([^']*)'", page.text).group(1)))
            race = client.post("/api/race", json={k: config[k] for k in ("landscape", "start", "steps")}
                               | {"optimizers": [{"key": o["key"], "hyperparameters": o["hyperparameters"]} for o in config["optimizers"]]})  # fmt: skip
            assert race.status_code == 200, (lesson.slug, race.text)
            assert len(race.json()["runs"]) == len(lesson.front.race.optimizers)
        assert client.get("/quiz").status_code == 200
