"""The shipped course in headless Chromium (Debian's, driven by Playwright) against a real server.

Home -> the first lesson (its MathML, its widget drawing a race and answering a slider) -> its quiz
-> the final quiz and its score; the server restarted on the same SQLite file keeps the progress,
which the progress page's form then resets;
every lesson's math, widget (lr factors where it races schedules) and clip; a playground race draws
and its URL restores it. Pages fail on any script or console error. Screenshots go to
out/screenshots/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from descentlab import optim
from descentlab.course.content import default_content_dir, load_course
from descentlab.plots.palette import colour

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="browser tests need Debian's chromium at /usr/bin/chromium"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``descentlab serve`` in a child process on a loopback port."""

    def __init__(self, database: Path, cache: Path, content: Path | None = None) -> None:
        """``content=None`` serves the lessons and quizzes shipped in the package."""
        self.database, self.cache, self.content = database, cache, content
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        command = [
            sys.executable, "-m", "descentlab", "serve", "--port", str(self.port),
            "--db", str(self.database), "--cache", str(self.cache), "--no-clips",
        ]  # fmt: skip
        if self.content is not None:
            command += ["--content", str(self.content)]
        self.process = subprocess.Popen(command, env=environment, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/api/landscapes", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not answer within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    """A server of the course as shipped: the package's own lessons and quizzes."""
    folder = tmp_path_factory.mktemp("shipped")
    running = Server(folder / "course.sqlite3", folder / "cache", content=None)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        yield launched
        launched.close()


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_drawn(page, selector: str = ".race-widget") -> list:
    page.wait_for_selector(f"{selector}[data-state=drawn]", timeout=30_000)
    return json.loads(page.get_attribute(selector, "data-final-losses"))


def coloured_pixels(page, canvas_selector: str, hex_colour: str) -> int:
    """How many pixels of the canvas are (close to) the optimizer's colour."""
    return page.evaluate(
        """([selector, hex]) => {
            const canvas = document.querySelector(selector);
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - want[0]) + Math.abs(data[i + 1] - want[1]) + Math.abs(data[i + 2] - want[2]) < 30) count++;
            }
            return count;
        }""",
        [canvas_selector, hex_colour],
    )


def watch_errors(page) -> list[str]:
    """Uncaught exceptions, console errors and failed requests of ``page``, as they happen."""
    errors: list[str] = []

    def console(message) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url')})")

    def response(answer) -> None:
        if answer.status >= 400:
            errors.append(f"{answer.status} from {answer.url}")

    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", console)
    page.on("response", response)
    return errors


def answer(page, quiz, question, chosen: list[int], immediate: bool) -> None:
    """Tick ``chosen`` on one question of a quiz form (and press Check where it takes several)."""
    for index in chosen:
        page.check(f'input[name="{quiz.id}-{question.id}"][value="{index}"]')
    if immediate and question.multiple:
        page.click(f'fieldset[data-question="{question.id}"] button.check')


def a_wrong_answer(question) -> list[int]:
    wrong = [i for i, choice in enumerate(question.choices) if not choice.correct]
    return wrong[:1]


def test_a_learner_goes_through_the_shipped_course_and_keeps_progress(shipped_server, browser):
    """Home -> the first shipped lesson (math, widget, slider) -> its quiz -> the final quiz ->
    a restarted server still shows the progress."""
    course = load_course(default_content_dir())
    first = course.lessons[0]
    lesson_quiz, final = course.quizzes[first.front.quiz], course.quizzes["final"]
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(shipped_server.url + "/")
    assert "What you'll learn" in page.inner_text("main")
    shoot(page, "home")
    page.click("#start")
    page.wait_for_url(f"**/lessons/{first.slug}")

    # the lesson's math is MathML the browser lays out
    assert page.locator("main math").count() >= 1
    assert page.evaluate("document.querySelector('main math').getBoundingClientRect().width") > 5

    # the widget draws the race in the first racer's colour, and a slider re-runs it
    drawn = wait_drawn(page)
    racer_colour = colour(first.front.race.optimizers[0].key)
    assert coloured_pixels(page, "canvas.loss-curve", racer_colour) > 30
    shoot(page, "lesson")
    slider = page.locator("input[type=range]").first
    slider.evaluate("input => { input.value = 150; input.dispatchEvent(new Event('input')); }")
    page.wait_for_function(
        "old => { const w = document.querySelector('.race-widget');"
        " return w.dataset.state === 'drawn' && w.dataset.finalLosses !== old; }",
        arg=json.dumps(drawn),
        timeout=30_000,
    )
    assert wait_drawn(page) != drawn

    # the lesson quiz: a wrong answer first gets immediate feedback with its explanation, then
    # every question answered right except the first
    questions = lesson_quiz.data.questions
    head = questions[0]
    answer(page, lesson_quiz, head, a_wrong_answer(head), immediate=True)
    feedback = f'fieldset[data-question="{head.id}"]'
    page.wait_for_selector(f"{feedback}.wrong .verdict:not([hidden])")
    wrong_choice = head.choices[a_wrong_answer(head)[0]]
    assert wrong_choice.explanation.split("$")[0][:30] in page.inner_text(feedback)
    for question in questions[1:]:
        answer(page, lesson_quiz, question, sorted(question.correct_indices), immediate=True)
        page.wait_for_selector(f'fieldset[data-question="{question.id}"].right')
    page.click('form.quiz button[type="submit"]')
    page.wait_for_selector(".score:not([hidden])")
    assert page.inner_text(".score") == f"Your score is {len(questions) - 1}/{len(questions)}"
    shoot(page, "lesson-quiz")

    # the final quiz: right on even questions, wrong on odd ones
    page.goto(shipped_server.url + "/quiz")
    expected = 0
    for index, question in enumerate(final.data.questions):
        right = index % 2 == 0
        chosen = sorted(question.correct_indices) if right else a_wrong_answer(question)
        answer(page, final, question, chosen, immediate=False)
        expected += right
    total = len(final.data.questions)
    page.click('form.quiz button[type="submit"]')
    page.wait_for_selector(".score:not([hidden])")
    assert page.inner_text(".score") == f"Your score is {expected}/{total}"
    assert page.locator(".wrong-review .review-item").count() == total - expected
    shoot(page, "final-quiz")
    assert errors == []

    # a restarted server on the same database file still knows this learner
    shipped_server.stop()
    shipped_server.start()
    page.goto(shipped_server.url + "/progress")
    assert page.inner_text("#lessons-done") == "1"
    assert page.inner_text('tr[data-quiz="final"] .best') == f"{expected}/{total}"
    best = f"{len(questions) - 1}/{len(questions)}"
    assert page.inner_text(f'tr[data-quiz="{lesson_quiz.id}"] .best') == best
    shoot(page, "progress")
    # resetting from the page (its form carries the learner's token) clears the progress
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[action='/progress/reset'] button")
    page.wait_for_selector("text=No quiz attempts yet.")
    assert page.inner_text("#lessons-done") == "0"
    page.goto(shipped_server.url + "/review")
    assert page.locator("table.review tbody tr").count() == len(optim.names())
    assert page.locator("table.review math").count() >= len(optim.names())
    shoot(page, "review")
    context.close()


def test_every_shipped_lesson_draws_its_math_widget_and_clip(shipped_server, browser):
    """Each lesson page: MathML laid out, the widget's race drawn (with the lr factors where its
    racers have schedules), no script or console error, the clip and its caption present;
    lessons without a race show neither."""
    course = load_course(default_content_dir())
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    # Every lesson opens in its own tab first, so the server races them together and the tabs
    # animate at once; then each tab is checked.
    opened = []
    for lesson in course.lessons:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{shipped_server.url}/lessons/{lesson.slug}", wait_until="domcontentloaded")
        opened.append((lesson, page, errors))
    problems: list[str] = []
    for lesson, page, errors in opened:
        widths = page.evaluate(
            "[...document.querySelectorAll('main math')].map((m) => m.getBoundingClientRect().width)"
        )
        if not widths or min(widths) <= 0:
            problems.append(f"{lesson.slug}: math not drawn ({widths})")
        race = lesson.front.race
        if race is None:
            if page.locator(".race-widget, .clip").count():
                problems.append(f"{lesson.slug}: a widget or clip without a race")
            shown = "main"
        else:
            losses = wait_drawn(page)
            if len(losses) != len(race.optimizers):
                problems.append(
                    f"{lesson.slug}: {len(losses)} runs drawn, not {len(race.optimizers)}"
                )
            racer_colour = colour(race.optimizers[0].key)
            if coloured_pixels(page, ".race-widget canvas.loss-curve", racer_colour) < 10:
                problems.append(f"{lesson.slug}: no loss curve in {racer_colour}")
            if page.locator(f'.clip video[src="/clips/{lesson.slug}.mp4"]').count() != 1:
                problems.append(f"{lesson.slug}: no clip")
            if page.inner_text(".clip .caption").strip() != race.caption:
                problems.append(f"{lesson.slug}: the clip's caption is not the race's")
            scheduled = [r for r in race.optimizers if r.schedule is not None]
            if scheduled:
                # a race with schedules draws each racer's lr factor beside its loss curve
                legend = page.inner_text(".race-widget .legend")
                for racer in scheduled:
                    if f"{racer.key} · {racer.schedule.name}" not in legend:
                        problems.append(f"{lesson.slug}: {racer.schedule.name} not in the legend")
                if coloured_pixels(page, ".race-widget canvas.lr-factor", racer_colour) < 10:
                    problems.append(f"{lesson.slug}: no lr factor curve in {racer_colour}")
            shown = ".race-widget"
        # the widget (or, without one, the page's top) is enough to look at; whole pages are slow
        page.locator(shown).screenshot(
            path=str(SCREENSHOTS / f"lesson-{lesson.front.order:02d}-{lesson.slug}.png")
        )
        problems += [f"{lesson.slug}: {error}" for error in errors]
        page.close()
    context.close()
    assert problems == []


def test_a_playground_race_draws_and_its_url_restores_it(shipped_server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(shipped_server.url + "/playground")
    wait_drawn(page, "#playground-widget")
    page.fill('input[name="landscape"]', "x**2 - y**2")
    page.fill('input[name="start"]', "1,0.05")
    page.fill('input[name="steps"]', "60")
    rows = page.locator(".racer")
    rows.nth(0).locator("select").select_option("sgd")
    rows.nth(0).locator("input").fill("lr=0.1")
    rows.nth(1).locator("select").select_option("adam")
    rows.nth(1).locator("input").fill("lr=0.05")
    page.click("#run")
    page.wait_for_function("() => location.search.includes('steps=60')")
    losses = wait_drawn(page, "#playground-widget")
    assert coloured_pixels(page, "#playground-widget canvas.landscape", "#1f77b4") > 30
    shared = page.url
    assert "landscape=x**2+-+y**2" in shared.replace("%2A", "*")
    shoot(page, "playground")

    restored = browser.new_page(viewport={"width": 1200, "height": 1000})
    restored.goto(shared)
    assert restored.input_value('input[name="landscape"]') == "x**2 - y**2"
    assert restored.input_value('input[name="steps"]') == "60"
    assert wait_drawn(restored, "#playground-widget") == losses
    restored.close()
    page.close()
