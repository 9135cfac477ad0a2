"""The course's lessons and quizzes: data files, loaded and validated once at start-up.

A lesson is ``lessons/NN-slug.md``: YAML front matter between ``---`` lines, then Markdown with the
sections of :data:`SECTIONS`. A quiz is ``quizzes/<id>.yaml``. The format is agreed with the content
writers (see the course's README section). Every problem found is reported as ``file:line: message``
(the line from yaml's marks, or of the front-matter key Pydantic rejected), all problems at once,
so a broken file stops the server at start-up instead of reaching a learner as a 500 page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .. import landscapes, optim
from . import rendering
from .content_schema import (  # noqa: F401  (re-exported: the loader's public names)
    FINAL_QUIZ,
    OPTIONAL_SECTION,
    SECTIONS,
    SLIDER_SCALES,
    ContentError,
    Course,
    Lesson,
    LessonFront,
    LessonRace,
    Question,
    Quiz,
    QuizFile,
)

LESSON_FILE = re.compile(r"^(\d\d)-([a-z0-9]+(?:-[a-z0-9]+)*)\.md$")


# ----------------------------------------------------------------------------- YAML with lines


def _node_line(node: yaml.Node | None, location: Iterable[Any]) -> int | None:
    """The 1-based line of the YAML node at a Pydantic error location (deepest one found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _load_yaml(text: str, name: str, first_line: int, problems: list[str]):
    """(data, node tree) of a YAML document, or (None, None) with the problem recorded."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The context (e.g. the '[' of an unclosed list) is where the writer has to look; the
        # problem mark is where the parser gave up, often a line later.
        context = getattr(error, "context_mark", None)
        problem = getattr(error, "problem_mark", None)
        mark = context or problem
        line = first_line + mark.line if mark is not None else first_line
        reason = getattr(error, "problem", None) or str(error)
        if context is not None and problem is not None:
            reason = f"{error.context}: {reason} (line {first_line + problem.line})"
        problems.append(f"{name}:{line}: invalid YAML: {reason}")
        return None, None
    return data, node


def _validate(model, data, node, name: str, first_line: int, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(
            f"{name}:{first_line}: expected key: value pairs, got {type(data).__name__}"
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            line = _node_line(node, item["loc"])
            line = first_line + line - 1 if line is not None else first_line
            where = ".".join(str(part) for part in item["loc"]) or "file"
            problems.append(f"{name}:{line}: {where}: {item['msg']}")
        return None


# ----------------------------------------------------------------------------- lessons


def _split_front_matter(text: str, name: str, problems: list[str]) -> tuple[str, str, int] | None:
    """(front matter, body, line of the body's first line)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        problems.append(f"{name}:1: a lesson starts with a '---' line, then its front matter")
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]), index + 2
    problems.append(f"{name}:1: the front matter has no closing '---' line")
    return None


def _check_sections(body: str, body_line: int, name: str, problems: list[str]) -> dict[str, str]:
    """Split the body at its level-2 headings; check their names and order."""
    tokens = rendering.parse(body)
    headings = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            headings.append((tokens[index + 1].content.strip(), token.map[0], token.map[1]))
    found = [title for title, _, _ in headings]
    expected = list(SECTIONS) + ([OPTIONAL_SECTION] if OPTIONAL_SECTION in found else [])
    if found != expected:
        for position, (title, start, _) in enumerate(headings):
            if position >= len(expected) or title != expected[position]:
                wanted = expected[position] if position < len(expected) else "no further section"
                problems.append(
                    f"{name}:{body_line + start}: section '## {title}' where '## {wanted}' belongs"
                    f" (sections, in order: {', '.join(expected)})"
                )
                return {}
        missing = expected[len(found)]
        problems.append(f"{name}:{body_line + len(body.splitlines())}: missing '## {missing}'")
        return {}
    lines = body.split("\n")
    sections = {}
    for position, (title, _, end) in enumerate(headings):
        stop = headings[position + 1][1] if position + 1 < len(headings) else len(lines)
        text = "\n".join(lines[end:stop])
        try:
            sections[title] = rendering.markdown(text)
        except rendering.MathError as error:
            line = next((n for n, row in enumerate(lines) if error.latex in row), end)
            problems.append(f"{name}:{body_line + line}: {error}")
    return sections


def _check_race(race: LessonRace, name: str, node, problems: list[str]) -> None:
    def report(location: tuple, message: str) -> None:
        problems.append(f"{name}:{(_node_line(node, ('race', *location)) or 0) + 1}: {message}")

    try:
        surface = resolve_landscape(race.landscape)
    except ValueError as error:
        report(("landscape",), f"race.landscape: {str(error).splitlines()[0]}")
        return
    if len(race.start) != surface.dim:
        report(
            ("start",),
            f"race.start: {surface.key} is {surface.dim}-D, the start has {len(race.start)} numbers",
        )
    else:
        for axis, (value, (low, high)) in enumerate(zip(race.start, surface.domain, strict=True)):
            if not low <= value <= high:
                report(
                    ("start",),
                    f"race.start[{axis}] = {value} is outside the domain [{low}, {high}]",
                )
    slider_ok = set()
    for index, racer in enumerate(race.optimizers):
        try:
            entry = optim.spec(racer.key)
            entry.kwargs(racer.hyperparameters)
        except ValueError as error:
            report(("optimizers", index), f"race.optimizers[{index}]: {error}")
            continue
        for hyper_name, value in racer.hyperparameters.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                report(
                    ("optimizers", index, hyper_name),
                    f"race.optimizers[{index}].{hyper_name} must be a number",
                )
        slider_ok |= {h.name for h in entry.hyperparameters if h.scale in SLIDER_SCALES}
    for index, slider in enumerate(race.sliders):
        if slider not in slider_ok:
            report(
                ("sliders", index),
                f"race.sliders: no racer has a tunable {slider!r} (tunable: {', '.join(sorted(slider_ok))})",
            )


def resolve_landscape(text: str) -> landscapes.Landscape:
    """A built-in landscape by name or a typed expression; ValueError naming the problem."""
    if text in landscapes.names():
        return landscapes.get(text)
    if re.fullmatch(r"[a-z_]+", text) and not set(text) & set("xyz"):
        raise ValueError(f"unknown landscape {text!r}; known: {', '.join(landscapes.names())}")
    surface = landscapes.parse(text)
    if surface.dim > 2:
        raise ValueError(
            f"the expression uses z: races here are on 1-D or 2-D landscapes, got {text!r}"
        )
    return surface


def load_lesson(path: Path, problems: list[str]) -> tuple[Lesson | None, Any]:
    name = path.name
    text = path.read_text(encoding="utf-8")
    split = _split_front_matter(text, name, problems)
    if split is None:
        return None, None
    front_text, body, body_line = split
    data, node = _load_yaml(front_text, name, 2, problems)
    if data is None and node is None:
        return None, None
    front = _validate(LessonFront, data, node, name, 2, problems)
    sections = _check_sections(body, body_line, name, problems)
    if front is None:
        return None, node
    line_of = lambda *location: 1 + (_node_line(node, location) or 0)  # noqa: E731
    match = LESSON_FILE.match(name)
    if match is None:
        problems.append(f"{name}:1: a lesson file is named NN-slug.md, e.g. 04-momentum.md")
    else:
        if match.group(2) != front.slug:
            problems.append(
                f"{name}:{line_of('slug')}: slug {front.slug!r} differs from the file name's {match.group(2)!r}"
            )
        if int(match.group(1)) != front.order:
            problems.append(
                f"{name}:{line_of('order')}: order {front.order} differs from the file name's {match.group(1)}"
            )
    for index, key in enumerate(front.optimizers):
        if key not in optim.names():
            problems.append(
                f"{name}:{line_of('optimizers', index)}: optimizers: unknown optimizer {key!r}"
            )
    if front.race is not None:
        _check_race(front.race, name, node, problems)
    return Lesson(front, path, sections), node


# ----------------------------------------------------------------------------- quizzes


def load_quiz(path: Path, problems: list[str]) -> Quiz | None:
    name = path.name
    data, node = _load_yaml(path.read_text(encoding="utf-8"), name, 1, problems)
    if data is None and node is None:
        return None
    quiz = _validate(QuizFile, data, node, name, 1, problems)
    if quiz is None:
        return None
    line_of = lambda *location: _node_line(node, location) or 1  # noqa: E731
    if quiz.id != path.stem:
        problems.append(
            f"{name}:{line_of('id')}: id {quiz.id!r} differs from the file name's {path.stem!r}"
        )
    final = quiz.lesson == FINAL_QUIZ
    if final != (quiz.id == FINAL_QUIZ):
        problems.append(
            f"{name}:{line_of('lesson')}: only the quiz with id 'final' has lesson: final"
        )
    count = len(quiz.questions)
    if final and count < 10:
        problems.append(
            f"{name}:{line_of('questions')}: the final quiz needs at least 10 questions, has {count}"
        )
    if not final and not 3 <= count <= 5:
        problems.append(
            f"{name}:{line_of('questions')}: a lesson quiz has 3 to 5 questions, has {count}"
        )
    seen: set[str] = set()
    prompts, choices, explanations = {}, {}, {}
    for index, question in enumerate(quiz.questions):
        here = line_of("questions", index)
        if question.id in seen:
            problems.append(f"{name}:{here}: question id {question.id!r} is used twice")
        seen.add(question.id)
        right = len(question.correct_indices)
        if right == 0:
            problems.append(f"{name}:{here}: question {question.id!r} has no correct choice")
        elif right > 1 and not question.multiple:
            problems.append(
                f"{name}:{here}: question {question.id!r} has {right} correct choices; set multiple: true"
            )
        try:
            prompts[question.id] = rendering.markdown_inline(question.prompt)
            choices[question.id] = [rendering.markdown_inline(c.text) for c in question.choices]
            explanations[question.id] = [
                rendering.markdown_inline(c.explanation) for c in question.choices
            ]
        except rendering.MathError as error:
            problems.append(f"{name}:{here}: question {question.id!r}: {error}")
    return Quiz(quiz, path, prompts, choices, explanations)


# ----------------------------------------------------------------------------- the folder


def load_course(folder: str | Path) -> Course:
    """Load ``folder/lessons/*.md`` and ``folder/quizzes/*.yaml``; raise :class:`ContentError`
    listing every problem (file and line) if any file is broken or two files disagree."""
    folder = Path(folder)
    problems: list[str] = []
    lessons: list[Lesson] = []
    quizzes: dict[str, Quiz] = {}
    for path in sorted((folder / "quizzes").glob("*.yaml")):
        quiz = load_quiz(path, problems)
        if quiz is not None:
            quizzes[quiz.id] = quiz
    nodes = {}
    for path in sorted((folder / "lessons").glob("*.md")):
        lesson, node = load_lesson(path, problems)
        if lesson is not None:
            lessons.append(lesson)
            nodes[lesson.slug] = node
    lessons.sort(key=lambda lesson: lesson.front.order)
    for attribute in ("slug", "order"):
        owners: dict[Any, str] = {}
        for lesson in lessons:
            value = getattr(lesson.front, attribute)
            if value in owners:
                problems.append(
                    f"{lesson.path.name}:1: {attribute} {value!r} is also {owners[value]}'s"
                )
            owners[value] = lesson.path.name
    slugs = {lesson.slug for lesson in lessons}
    for lesson in lessons:
        if lesson.front.quiz not in quizzes:
            line = 1 + (_node_line(nodes[lesson.slug], ("quiz",)) or 0)
            problems.append(
                f"{lesson.path.name}:{line}: quiz {lesson.front.quiz!r} has no file quizzes/{lesson.front.quiz}.yaml"
            )
    for quiz in quizzes.values():
        if quiz.data.lesson != FINAL_QUIZ and quiz.data.lesson not in slugs:
            problems.append(f"{quiz.path.name}:1: lesson {quiz.data.lesson!r} has no lesson file")
    if problems:
        raise ContentError(problems)
    return Course(lessons, quizzes)


def default_content_dir() -> Path:
    """The lessons and quizzes shipped in the package."""
    return Path(__file__).parent / "content"
