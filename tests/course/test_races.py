"""The race service: concurrent requests share stacked races and equal separate ones."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from descentlab import lab
from descentlab.course.races import Racer, RaceRequest, RaceService, run_batch


def request(lr: float, start: tuple[float, float], landscape: str = "ravine", steps: int = 80):
    return RaceRequest(
        landscape, start, steps,
        (Racer("sgd", (("lr", lr),)), Racer("adam", (("beta1", 0.8), ("lr", lr / 3)))),
    )  # fmt: skip


def test_a_shared_batch_equals_each_request_alone():
    requests = [request(0.02 + 0.01 * i, (-2.0 + 0.3 * i, 1.0 - 0.2 * i)) for i in range(5)]
    requests.append(request(0.01, (1.0, 1.0), landscape="himmelblau", steps=40))
    together = run_batch(requests)
    for single, shared in zip(requests, together, strict=True):
        alone = run_batch([single])[0]
        for run_alone, run_shared in zip(alone["runs"], shared["runs"], strict=True):
            assert run_shared["optimizer"] == run_alone["optimizer"]
            assert run_shared["hyperparameters"] == run_alone["hyperparameters"]
            assert None not in run_alone["path"][-1]
            assert run_shared["path"][-1] == pytest.approx(
                run_alone["path"][-1], rel=1e-5, abs=1e-6
            )


def test_requests_with_different_optimizers_share_one_race_per_landscape_and_equal_each_alone():
    mixed = [
        RaceRequest("ravine", (-2.0, 1.0), 60, (Racer("sgd", (("lr", 0.3),)),)),
        RaceRequest(
            "ravine", (1.5, -0.5), 60,
            (Racer("momentum", (("lr", 0.05),)), Racer("adam", (("lr", 0.1),)), Racer("newton", ())),
        ),
        RaceRequest("ravine", (0.5, 0.8), 60, (Racer("sgd", (("lr", 0.1),)), Racer("adam", ()))),
    ]  # fmt: skip
    together = run_batch(mixed)
    for single, shared in zip(mixed, together, strict=True):
        alone = run_batch([single])[0]
        assert [run["optimizer"] for run in shared["runs"]] == [r.key for r in single.racers]
        for run_alone, run_shared in zip(alone["runs"], shared["runs"], strict=True):
            assert torch.allclose(
                torch.tensor(run_shared["path"]), torch.tensor(run_alone["path"]), 1e-5, 1e-6
            )


def test_a_batch_on_several_landscapes_is_one_race_and_equals_each_request_alone(monkeypatch):
    """Requests on four landscapes (one typed) with the same steps share ONE lab race; each
    answer, its divergence (judged on its own landscape's domain) included, is its own race's."""
    calls = []
    assorted = lab.race_assorted
    monkeypatch.setattr(lab, "race_assorted", lambda *a, **k: calls.append(a) or assorted(*a, **k))
    sent = [
        request(0.05, (-2.0, 1.0)),
        request(0.01, (1.0, 1.0), landscape="himmelblau"),
        request(0.002, (-1.0, 1.5), landscape="rosenbrock"),
        request(0.1, (0.5, -0.5), landscape="x**2 + 3*sin(y)"),
        RaceRequest("ravine", (-2.8, 1.0), 80, (Racer("sgd", (("lr", 5.0),)),)),
    ]
    together = run_batch(sent)
    assert len(calls) == 1 and len(calls[0][0]) == 4  # one race, four landscapes
    assert together[4]["runs"][0]["diverged"]
    for single, shared in zip(sent, together, strict=True):
        alone = run_batch([single])[0]
        assert shared["landscape"] == alone["landscape"]
        for run_alone, run_shared in zip(alone["runs"], shared["runs"], strict=True):
            assert run_shared["diverged_at"] == run_alone["diverged_at"]
            if run_alone["diverged"]:  # non-finite values go out as null
                assert run_shared["path"] == run_alone["path"]
                continue
            assert torch.allclose(
                torch.tensor(run_shared["path"]), torch.tensor(run_alone["path"]), 1e-5, 1e-6
            )


def test_an_optimizer_the_lab_refuses_fails_only_its_own_requests():
    refused = RaceRequest("ravine", (-2.0, 1.0), 30, (Racer("sgd", (("lr", -1.0),)),))
    fine = RaceRequest("ravine", (1.0, 1.0), 30, (Racer("adam", (("lr", 0.1),)),))
    answers = run_batch([refused, fine])
    assert isinstance(answers[0], ValueError) and "lr" in str(answers[0])
    assert answers[1]["runs"][0]["final_loss"] < 0.2


def test_a_bad_request_fails_alone():
    bad = RaceRequest("ravine", (0.0, 0.0), 80, (Racer("sgd", (("warp", 1.0),)),))
    good = request(0.1, (-2.0, 1.0))
    answers = run_batch([good, bad])
    assert isinstance(answers[1], ValueError) and "warp" in str(answers[1])
    assert answers[0]["runs"][0]["final_loss"] is not None


def test_concurrent_requests_are_gathered_into_few_batches_and_cached():
    service = RaceService()
    requests = [request(0.01 * (i + 1), (-2.0, 1.0 - 0.01 * i)) for i in range(40)]

    async def main():
        return await asyncio.gather(*(service.race(r) for r in requests))

    answers = asyncio.run(main())
    assert len(answers) == 40
    assert service.batches <= 3  # the first alone, then the rest that queued behind it
    assert service.cached(requests[7]) is answers[7]
    decoded = json.loads(answers[7])
    assert decoded["runs"][0]["hyperparameters"]["lr"] == pytest.approx(0.08)
    alone = run_batch([requests[7]])[0]
    assert decoded["runs"][1]["hyperparameters"] == alone["runs"][1]["hyperparameters"]
    assert decoded["runs"][1]["path"][-1] == pytest.approx(alone["runs"][1]["path"][-1], rel=1e-5)


def test_a_burst_of_requests_arriving_over_milliseconds_is_one_batch():
    """Requests that arrive a fraction of a millisecond apart (clients answering a batch's
    answers) wait for each other and race together, rather than the first racing alone."""
    service = RaceService()
    requests = [request(0.01 * (i + 1), (-2.0, 1.0 - 0.01 * i)) for i in range(20)]

    async def arriving(index):
        await asyncio.sleep(0.00025 * index)
        return await service.race(requests[index])

    async def main():
        return await asyncio.gather(*(arriving(i) for i in range(len(requests))))

    answers = asyncio.run(main())
    assert len(answers) == 20 and service.batches == 1


def test_paths_are_sent_as_the_labs_float32_values_in_their_shortest_form():
    sent = RaceRequest("ravine", (-2.8, 1.0), 50, (Racer("sgd", (("lr", 0.45),)),))
    raw = RaceService().answer_batch([sent])[0]
    answer = json.loads(raw)["runs"][0]
    expected = lab.race("ravine", [("sgd", {"lr": 0.45})], [[-2.8, 1.0]], 50)
    assert torch.equal(torch.tensor(answer["path"], dtype=torch.float32), expected.path[:, 0])
    assert torch.equal(torch.tensor(answer["loss"], dtype=torch.float32), expected.loss[:, 0])
    assert b"[-2.8,1.0]" in raw  # the start, not -2.799999952316284
    path_text = raw.decode().split('"path":')[1].split('"loss"')[0]
    numbers = path_text.replace("[", ",").replace("]", ",").split(",")
    assert max(len(n) for n in numbers) <= len("-1.23456789e-10")


def test_a_diverging_run_sends_null_where_its_values_are_not_finite():
    sent = RaceRequest("ravine", (-2.8, 1.0), 300, (Racer("sgd", (("lr", 5.0),)),))
    answer = json.loads(RaceService().answer_batch([sent])[0])["runs"][0]
    assert answer["diverged"] and answer["final_loss"] is None
    assert answer["path"][-1][1] is None and answer["loss"][-1] is None  # y blew up
    assert all(isinstance(value, float) for value in answer["path"][1])


def test_moving_one_slider_recomputes_only_that_racer():
    service = RaceService()
    first = request(0.05, (-2.0, 1.0))
    service.answer_batch([first])
    assert service.runs_computed == 2
    moved = RaceRequest(
        first.landscape, first.start, first.steps, (Racer("sgd", (("lr", 0.07),)), first.racers[1])
    )
    answer = json.loads(service.answer_batch([moved])[0])
    assert service.runs_computed == 3
    assert answer["runs"][0]["hyperparameters"]["lr"] == 0.07
    assert answer["runs"][1] == json.loads(service.cached(first))["runs"][1]
    assert answer == run_batch([moved])[0] | {"runs": answer["runs"]}
