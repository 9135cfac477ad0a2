"""What a learning-rate schedule costs a lesson widget's race, in process (no server).

``lab.race`` takes one schedule per optimizer entry, so the race service runs a race whose racers
have different schedules as one ``lab.race`` with one entry per schedule, where a race without
schedules stacks its runs of one optimizer in one entry. This measures, side by side in one run,
the schedules lesson's race (sgd under 4 schedules, 150 steps: 4 entries) against the same race
without schedules (4 sgd learning rates: 1 stacked entry), each computed fresh by a new
RaceService, and a slider move on the scheduled race (one racer recomputed, the others from the
run cache).

Not a test. Usage: ``.venv/bin/python benchmarks/course_schedules.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from descentlab.course.clips import lesson_request
from descentlab.course.content import default_content_dir, load_course
from descentlab.course.races import Racer, RaceRequest, RaceService


def p50_ms(compute, repeats: int) -> float:
    times = []
    for index in range(repeats):
        times.append(compute(index))
    return statistics.median(times) * 1000


def fresh(request: RaceRequest):
    def compute(_: int) -> float:
        service = RaceService()
        began = time.perf_counter()
        service.race_now(request)
        return time.perf_counter() - began

    return compute


def slider_move(request: RaceRequest):
    def compute(index: int) -> float:
        service = RaceService()
        service.race_now(request)
        racers = list(request.racers)
        racers[2] = dataclasses.replace(racers[2], hyperparameters=(("lr", 0.02 + index / 1000),))
        moved = dataclasses.replace(request, racers=tuple(racers))
        began = time.perf_counter()
        service.race_now(moved)
        return time.perf_counter() - began

    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="races per measurement (p50)")
    repeats = parser.parse_args().repeats
    scheduled = lesson_request(load_course(default_content_dir()).lesson("schedules"))
    plain = dataclasses.replace(
        scheduled,
        racers=tuple(Racer("sgd", (("lr", 0.03 + index / 1000),)) for index in range(4)),
    )
    with_schedules = p50_ms(fresh(scheduled), repeats)
    without = p50_ms(fresh(plain), repeats)
    moved = p50_ms(slider_move(scheduled), repeats)
    print(
        f"schedules lesson race, fresh (4 schedules, 4 entries):        {with_schedules:.1f} ms p50"
    )
    print(f"same race without schedules, fresh (1 stacked entry):         {without:.1f} ms p50")
    print(f"ratio: {with_schedules / without:.2f}x")
    print(f"schedules lesson race, one slider moved (1 racer recomputed):  {moved:.1f} ms p50")


if __name__ == "__main__":
    main()
