"""``descentlab demo``: race the course's classic optimizers on its classic landscapes, write an
animation and a picture of each race, and say where they are.

Each race has its own step count and settings (inside the registry's tuning ranges), checked to
show its point: the caption is what the pictures show, not what the method is famous for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoRace:
    landscape: str
    start: tuple[float, ...]
    steps: int
    optimizers: tuple[str, ...]
    point: str  # what the race shows


RACES = (
    DemoRace(
        "ravine",
        (-2.8, 1.0),
        100,
        ("sgd:lr=0.45", "momentum:lr=0.3,momentum=0.6", "nesterov:lr=0.1,momentum=0.8"),
        "plain GD zig-zags across the ravine and needs about 70 steps; "
        "momentum and Nesterov reach the bottom in under 30",
    ),
    DemoRace(
        "anisotropic_well",
        (2.5, 2.0),
        150,
        ("sgd:lr=0.1", "adagrad:lr=0.1", "rmsprop:lr=0.01", "adam:lr=0.05", "rprop:lr=0.01"),
        "on the flat rim GD hardly moves; per-coordinate steps (Adagrad, RMSprop, Adam, Rprop) "
        "walk off it and find the well",
    ),
    DemoRace(
        "rosenbrock",
        (-1.2, 1.0),
        500,
        ("sgd:lr=0.002", "momentum:lr=0.001,momentum=0.95", "adam:lr=0.1", "newton"),
        "the curved valley: first-order methods find it fast and follow it slowly "
        "(momentum and Adam furthest), Newton's method is there in 5 steps",
    ),
    DemoRace(
        "saddle",
        (-1.5, 0.01),
        100,
        ("sgd:lr=0.05", "adam:lr=0.05", "newton"),
        "Newton's method jumps onto the saddle point in one step and stays; "
        "gradient methods pause near it, then roll off downhill",
    ),
)


def run_demo(out: Path, steps: int | None = None) -> list[Path]:
    """Run every demo race (with ``steps`` steps each, or each race's own count when None),
    write ``<landscape>.png`` and ``<landscape>.gif`` into ``out`` and print the final losses."""
    from . import lab, landscapes
    from .plots import figures
    from .plots.animation import animate

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for race in RACES:
        result = lab.race(
            race.landscape, list(race.optimizers), [list(race.start)], steps or race.steps
        )
        picture, movie = out / f"{race.landscape}.png", out / f"{race.landscape}.gif"
        figure = figures.overview(result)
        figure.savefig(picture)
        figures.plt.close(figure)
        animate(result, movie)
        written += [picture, movie]
        print(f"\n{landscapes.get(race.landscape).title}, {result.steps} steps: {race.point}")
        for info, loss, diverged in zip(
            result.runs, result.final_loss.tolist(), result.diverged.tolist(), strict=True
        ):
            shown = "diverged" if diverged or not math.isfinite(loss) else f"{loss:.3e}"
            print(f"  {figures.run_label(info):<36} final loss {shown}")
        print(f"  wrote {picture} and {movie}")
    return written
