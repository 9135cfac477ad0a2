"""The shapes of the course's content files (Pydantic, checked field by field) and of the loaded
course: lessons with their rendered sections, quizzes with their rendered prompts and choices.

The format is agreed with the content writers; :mod:`.content` loads files into these shapes and
reports where a file departs from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .schedule_settings import ScheduleIn

SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Slug = Annotated[str, StringConstraints(pattern=SLUG)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
#: The level-2 sections of a lesson body, in order; the last one is optional.
SECTIONS = ("Key idea", "How it works", "Advantages", "Disadvantages", "Common misconception")
OPTIONAL_SECTION = "Try it"
FINAL_QUIZ = "final"
#: A slider moves a hyperparameter over its spec's tuning range on one of these scales.
SLIDER_SCALES = ("log", "linear", "log1m")


class ContentError(ValueError):
    """Every problem of a content folder, one ``file:line: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the course content has problems:\n" + "\n".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaceOptimizer(_Strict):
    """One racer of a lesson's widget: a registry key, hyperparameters by spec name, and
    optionally a learning-rate schedule (``schedule: {name: cosine, params: {total_steps: 150}}``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    key: str
    schedule: ScheduleIn | None = None

    @property
    def hyperparameters(self) -> dict[str, float]:
        return dict(self.model_extra or {})


class LessonRace(_Strict):
    landscape: Text
    start: list[float] = Field(min_length=1, max_length=2)
    steps: int = Field(ge=10, le=1000)
    optimizers: list[RaceOptimizer] = Field(min_length=1, max_length=4)
    sliders: list[str] = Field(default_factory=list)
    caption: Text


class LessonFront(_Strict):
    slug: Slug
    title: Text
    order: int = Field(ge=0, le=99)
    minutes: int = Field(ge=3, le=15)
    summary: Text
    optimizers: list[str] = Field(default_factory=list)
    race: LessonRace | None = None
    quiz: Slug


class Choice(_Strict):
    text: Text
    correct: bool
    explanation: Text


class Question(_Strict):
    id: Slug
    prompt: Text
    multiple: bool = False
    choices: list[Choice] = Field(min_length=2, max_length=6)

    @property
    def correct_indices(self) -> frozenset[int]:
        return frozenset(i for i, choice in enumerate(self.choices) if choice.correct)


class QuizFile(_Strict):
    id: Slug
    title: Text
    lesson: Slug | Literal["final"]
    questions: list[Question] = Field(min_length=3)


@dataclass(frozen=True)
class Lesson:
    """A validated lesson, its body rendered to HTML per section."""

    front: LessonFront
    path: Path
    sections: dict[str, str]

    @property
    def slug(self) -> str:
        return self.front.slug


@dataclass(frozen=True)
class Quiz:
    """A validated quiz, with prompts, choices and explanations rendered to HTML."""

    data: QuizFile
    path: Path
    prompts: dict[str, str]
    choices: dict[str, list[str]]
    explanations: dict[str, list[str]]

    @property
    def id(self) -> str:
        return self.data.id

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.data.questions if q.id == question_id), None)


@dataclass
class Course:
    """Lessons in order and quizzes by id."""

    lessons: list[Lesson] = field(default_factory=list)
    quizzes: dict[str, Quiz] = field(default_factory=dict)

    def lesson(self, slug: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons if lesson.slug == slug), None)

    def neighbours(self, slug: str) -> tuple[Lesson | None, Lesson | None]:
        slugs = [lesson.slug for lesson in self.lessons]
        index = slugs.index(slug)
        before = self.lessons[index - 1] if index > 0 else None
        after = self.lessons[index + 1] if index + 1 < len(self.lessons) else None
        return before, after
