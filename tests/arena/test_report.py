"""The report is one valid, self-contained HTML page (figures embedded, nothing fetched) that
leads with the recommendation and names every optimizer; the JSON beside it round-trips and the
CSV has one row per run; every string is escaped."""

from __future__ import annotations

import base64
import csv
import io
import math
from html.parser import HTMLParser

import pytest
from PIL import Image

from descentlab.arena import Comparison, report
from tests.plots.test_arena_figures import hand_built_comparison


class _Page(HTMLParser):
    """Counts tags, keeps every attribute and the visible text in order."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes.extend((tag, name, value or "") for name, value in attrs)
        if tag not in ("meta", "img", "br", "link"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] not in ("style", "script"):
            self.text.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    assert not page.open, f"unclosed tags: {page.open}"
    return page


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    comparison = hand_built_comparison()
    paths = report.write(comparison, tmp_path_factory.mktemp("report") / "sub" / "report.html")
    return comparison, paths


def test_writes_the_page_with_json_and_csv_beside_it(written):
    _, paths = written
    assert [path.name for path in paths] == ["report.html", "report.json", "report.csv"]
    assert all(path.stat().st_size > 0 for path in paths)


def test_the_page_is_valid_and_self_contained(written):
    _, (html_path, *_) = written
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = _parse(text)
    assert page.tags["html"] == page.tags["head"] == page.tags["body"] == page.tags["title"] == 1
    assert page.tags.get("script", 0) == page.tags.get("link", 0) == 0
    images = [value for tag, name, value in page.attributes if tag == "img" and name == "src"]
    # loss curves, loss against lr, performance profile, gradient norms of adam and of sgd
    assert len(images) == page.tags["img"] == page.tags["figcaption"] == 5
    for source in images:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        with Image.open(io.BytesIO(base64.b64decode(source[len(prefix) :]))) as image:
            assert image.format == "PNG" and image.size[0] > 300
    links = [v for _, _, v in page.attributes if not v.startswith("data:image/png;base64,")]
    assert not any("http:" in v or "https:" in v or "//" in v for v in links)
    assert "url(" not in text and "@import" not in text


def test_the_recommendation_comes_first_and_every_optimizer_has_a_row(written):
    comparison, (html_path, *_) = written
    page = _parse(html_path.read_text(encoding="utf-8"))
    visible = " ".join(page.text)
    recommendation = visible.index(comparison.recommendation.text)
    assert recommendation < visible.index("Evidence") < visible.index("Settings")
    rows = page.tags["tr"] - 1 - 10  # minus the evidence header row and the 10 settings rows
    assert rows == len(comparison.summaries)
    for summary in comparison.summaries:
        assert summary.optimizer in visible and summary.title in visible
    assert "0.800 ± 0.010" in visible  # test metric mean ± std
    assert "1.0 decades (0.001 to 0.01)" in visible  # the good lr band and its ends
    assert "8 steps, 0.40 s" in visible  # steps and seconds to the target
    assert "sensitive" in visible and comparison.notices[0] in visible
    assert "mini-batches of 16, reshuffled every epoch" in visible
    assert visible.index("adam") < visible.index("recommended") < visible.index("runner-up")


def test_a_long_list_of_failures_folds_away(tmp_path):
    comparison = hand_built_comparison()  # the recommendation's section alone: no figures drawn
    few = report._recommendation(comparison)
    assert "<details open><summary>What did not work, and why (1 optimizer)" in few
    comparison.recommendation.failures = [(f"opt{i}", "diverged") for i in range(9)]
    many = report._recommendation(comparison)
    assert "<details><summary>What did not work, and why (9 optimizers)" in many


def test_every_string_is_escaped(written):
    _, (html_path, *_) = written
    text = html_path.read_text(encoding="utf-8")
    assert "Use &lt;Adam&gt; with lr = 0.01: it beat SGD &amp; friends." in text
    assert "<Adam>" not in text and "<angle brackets>" not in text
    assert "only one learning rate &lt; did well &amp; more" in text


def test_json_round_trips_to_an_equal_comparison(tmp_path):
    comparison = hand_built_comparison()
    comparison.runs = [run for run in comparison.runs if not run.diverged]  # NaN != NaN
    _, json_path, _ = report.write(comparison, tmp_path / "finite.html")
    assert Comparison.from_json(json_path.read_text(encoding="utf-8")) == comparison


def test_json_of_diverged_runs_reads_back_as_nan(written):
    comparison, (_, json_path, _) = written
    again = Comparison.from_json(json_path.read_text(encoding="utf-8"))
    assert again.to_json() == comparison.to_json()
    diverged = next(run for run in again.runs if run.diverged)
    assert math.isnan(diverged.train_loss[-1]) and again.csv_rows()  # no None left to add


def test_csv_has_one_row_per_run(written):
    comparison, (_, _, csv_path) = written
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(comparison.runs)
    assert [(r["optimizer"], r["phase"], float(r["hp_lr"])) for r in rows] == [
        (run.optimizer, run.phase, run.hyperparameters["lr"]) for run in comparison.runs
    ]
    assert [r["diverged"] for r in rows].count("True") == sum(r.diverged for r in comparison.runs)


def test_a_figure_with_nothing_to_show_becomes_a_notice(tmp_path):
    comparison = hand_built_comparison()
    comparison.runs = [run for run in comparison.runs if run.phase == "tune"]
    html_path, *_ = report.write(comparison, tmp_path / "no_seeds.html")
    visible = " ".join(_parse(html_path.read_text(encoding="utf-8")).text)
    assert "Performance profile: not drawn, performance_profile needs seed runs" in visible
    assert "Gradient norms of adam: not drawn" in visible


def test_a_path_that_is_not_html_is_named(tmp_path):
    with pytest.raises(ValueError, match="report path .*report.json.*ending in .html"):
        report.write(hand_built_comparison(), tmp_path / "report.json")
