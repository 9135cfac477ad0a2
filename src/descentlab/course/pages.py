"""The HTML pages: home, lessons, review, final quiz, playground, progress, and the clips.

Pages are rendered on the server with Jinja2 (math already MathML); the small script in
``static/course.js`` draws the race widgets and sends quiz answers to the JSON API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from .. import landscapes, optim
from ..plots.palette import colour
from . import csrf
from . import playground as playground_query
from .api import MAX_RACERS, MAX_STEPS, numeric_hyperparameters
from .clips import ClipError
from .content import SLIDER_SCALES, Course, Lesson
from .rendering import to_mathml

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


def error_page(
    request: Request, status_code: int, message: str, heading: str | None = None
) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, message=message, heading=heading)


def equations(key: str) -> list[str]:
    """The spec's update equations of ``key`` as display MathML."""
    return [to_mathml(latex, display=True) for latex in optim.spec(key).equations]


def slider_config(lesson: Lesson) -> list[dict[str, Any]]:
    """One slider per (racer, named hyperparameter) over the spec's tuning range."""
    race = lesson.front.race
    sliders = []
    for index, racer in enumerate(race.optimizers):
        spec = optim.spec(racer.key)
        for name in race.sliders:
            hyper = next((h for h in spec.hyperparameters if h.name == name), None)
            if hyper is None or hyper.scale not in SLIDER_SCALES:
                continue
            value = racer.hyperparameters.get(name, hyper.default)
            sliders.append(
                {
                    "racer": index,
                    "key": racer.key,
                    "name": name,
                    "symbol": hyper.symbol,
                    "low": hyper.low,
                    "high": max(hyper.high, value),
                    "scale": hyper.scale,
                    "value": value,
                    "low_value": min(hyper.low, value),
                }  # fmt: skip
            )
    return sliders


def widget_config(lesson: Lesson) -> dict[str, Any] | None:
    race = lesson.front.race
    if race is None:
        return None
    return {
        "landscape": race.landscape,
        "start": race.start,
        "steps": race.steps,
        "optimizers": [
            {
                "key": r.key,
                "hyperparameters": r.hyperparameters,
                "colour": colour(r.key),
                "schedule": None if r.schedule is None else r.schedule.model_dump(),
            }
            for r in race.optimizers
        ],
        "sliders": slider_config(lesson),
    }


def _has_clip(lesson: Lesson) -> bool:
    """Every lesson with a race has its clip (the lab animates 1-D curves and 2-D landscapes)."""
    return lesson.front.race is not None


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request):
        course: Course = request.app.state.course
        progress = request.app.state.store.progress(request.state.learner)
        return render(request, "home.html", course=course, done=set(progress.lessons_done))

    @router.get("/lessons/{slug}", response_class=HTMLResponse)
    def lesson_page(slug: str, request: Request):
        course: Course = request.app.state.course
        lesson = course.lesson(slug)
        if lesson is None:
            raise HTTPException(404, f"There is no lesson called {slug!r}.")
        before, after = course.neighbours(slug)
        specs = [(optim.spec(key), equations(key)) for key in lesson.front.optimizers]
        widget = widget_config(lesson)
        return render(
            request, "lesson.html", lesson=lesson, before=before, after=after, specs=specs,
            widget=json.dumps(widget) if widget else None,
            quiz=course.quizzes[lesson.front.quiz],
            clip=_has_clip(lesson),
        )  # fmt: skip

    @router.get("/clips/{slug}.mp4")
    async def clip(slug: str, request: Request):
        lesson = request.app.state.course.lesson(slug)
        if lesson is None:
            raise HTTPException(404, f"There is no lesson called {slug!r}.")
        try:
            path = await run_in_threadpool(request.app.state.clips.clip, lesson)
        except ClipError as error:
            raise HTTPException(404, str(error)) from None
        return FileResponse(path, media_type="video/mp4")

    @router.get("/review", response_class=HTMLResponse)
    def review(request: Request):
        rows = [(optim.spec(key), equations(key), colour(key)) for key in optim.names()]
        return render(request, "review.html", rows=rows)

    @router.get("/quiz", response_class=HTMLResponse)
    def final_quiz(request: Request):
        quiz = request.app.state.course.quizzes.get("final")
        if quiz is None:
            raise HTTPException(404, "The final quiz is not written yet.")
        record = request.app.state.store.progress(request.state.learner).quizzes.get("final")
        return render(request, "quiz.html", quiz=quiz, record=record)

    @router.get("/playground", response_class=HTMLResponse)
    def playground(request: Request):
        setup, problems = playground_query.parse(request.query_params)
        keys = optim.names()
        return render(
            request, "playground.html", setup=setup, problems=problems,
            landscapes=[landscapes.get(name) for name in landscapes.names()],
            optimizers=[(key, optim.spec(key).title) for key in keys],
            hyperparameters=json.dumps({key: [h.model_dump() for h in numeric_hyperparameters(key)] for key in keys}),
            colours=json.dumps({key: colour(key) for key in keys}),
            max_racers=MAX_RACERS, max_steps=MAX_STEPS,
        )  # fmt: skip

    @router.get("/progress", response_class=HTMLResponse)
    def progress_page(request: Request):
        course: Course = request.app.state.course
        learner = request.state.learner
        progress = request.app.state.store.progress(learner)
        token = csrf.token_for(request.app.state.csrf_secret, learner)
        return render(
            request, "progress.html", course=course, progress=progress,
            csrf_field=csrf.FORM_FIELD, csrf_token=token,
        )  # fmt: skip

    @router.post("/progress/reset")
    async def reset(request: Request):
        # The form is urlencoded; parsed here with the standard library (Starlette's form parser
        # would need python-multipart for this one field).
        fields = parse_qs((await request.body()).decode("latin-1"))
        token = (fields.get(csrf.FORM_FIELD) or [None])[0]
        learner = request.state.learner
        if not csrf.is_valid(request.app.state.csrf_secret, learner, token):
            return error_page(request, 403, csrf.REFUSED, heading="Nothing was reset")
        await run_in_threadpool(request.app.state.store.reset, learner)
        return RedirectResponse("/progress", status_code=303)

    return router
