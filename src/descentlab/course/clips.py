"""Each lesson's clip: an MP4 of its race, drawn by ``descentlab.plots.animation.animate`` and
cached on disk. The file name carries a hash of the race's settings, so editing a lesson's race
renders a new clip instead of serving a stale one. Renders run one at a time (pyplot's figure
registry is not thread-safe), and concurrent first requests for a clip render it once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import torch

from .content import Lesson
from .races import RaceRequest, RaceService
from .schedule_settings import build as build_schedule


class ClipError(ValueError):
    """This lesson has no clip (no race, or a race the animation cannot draw)."""


class ClipRenderer:
    def __init__(self, folder: Path, races: RaceService) -> None:
        self.folder = Path(folder)
        self.races = races
        self._rendering = threading.Lock()

    def path_for(self, lesson: Lesson) -> Path:
        race = lesson.front.race
        if race is None:
            raise ClipError(f"lesson {lesson.slug!r} has no race, hence no clip")
        settings = json.dumps(race.model_dump(), sort_keys=True).encode()
        digest = hashlib.sha256(settings).hexdigest()[:12]
        return self.folder / f"{lesson.slug}-{digest}.mp4"

    def clip(self, lesson: Lesson) -> Path:
        """The clip's file, rendered now if it is not cached yet (takes seconds)."""
        out = self.path_for(lesson)
        if out.exists():
            return out
        with self._rendering:
            if out.exists():
                return out
            self._render(lesson, out)
        return out

    def _render(self, lesson: Lesson, out: Path) -> None:
        from .. import lab
        from ..plots.animation import animate, ffmpeg_path

        race = lesson.front.race
        if ffmpeg_path() is None:
            raise ClipError("clips need ffmpeg: pip install imageio-ffmpeg")
        if any(racer.schedule is not None for racer in race.optimizers):
            result = _race_with_schedules(race)
        else:
            result = lab.race(
                race.landscape,
                [(racer.key, racer.hyperparameters) for racer in race.optimizers],
                [race.start],
                race.steps,
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".part.mp4")
        animate(result, partial, fps=15)
        partial.replace(out)  # never serve a half-written file


def _race_with_schedules(race):
    """The lesson's race when racers have their own lr schedules: ``lab.race`` takes one schedule
    per call, so each racer races alone and the results are joined in the racers' order. The
    schedule's name joins the run's hyperparameters, so the clip's legend tells the runs apart."""
    from .. import lab
    from ..lab.result import RaceResult, RunInfo

    parts = []
    for racer in race.optimizers:
        schedule = None if racer.schedule is None else build_schedule(racer.schedule.setting())
        parts.append(
            lab.race(
                race.landscape,
                [(racer.key, racer.hyperparameters)],
                [race.start],
                race.steps,
                schedule=schedule,
            )  # fmt: skip
        )
    runs = [
        RunInfo(
            info.optimizer,
            {
                **info.hyperparameters,
                "schedule": racer.schedule.name if racer.schedule else "constant",
            },
            info.start,
        )
        for racer, part in zip(race.optimizers, parts, strict=True)
        for info in part.runs
    ]

    def joined(name: str, dim: int = 0):
        return torch.cat([getattr(part, name) for part in parts], dim=dim)

    return RaceResult(
        landscape=parts[0].landscape, runs=runs, steps=race.steps,
        final=joined("final"), final_loss=joined("final_loss"),
        diverged_at=joined("diverged_at"), steps_to_tolerance=joined("steps_to_tolerance"),
        distance_to_minimum=joined("distance_to_minimum"),
        path=joined("path", 1), loss=joined("loss", 1),
    )  # fmt: skip


def lesson_request(lesson: Lesson) -> RaceRequest:
    """The lesson widget's race as the race service's request."""
    from .races import Racer

    race = lesson.front.race
    if race is None:
        raise ClipError(f"lesson {lesson.slug!r} has no race")
    racers = tuple(
        Racer(
            racer.key,
            tuple(sorted((k, float(v)) for k, v in racer.hyperparameters.items())),
            None if racer.schedule is None else racer.schedule.setting(),
        )
        for racer in race.optimizers
    )
    return RaceRequest(race.landscape, tuple(float(v) for v in race.start), race.steps, racers)
