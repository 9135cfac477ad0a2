"""A batch of course requests on four landscapes: four races (one per landscape) against one
``lab.race_assorted`` race, timed round-robin in one process.

The batch is what the course's race service computes under load: N requests, each of 4
optimizers (SGD, momentum, RMSprop, Adam) with its own learning rate and start, 300 steps, on one
of four landscapes. Not a test. Usage::

    .venv/bin/python benchmarks/assorted_race.py [--requests 200] [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from descentlab import lab

LANDSCAPES = ["rosenbrock", "ravine", "himmelblau", "anisotropic_well"]
OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam"]
STEPS = 300


def batch(requests: int, seed: int = 0):
    """Each request's landscape index, start and per-optimizer learning rates."""
    generator = random.Random(seed)
    return [
        (
            generator.randrange(len(LANDSCAPES)),
            [generator.uniform(-1.5, 1.5), generator.uniform(-0.8, 0.8)],
            [10 ** generator.uniform(-4, -2) for _ in OPTIMIZERS],
        )
        for _ in range(requests)
    ]


def entries(members):
    return [
        (key, {"lr": [lrs[index] for _, _, lrs in members]}, [start for _, start, _ in members])
        for index, key in enumerate(OPTIMIZERS)
    ]


def apart(requests) -> None:
    for index, name in enumerate(LANDSCAPES):
        members = [request for request in requests if request[0] == index]
        if members:
            lab.race(name, entries(members), steps=STEPS)


def together(requests) -> None:
    owner = [landscape for landscape, _, _ in requests] * len(OPTIMIZERS)
    lab.race_assorted(LANDSCAPES, entries(requests), owner, steps=STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests in the batch")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    arguments = parser.parse_args()
    if arguments.requests < 1 or arguments.rounds < 1 or arguments.threads < 1:
        parser.error("--requests, --rounds and --threads must be at least 1")
    torch.set_num_threads(arguments.threads)
    requests = batch(arguments.requests)
    ways = {"4 races (one per landscape)": apart, "1 race_assorted race": together}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(arguments.rounds + 1):
        for name, way in ways.items():
            start = time.perf_counter()
            way(requests)
            if round_number:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    print(
        f"torch {torch.__version__}, {arguments.threads} thread(s); {arguments.requests} requests "
        f"x {len(OPTIMIZERS)} optimizers x {STEPS} steps on {len(LANDSCAPES)} landscapes; "
        f"median of {arguments.rounds} round-robin rounds"
    )
    base = statistics.median(times["4 races (one per landscape)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:30} {1000 * median:8.1f} ms   {base / median:5.2f}x")


if __name__ == "__main__":
    main()
