"""The race service: concurrent requests share stacked races and equal separate ones."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
import torch

from descentlab.course.races import Racer, RaceRequest, RaceService, _significant, run_batch


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


def test_paths_are_sent_with_seven_significant_digits():
    values = torch.tensor(
        [0.45, -2.799999952316284, 1.234567891e-9, 123456789.0, 0.0, float("nan")]
    )
    rounded = _significant(values).tolist()
    assert rounded[:5] == [0.45, -2.8, 1.234568e-9, 123456800.0, 0.0]
    assert math.isnan(rounded[5])
    assert [repr(v) for v in rounded[:3]] == ["0.45", "-2.8", "1.234568e-09"]
