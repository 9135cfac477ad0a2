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
        result = lab.race(
            race.landscape,
            [(racer.key, racer.hyperparameters) for racer in race.optimizers],
            [race.start],
            race.steps,
            schedule=[
                None if racer.schedule is None else build_schedule(racer.schedule.setting())
                for racer in race.optimizers
            ],
        )
        if any(racer.schedule is not None for racer in race.optimizers):
            result.runs = _named_by_schedule(result.runs, race.optimizers)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".part.mp4")
        animate(result, partial, fps=15)
        partial.replace(out)  # never serve a half-written file


def _named_by_schedule(runs, racers):
    """The runs with their schedule's name among their hyperparameters, so the clip's legend
    tells apart the runs of one optimizer under different schedules."""
    from ..lab.result import RunInfo

    return [
        RunInfo(
            info.optimizer,
            {
                **info.hyperparameters,
                "schedule": racer.schedule.name if racer.schedule else "constant",
            },
            info.start,
        )
        for racer, info in zip(racers, runs, strict=True)
    ]


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
