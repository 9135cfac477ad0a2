"""The JSON API: landscapes, contours, optimizers, races, quizzes and the learner's progress.

Every request is bounded: steps, racers per race, expression length, hyperparameters per racer and
the body's size (see :mod:`.limits`), so no request can hold the server for long. Bad input is a
422 whose ``message`` names the field; a quiz never sends its answers before an attempt.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .. import landscapes, optim
from . import contours as contour_lines
from . import csrf
from .content import Course, Quiz
from .races import Racer, RaceRequest, landscape_dict
from .schedule_settings import ScheduleIn
from .store import Progress

MAX_STEPS = 1000
MAX_RACERS = 4
MAX_EXPRESSION = 200
MAX_HYPERPARAMETERS = 8

Key = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RacerIn(_Model):
    key: Key
    hyperparameters: dict[Key, float] = Field(default_factory=dict, max_length=MAX_HYPERPARAMETERS)
    #: The learning-rate schedule multiplying this racer's lr; none: a constant lr.
    schedule: ScheduleIn | None = None

    @field_validator("key")
    @classmethod
    def _known(cls, key: str) -> str:
        if key not in optim.names():
            raise ValueError(f"unknown optimizer {key!r}; choose from {', '.join(optim.names())}")
        return key

    @field_validator("hyperparameters")
    @classmethod
    def _finite(cls, values: dict[str, float]) -> dict[str, float]:
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        return values


class RaceIn(_Model):
    landscape: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION)]
    start: list[float] = Field(min_length=1, max_length=2)
    steps: int = Field(ge=1, le=MAX_STEPS)
    optimizers: list[RacerIn] = Field(min_length=1, max_length=MAX_RACERS)

    def as_request(self) -> RaceRequest:
        racers = tuple(
            Racer(
                item.key,
                tuple(sorted(item.hyperparameters.items())),
                None if item.schedule is None else item.schedule.setting(),
            )
            for item in self.optimizers
        )
        return RaceRequest(self.landscape.strip(), tuple(self.start), self.steps, racers)


class ScheduleOut(BaseModel):
    name: str
    params: dict[str, float | list[float]]


class RunOut(BaseModel):
    optimizer: str
    hyperparameters: dict[str, float]
    path: list[list[float | None]]
    loss: list[float | None]
    final_loss: float | None
    diverged: bool
    diverged_at: int
    #: Present for a racer with a schedule: the schedule, and its lr multiplier at each step.
    schedule: ScheduleOut | None = None
    lr_factor: list[float] | None = None


class LandscapeOut(BaseModel):
    name: str
    title: str
    latex: str
    dim: int
    domain: list[list[float]]
    minimum: float | None = None
    teaches: str = ""


class RaceOut(BaseModel):
    landscape: LandscapeOut
    steps: int
    runs: list[RunOut]


class HyperparameterOut(BaseModel):
    name: str
    default: float
    low: float | None
    high: float | None
    scale: str
    symbol: str
    meaning: str


class OptimizerOut(BaseModel):
    key: str
    title: str
    colour: str
    hyperparameters: list[HyperparameterOut]


class ChoiceOut(BaseModel):
    text: str
    html: str


class QuestionOut(BaseModel):
    id: str
    prompt: str
    prompt_html: str
    multiple: bool
    choices: list[ChoiceOut]


class QuizOut(BaseModel):
    id: str
    title: str
    lesson: str
    questions: list[QuestionOut]


Answer = Annotated[list[Annotated[int, Field(ge=0, le=5)]], Field(max_length=6)]


class CheckIn(_Model):
    choices: Answer


class ChoiceFeedback(BaseModel):
    chosen: bool
    correct: bool
    explanation: str
    explanation_html: str


class QuestionFeedback(BaseModel):
    id: str
    correct: bool
    choices: list[ChoiceFeedback]


class AttemptIn(_Model):
    answers: dict[Annotated[str, StringConstraints(max_length=100)], Answer] = Field(max_length=100)


class AttemptOut(BaseModel):
    attempt: int
    quiz: str
    score: int
    total: int
    message: str
    questions: list[QuestionFeedback]


class QuizRecordOut(BaseModel):
    attempts: int
    best: int
    last: int
    total: int


class ProgressOut(BaseModel):
    lessons_done: list[str]
    quizzes: dict[str, QuizRecordOut]


class ProgressWithTokenOut(ProgressOut):
    #: Send it back as the X-CSRF-Token header to reset (another site cannot read this answer).
    csrf_token: str


def numeric_hyperparameters(key: str) -> list[HyperparameterOut]:
    """The hyperparameters a race may set: numbers (not flags, not choices)."""
    return [
        HyperparameterOut(
            name=h.name,
            default=h.default,
            low=h.low,
            high=h.high,
            scale=h.scale,
            symbol=h.symbol,
            meaning=h.meaning,
        )  # fmt: skip
        for h in optim.spec(key).hyperparameters
        if isinstance(h.default, int | float)
        and not isinstance(h.default, bool)
        and h.scale != "choice"
    ]


def _quiz_or_404(course: Course, quiz_id: str) -> Quiz:
    quiz = course.quizzes.get(quiz_id)
    if quiz is None:
        raise HTTPException(404, f"no quiz {quiz_id!r}")
    return quiz


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, detail=message)


def feedback(quiz: Quiz, question_id: str, chosen: list[int]) -> QuestionFeedback:
    """Whether ``chosen`` answers the question, and every choice's explanation."""
    question = quiz.question(question_id)
    if question is None:
        raise _unprocessable(f"answers: quiz {quiz.id!r} has no question {question_id!r}")
    picked = set(chosen)
    if any(index >= len(question.choices) for index in picked):
        raise _unprocessable(
            f"answers.{question_id}: choices are numbered 0 to {len(question.choices) - 1}"
        )
    if len(picked) > 1 and not question.multiple:
        raise _unprocessable(f"answers.{question_id}: this question takes one choice")
    return QuestionFeedback(
        id=question.id,
        correct=picked == question.correct_indices,
        choices=[
            ChoiceFeedback(
                chosen=index in picked,
                correct=choice.correct,
                explanation=choice.explanation,
                explanation_html=quiz.explanations[question.id][index],
            )  # fmt: skip
            for index, choice in enumerate(question.choices)
        ],
    )


def score_message(score: int, total: int) -> str:
    return f"Your score is {score}/{total}"


def progress_out(progress: Progress) -> ProgressOut:
    return ProgressOut(
        lessons_done=progress.lessons_done,
        quizzes={
            quiz: QuizRecordOut(attempts=r.attempts, best=r.best, last=r.last, total=r.total)
            for quiz, r in progress.quizzes.items()
        },
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/landscapes", response_model=list[LandscapeOut])
    def list_landscapes() -> list[dict[str, Any]]:
        rows = []
        for name in landscapes.names():
            surface = landscapes.get(name)
            rows.append({**landscape_dict(surface, name), "teaches": surface.teaches})
        return rows

    @router.get("/contours")
    def get_contours(landscape: Annotated[str, StringConstraints(max_length=MAX_EXPRESSION)]):
        try:
            return contour_lines.contours(landscape.strip())
        except ValueError as error:
            raise _unprocessable(f"landscape: {str(error).splitlines()[0]}") from None

    @router.get("/optimizers", response_model=list[OptimizerOut])
    def list_optimizers() -> list[OptimizerOut]:
        from ..plots.palette import colour

        return [
            OptimizerOut(
                key=key,
                title=optim.spec(key).title,
                colour=colour(key),
                hyperparameters=numeric_hyperparameters(key),
            )  # fmt: skip
            for key in optim.names()
        ]

    @router.post("/race", response_model=RaceOut)
    async def post_race(body: RaceIn, request: Request) -> Response:
        # The service answers JSON bytes built from the same fields as RaceOut (which documents
        # them); validating 200 answers again here would cost the event loop most of a second.
        service = request.app.state.races
        try:
            answer = await service.race(body.as_request())
        except ValueError as error:
            raise _unprocessable(str(error).splitlines()[0]) from None
        except RuntimeError as error:  # a bug in a race, reported as such, not as a traceback
            raise HTTPException(503, str(error).splitlines()[0]) from None
        return Response(answer, media_type="application/json")

    @router.get("/quizzes/{quiz_id}", response_model=QuizOut)
    def get_quiz(quiz_id: str, request: Request) -> QuizOut:
        quiz = _quiz_or_404(request.app.state.course, quiz_id)
        return QuizOut(
            id=quiz.id,
            title=quiz.data.title,
            lesson=quiz.data.lesson,
            questions=[
                QuestionOut(
                    id=q.id,
                    prompt=q.prompt,
                    prompt_html=quiz.prompts[q.id],
                    multiple=q.multiple,
                    choices=[
                        ChoiceOut(text=c.text, html=quiz.choices[q.id][i])
                        for i, c in enumerate(q.choices)
                    ],
                )  # fmt: skip
                for q in quiz.data.questions
            ],
        )

    @router.post(
        "/quizzes/{quiz_id}/questions/{question_id}/check", response_model=QuestionFeedback
    )
    def check_question(quiz_id: str, question_id: str, body: CheckIn, request: Request):
        """Immediate feedback on one question; not recorded (an attempt is)."""
        quiz = _quiz_or_404(request.app.state.course, quiz_id)
        return feedback(quiz, question_id, body.choices)

    @router.post("/quizzes/{quiz_id}/attempts", response_model=AttemptOut)
    def post_attempt(quiz_id: str, body: AttemptIn, request: Request) -> AttemptOut:
        course: Course = request.app.state.course
        quiz = _quiz_or_404(course, quiz_id)
        unknown = sorted(set(body.answers) - {q.id for q in quiz.data.questions})
        if unknown:
            raise _unprocessable(f"answers: quiz {quiz.id!r} has no question {unknown[0]!r}")
        results = [feedback(quiz, q.id, body.answers.get(q.id, [])) for q in quiz.data.questions]
        score, total = sum(r.correct for r in results), len(results)
        learner = request.state.learner
        store = request.app.state.store
        attempt = store.record_attempt(learner, quiz.id, score, total, body.answers)
        if quiz.data.lesson != "final":
            store.mark_lesson_done(learner, quiz.data.lesson)
        return AttemptOut(
            attempt=attempt, quiz=quiz.id, score=score, total=total,
            message=score_message(score, total), questions=results,
        )  # fmt: skip

    @router.get("/progress", response_model=ProgressWithTokenOut)
    def get_progress(request: Request) -> ProgressWithTokenOut:
        learner = request.state.learner
        progress = progress_out(request.app.state.store.progress(learner))
        token = csrf.token_for(request.app.state.csrf_secret, learner)
        return ProgressWithTokenOut(**progress.model_dump(), csrf_token=token)

    @router.post("/progress/reset", response_model=ProgressOut)
    def reset_progress(request: Request) -> ProgressOut:
        """Delete the learner's progress; needs the X-CSRF-Token header from GET /api/progress."""
        token = request.headers.get(csrf.HEADER)
        if not csrf.is_valid(request.app.state.csrf_secret, request.state.learner, token):
            raise HTTPException(403, csrf.REFUSED)
        request.app.state.store.reset(request.state.learner)
        return progress_out(request.app.state.store.progress(request.state.learner))

    return router
