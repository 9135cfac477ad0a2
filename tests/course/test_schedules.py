"""Learning-rate schedules in races: the API, the race service's caches, and the lesson's content."""

from __future__ import annotations

import json

import pytest
import torch

from descentlab import lab, schedules
from descentlab.course.clips import lesson_request
from descentlab.course.content import default_content_dir, load_course
from descentlab.course.races import RaceService

from .test_content import edit, line_of, problems_of

STEP = {"name": "step", "params": {"step_size": 40, "gamma": 0.2}}
COSINE = {"name": "cosine", "params": {"total_steps": 120}}
SCHEDULED_RACE = {
    "landscape": "himmelblau",
    "start": [-4.0, 4.0],
    "steps": 120,
    "optimizers": [
        {"key": "sgd", "hyperparameters": {"lr": 0.03}},
        {"key": "sgd", "hyperparameters": {"lr": 0.03}, "schedule": STEP},
        {"key": "sgd", "hyperparameters": {"lr": 0.03}, "schedule": COSINE},
    ],
}


def test_a_scheduled_race_equals_the_labs_race_with_that_schedule(client):
    answer = client.post("/api/race", json=SCHEDULED_RACE)
    assert answer.status_code == 200, answer.text
    runs = answer.json()["runs"]
    built = [
        None,
        schedules.create("step", **STEP["params"]),
        schedules.create("cosine", **COSINE["params"]),
    ]
    for run, schedule in zip(runs, built, strict=True):
        expected = lab.race(
            "himmelblau", [("sgd", {"lr": 0.03})], [[-4.0, 4.0]], 120, schedule=schedule
        )
        assert run["path"][-1] == pytest.approx(expected.path[-1, 0].tolist(), abs=1e-5)
        assert run["final_loss"] == pytest.approx(float(expected.final_loss[0]), abs=1e-6)
        if schedule is None:
            assert "lr_factor" not in run and "schedule" not in run
        else:
            assert run["lr_factor"] == pytest.approx(
                [float(schedule.factor(t)) for t in range(120)], rel=1e-5
            )
    assert runs[1]["schedule"] == STEP
    # the schedule changes the race: decaying the lr settles where the constant lr bounces
    assert runs[0]["final_loss"] > 1.0
    assert runs[1]["final_loss"] < 1e-3 and runs[2]["final_loss"] < 1e-3


def test_the_schedule_is_part_of_the_cache_keys(client):
    one = {**SCHEDULED_RACE, "optimizers": SCHEDULED_RACE["optimizers"][1:2]}
    other = {
        **one,
        "optimizers": [
            {
                **one["optimizers"][0],
                "schedule": {"name": "step", "params": {"step_size": 40, "gamma": 0.9}},
            }
        ],
    }
    first = client.post("/api/race", json=one).json()["runs"][0]
    second = client.post("/api/race", json=other).json()["runs"][0]
    assert first["final_loss"] != second["final_loss"]
    assert second["lr_factor"][40] == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        ({"name": "cosin"}, "body.optimizers.0.schedule.name", "unknown schedule 'cosin'"),
        (
            {"name": "step", "params": {"gamma": 0.5}},
            "body.optimizers.0.schedule",
            "needs step_size",
        ),
        (
            {"name": "step", "params": {"step_size": 10, "gamma": 5}},
            "body.optimizers.0.schedule",
            "gamma",
        ),
        ({"name": "step", "params": {"step_size": 10.5}}, "body.optimizers.0.schedule", "integer"),
        (
            {"name": "cosine", "params": {"total_steps": 10**9}},
            "body.optimizers.0.schedule.params",
            "10000",
        ),
        (
            {"name": "cosine", "params": {"total": 100}},
            "body.optimizers.0.schedule",
            "no parameter total",
        ),
        (
            {"name": "multistep", "params": {"milestones": list(range(1, 40))}},
            "body.optimizers.0.schedule.params",
            "at most 16",
        ),
        (
            {"name": "cosine", "params": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}},
            "body.optimizers.0.schedule.params",
            "at most 4",
        ),
        ({"name": "cosine", "speed": 2}, "body.optimizers.0.schedule.speed", "Extra inputs"),
    ],
)
def test_a_bad_schedule_is_422_naming_the_field(client, schedule, field, words):
    racer = {"key": "sgd", "hyperparameters": {"lr": 0.03}, "schedule": schedule}
    answer = client.post("/api/race", json={**SCHEDULED_RACE, "optimizers": [racer]})
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert message.startswith(field) and words in message, message


def test_the_schedules_lesson_races_constant_against_three_schedules():
    lesson = load_course(default_content_dir()).lesson("schedules")
    race = lesson.front.race
    assert [r.schedule.name for r in race.optimizers] == [
        "constant",
        "step",
        "cosine",
        "warmup_cosine",
    ]
    assert len({tuple(sorted(r.hyperparameters.items())) for r in race.optimizers}) == 1

    runs = json.loads(RaceService().race_now(lesson_request(lesson)))["runs"]
    constant, *scheduled = [run["final_loss"] for run in runs]
    # the point of the lesson: the same lr bounces when constant and settles when it decays
    assert constant > 1.0
    assert all(loss < 1e-3 for loss in scheduled)
    assert runs[3]["lr_factor"][0] == pytest.approx(0.1)


def test_a_bad_schedule_in_a_lesson_is_reported_with_its_line(content_dir):
    path = content_dir / "lessons" / "02-momentum.md"
    edit(
        path,
        "- {key: sgd, lr: 0.45}",
        "- {key: sgd, lr: 0.45, schedule: {name: step, params: {gamma: 0.5}}}",
    )
    problems = [p for p in problems_of(content_dir) if p.startswith("02-momentum.md:")]
    assert problems and "needs step_size" in problems[0], problems
    assert problems[0].startswith(f"02-momentum.md:{line_of(path, 'schedule:')}:"), problems


def test_the_schedules_lesson_clip_races_each_schedule_and_names_it(tmp_path, monkeypatch):
    from descentlab.course import clips
    from descentlab.course.clips import ClipRenderer

    lesson = load_course(default_content_dir()).lesson("schedules")
    drawn = {}
    monkeypatch.setattr("descentlab.plots.animation.animate", lambda result, out, fps: (
        drawn.update(result=result), out.write_bytes(b"mp4"))
    )  # fmt: skip
    ClipRenderer(tmp_path, RaceService()).clip(lesson)
    result = drawn["result"]
    racers = lesson.front.race.optimizers
    names = [r.schedule.name if r.schedule else "constant" for r in racers]
    assert [run.hyperparameters["schedule"] for run in result.runs] == names
    for index, racer in enumerate(racers):
        schedule = (
            None if racer.schedule is None else clips.build_schedule(racer.schedule.setting())
        )
        alone = lab.race(
            lesson.front.race.landscape, [(racer.key, racer.hyperparameters)],
            [lesson.front.race.start], lesson.front.race.steps, schedule=schedule,
        )  # fmt: skip
        assert torch.equal(result.path[:, index], alone.path[:, 0])
