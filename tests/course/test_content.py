"""The content loader: good files load; every broken case names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from descentlab.course.content import ContentError, default_content_dir, load_course
from descentlab.course.rendering import MathError, markdown, markdown_inline

from .conftest import FIXTURE_CONTENT


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        load_course(folder)
    return caught.value.problems


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    """The last line holding ``needle`` (a duplicate is reported where it repeats)."""
    return [n for n, row in enumerate(path.read_text().splitlines(), 1) if needle in row][-1]


def test_fixture_content_loads_in_order_with_math_and_sections():
    course = load_course(FIXTURE_CONTENT)
    assert [lesson.slug for lesson in course.lessons] == ["gradient-descent", "momentum"]
    assert set(course.quizzes) == {"gradient-descent", "momentum", "final"}
    first = course.lessons[0]
    assert list(first.sections) == [
        "Key idea", "How it works", "Advantages", "Disadvantages", "Common misconception", "Try it"
    ]  # fmt: skip
    assert (
        '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'
        in first.sections["How it works"]
    )
    assert first.front.race.optimizers[0].hyperparameters == {"lr": 0.3}
    question = course.quizzes["gradient-descent"].question("knobs")
    assert question.multiple and question.correct_indices == {0, 1}


def test_the_packaged_content_loads():
    """Whatever lessons and quizzes ship in the package load without a problem."""
    course = load_course(default_content_dir())
    for quiz in course.quizzes.values():
        for question in quiz.data.questions:
            assert all(choice.explanation for choice in question.choices)


@pytest.mark.parametrize(
    ("file", "old", "new", "needle", "message"),
    [
        # yaml's own error, located by its mark
        (
            "lessons/02-momentum.md",
            "title: Momentum",
            "title: [Momentum",
            "title: [Momentum",
            "invalid YAML",
        ),
        # Pydantic: a required int, a range, an unknown key, a missing key (reported at the key's parent)
        ("lessons/02-momentum.md", "minutes: 8", "minutes: 40", "minutes: 40", "minutes"),
        ("lessons/02-momentum.md", "order: 2", "order: 2\nauthor: me", "author: me", "author"),
        ("lessons/02-momentum.md", "steps: 120", "steps: 5", "steps: 5", "race.steps"),
        ("lessons/02-momentum.md", "slug: momentum", "slug: Momentum!", "slug: Momentum!", "slug"),
        # cross-checks against the registry, the landscapes and the file name
        (
            "lessons/02-momentum.md",
            "optimizers: [sgd, momentum]",
            "optimizers: [sgd, warp]",
            "optimizers: [sgd, warp]",
            "unknown optimizer 'warp'",
        ),
        (
            "lessons/02-momentum.md",
            "landscape: ravine",
            "landscape: volcano",
            "landscape: volcano",
            "unknown landscape 'volcano'",
        ),
        (
            "lessons/02-momentum.md",
            "landscape: ravine",
            "landscape: x**2 + import(y)",
            "landscape: x**2",
            "race.landscape",
        ),
        (
            "lessons/02-momentum.md",
            "start: [-2.8, 1.0]",
            "start: [-99, 1.0]",
            "start: [-99",
            "outside the domain",
        ),
        (
            "lessons/02-momentum.md",
            "momentum: 0.9}",
            "momentun: 0.9}",
            "momentun",
            "no hyperparameter 'momentun'",
        ),
        (
            "lessons/02-momentum.md",
            "sliders: [lr, momentum]",
            "sliders: [lr, beta2]",
            "sliders: [lr, beta2]",
            "beta2",
        ),
        (
            "lessons/02-momentum.md",
            "order: 2",
            "order: 3",
            "order: 3",
            "differs from the file name",
        ),
        (
            "lessons/02-momentum.md",
            "quiz: momentum",
            "quiz: nesterov",
            "quiz: nesterov",
            "quizzes/nesterov.yaml",
        ),
        # the body: sections and math
        (
            "lessons/02-momentum.md",
            "## Disadvantages",
            "## Drawbacks",
            "## Drawbacks",
            "'## Disadvantages' belongs",
        ),
        (
            "lessons/02-momentum.md",
            r"$\frac{\eta}{1-\beta}$",
            r"$\frac{\eta}{1-\beta$",
            r"$\frac{\eta}{1-\beta$",
            "cannot render the math",
        ),
        # quizzes
        (
            "quizzes/momentum.yaml",
            "    choices:\n      - text: A decaying",
            "    choices:\n      - text: [A decaying",
            "text: [A decaying",
            "invalid YAML",
        ),
        (
            "quizzes/momentum.yaml",
            "        explanation: That is RMSprop's.\n",
            "",
            "- text: Squared gradients",
            "explanation",
        ),
        (
            "quizzes/momentum.yaml",
            "  - id: effective",
            "  - id: buffer",
            "  - id: buffer\n",
            "used twice",
        ),
        (
            "quizzes/momentum.yaml",
            "        correct: false\n        explanation: That is RMSprop's.",
            "        correct: true\n        explanation: That is RMSprop's.",
            "- id: buffer",
            "set multiple: true",
        ),
        ("quizzes/final.yaml", "- id: q9", "- id: q9\n  bonus: 1", "bonus: 1", "bonus"),
    ],
)
def test_a_broken_file_is_reported_with_its_name_and_line(
    content_dir, file, old, new, needle, message
):
    path = content_dir / file
    edit(path, old, new)
    expected_line = line_of(path, needle.splitlines()[0])
    problems = problems_of(content_dir)
    ours = [p for p in problems if p.startswith(f"{path.name}:")]
    assert any(message in p for p in ours), problems
    located = [p for p in ours if message in p][0]
    assert located.startswith(f"{path.name}:{expected_line}:"), (located, expected_line)


def test_a_quiz_with_too_few_questions_and_no_correct_choice(content_dir):
    path = content_dir / "quizzes" / "final.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("- id: q3")])
    problems = problems_of(content_dir)
    assert any(p.startswith("final.yaml:") and "at least 10 questions" in p for p in problems)
    path = content_dir / "quizzes" / "momentum.yaml"
    edit(
        path,
        "        correct: true\n        explanation: Each step",
        "        correct: false\n        explanation: Each step",
    )
    assert any(
        "momentum.yaml:" in p and "has no correct choice" in p for p in problems_of(content_dir)
    )


def test_missing_front_matter_and_wrong_file_name(content_dir):
    (content_dir / "lessons" / "03-nesterov.md").write_text("# Nesterov\n\nno front matter\n")
    (content_dir / "lessons" / "momentum.md").write_text(
        (content_dir / "lessons" / "02-momentum.md").read_text()
    )
    problems = problems_of(content_dir)
    assert "03-nesterov.md:1: a lesson starts with a '---' line, then its front matter" in problems
    assert any(p.startswith("momentum.md:1: a lesson file is named NN-slug.md") for p in problems)
    assert any("is also" in p for p in problems)  # two files claim slug 'momentum'


def test_every_problem_is_listed_at_once(content_dir):
    edit(content_dir / "lessons" / "01-gradient-descent.md", "minutes: 5", "minutes: 1")
    edit(content_dir / "quizzes" / "momentum.yaml", "title: Momentum", "title: [")
    problems = problems_of(content_dir)
    assert any(p.startswith("01-gradient-descent.md:5:") for p in problems)
    assert any(p.startswith("momentum.yaml:2:") for p in problems)


def test_markdown_math_rules():
    html = markdown(r"Cost \$5 and $x^2$, `$not math$`, and $$\sqrt{v}$$")
    assert "$5" in html and "<code>$not math$</code>" in html
    assert html.count("<math") == 2 and 'display="block"' in html
    assert "$" not in markdown_inline("a $5 and $ 6 price").replace("$5 and $ 6", "")
    for broken in (r"$\frac{1}{$", r"$\frac{a}{1-b$", r"$\bta$", r"$a}$"):
        with pytest.raises(MathError):
            markdown(broken)
