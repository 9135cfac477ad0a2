"""``make run`` until the course exists: race the course's classic optimizers on its classic
landscapes, write an animation and a picture of each race, and say where they are."""

from __future__ import annotations

import math
from pathlib import Path

#: (landscape, start, optimizers with the settings the course uses, what to look for)
RACES = (
    (
        "ravine",
        [-2.8, 1.0],
        ["sgd:lr=0.45", "momentum:lr=0.05", "nesterov:lr=0.05", "adam:lr=0.3"],
        "plain GD zig-zags across the ravine; momentum glides along it",
    ),
    (
        "anisotropic_well",
        [-2.0, 1.0],
        ["sgd:lr=0.5", "momentum:lr=0.1", "adagrad:lr=0.5", "rmsprop:lr=0.05", "adam:lr=0.1"],
        "adaptive methods scale each axis; GD crawls on the flat side",
    ),
    (
        "rosenbrock",
        [-1.2, 1.0],
        ["sgd:lr=0.001", "momentum:lr=0.0005", "adam:lr=0.05", "newton"],
        "the curved valley: first-order methods find it fast and follow it slowly",
    ),
    (
        "saddle",
        [-1.5, 0.01],
        ["sgd:lr=0.05", "momentum:lr=0.05", "adam:lr=0.05", "newton"],
        "Newton jumps to the saddle point; gradient methods roll off it",
    ),
)


def run_demo(out: Path, steps: int = 150) -> list[Path]:
    from . import lab, landscapes
    from .plots import figures
    from .plots.animation import animate

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for key, start, optimizers, lesson in RACES:
        result = lab.race(key, optimizers, [start], steps)
        picture, movie = out / f"{key}.png", out / f"{key}.gif"
        figure = figures.overview(result)
        figure.savefig(picture)
        figures.plt.close(figure)
        animate(result, movie)
        written += [picture, movie]
        print(f"\n{landscapes.get(key).title}: {lesson}")
        for info, loss, diverged in zip(
            result.runs, result.final_loss.tolist(), result.diverged.tolist(), strict=True
        ):
            shown = "diverged" if diverged or not math.isfinite(loss) else f"{loss:.3e}"
            print(f"  {figures.run_label(info):<28} final loss {shown}")
        print(f"  wrote {picture} and {movie}")
    return written
