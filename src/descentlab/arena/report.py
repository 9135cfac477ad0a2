"""The arena's report: one self-contained HTML page, with the runs as JSON and CSV beside it.

The page reads top to bottom as a person asks: the recommendation in plain words, the evidence
table (one row per optimizer), the figures that show it (each embedded as a base64 PNG, with a
one-sentence caption), then the settings and the notices. Nothing is fetched: no external CSS,
script or font, so the file opens offline and can be mailed as it is. Every string from the
comparison goes through :func:`html.escape`.

from descentlab import arena
from descentlab.arena import report
paths = report.write(arena.compare("digits-mlp", optimizers="adam,sgd"), "report.html")
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..plots.palette import colour
from .results import Comparison, Summary

#: Up to this many failures are listed open under the recommendation; more fold away.
SHOWN_FAILURES = 4
#: Gradient norms are drawn for the recommended optimizer and at most this many failed ones.
GRADIENT_FIGURES_FOR_FAILURES = 2
FIGURE_DPI = 100


def write(comparison: Comparison, path: str | Path) -> list[Path]:
    """Write the report to ``path`` (``.html``), the comparison's JSON to ``path.with_suffix
    (".json")`` and one CSV row per run to ``path.with_suffix(".csv")``; returns the three paths."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"report path {str(path)!r}: give a file name ending in .html (the JSON and CSV "
            "are written beside it with the same name)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(comparison), encoding="utf-8")
    json_path = path.with_suffix(".json")
    json_path.write_text(comparison.to_json(), encoding="utf-8")
    csv_path = path.with_suffix(".csv")
    write_csv(comparison, csv_path)
    return [path, json_path, csv_path]


def write_overview(comparisons: list[Comparison], reports: list[Path], path: str | Path) -> Path:
    """One page over several tasks: each task's recommendation with a link to its report, and the
    Dolan & Moré performance profile across the tasks (one problem per task)."""
    from ..plots import arena as plots

    path = Path(path)
    rows = "".join(
        f"<tr><td><a href='{_e(report.name)}'>{_e(c.task_title)}</a><br><code>{_e(c.task)}</code>"
        f"</td><td>{_e(c.recommendation.text)}</td></tr>"
        for c, report in zip(comparisons, reports, strict=True)
    )
    notices: list[str] = []
    profile = _embedded(
        [
            (
                "Performance profile across tasks",
                lambda: plots.performance_profile(comparisons),
                "Dolan & Moré performance profile with one problem per task (each optimizer's "
                "mean final training loss over its fresh seeds): the share of tasks on which it "
                "is within a factor τ of the best optimizer there.",
            )
        ],
        notices,
    )
    title = "Which optimizer, across tasks?"
    body = (
        f"<header><h1>{_e(title)}</h1><p class='lead'>{len(comparisons)} tasks, each compared "
        "with the same protocol; every task's own report is linked.</p></header>"
        f"<section><h2>Per task</h2><table><thead><tr><th>Task</th><th>Recommendation</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
        f"<section><h2>Across tasks</h2>{''.join(profile)}</section>{_notices(notices)}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        encoding="utf-8",
    )
    return path


def write_csv(comparison: Comparison, path: Path) -> None:
    """One row per run (``Comparison.csv_rows``); hyperparameter columns are the union over runs."""
    rows = comparison.csv_rows()
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)


def render(comparison: Comparison) -> str:
    """The whole report as one HTML document (a string)."""
    figures, figure_notices = _figures(comparison)
    title = f"Which optimizer for {comparison.task_title}?"
    body = "\n".join(
        [
            f"<header><h1>{_e(title)}</h1><p class='lead'>{_e(_overview(comparison))}</p></header>",
            _recommendation(comparison),
            _evidence(comparison),
            "<section><h2>The evidence in pictures</h2>",
            *figures,
            "</section>",
            _settings(comparison),
            _notices([*comparison.notices, *figure_notices]),
            f"<footer>Written by descentlab {_e(__version__)}. The runs are in the JSON and "
            "CSV files of the same name beside this page.</footer>",
        ]
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None, spec: str) -> str | None:
    """``value`` formatted, or None where there is no finite value (JSON's null included)."""
    if value is None or not math.isfinite(value):
        return None
    return format(value, spec)


def _overview(comparison: Comparison) -> str:
    count = len(comparison.optimizers)
    return (
        f"{count} optimizer{'s' if count != 1 else ''} on the task “{comparison.task}”, each "
        f"tuned with the same budget of {comparison.budget} settings, then trained again from "
        f"{comparison.seeds} fresh seed{'s' if comparison.seeds != 1 else ''} at its best setting "
        "and judged on the test split."
    )


def _recommendation(comparison: Comparison) -> str:
    recommendation = comparison.recommendation
    titles = {s.optimizer: s.title for s in comparison.summaries}
    failures = "".join(
        f"<li><strong>{_e(titles.get(key, key))}</strong> ({_e(key)}): {_e(reason)}</li>"
        for key, reason in recommendation.failures
    )
    count = len(recommendation.failures)
    heading = f"What did not work, and why ({count} optimizer{'s' if count != 1 else ''})"
    # A long list folds away (a <details> element: no script needed); the table has it too.
    failed = (
        f"<details{' open' if count <= SHOWN_FAILURES else ''}><summary>{_e(heading)}</summary>"
        f"<ul>{failures}</ul></details>"
        if failures
        else ""
    )
    return (
        "<section class='recommendation'><h2>Recommendation</h2>"
        f"<p>{_e(recommendation.text)}</p>{failed}</section>"
    )


def _evidence(comparison: Comparison) -> str:
    score = (
        f"Test {comparison.metric} (mean ± std over seeds)"
        if comparison.metric
        else "Test loss (mean over seeds)"
    )
    headers = [
        "Optimizer",
        "Chosen setting",
        score,
        "Final training loss",
        "To the target loss",
        "Good learning rates",
        "Status",
    ]
    head = "".join(f"<th scope='col'>{_e(h)}</th>" for h in headers)
    roles = {
        comparison.recommendation.best: "recommended",
        comparison.recommendation.runner_up: "runner-up",
    }
    rows = "\n".join(
        _evidence_row(summary, roles.get(summary.optimizer)) for summary in comparison.summaries
    )
    return (
        "<section><h2>Evidence</h2>"
        "<p class='note'>Ranked by test result, diverged optimizers last; the recommendation "
        "goes to the best one without a warning (status ok) where there is one. “Good learning "
        "rates”: the band of tuning runs whose validation score came within 5% of the best, and "
        "its width in decades (wider is easier to tune). “To the target loss”: the median over "
        "seeds of the steps and seconds until an epoch's mean training loss first reached the "
        "task's target; “—” where it never did (or the task sets none).</p>"
        f"<div class='scroll'><table class='evidence'><thead><tr>{head}</tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table></div></section>"
    )


def _evidence_row(summary: Summary, role: str | None) -> str:
    swatch = f"<span class='swatch' style='background:{_e(colour(summary.optimizer))}'></span>"
    name = f"{swatch}<strong>{_e(summary.title)}</strong><br><code>{_e(summary.optimizer)}</code>"
    if role:
        name += f" <span class='role'>{_e(role)}</span>"
    setting = ", ".join(f"{key} = {value:.3g}" for key, value in summary.hyperparameters.items())
    if summary.test_metric is not None:
        spread = _number(summary.test_metric_std, ".3f")
        score = _number(summary.test_metric, ".3f")
        score = f"{score} ± {spread}" if score and spread else score
    else:
        score = _number(summary.test_loss, ".4g")
    loss = _number(summary.train_loss, ".4g")
    loss_spread = _number(summary.train_loss_std, ".2g")
    loss = f"{loss} ± {loss_spread}" if loss and loss_spread else loss
    steps = _number(summary.steps_to_target, ".0f")
    seconds = _number(summary.seconds_to_target, ".2f")
    target = (
        f"{steps} steps, {seconds} s"
        if steps and seconds
        else (f"{steps} steps" if steps else None)
    )
    band = None
    if summary.lr_range:
        low, high = summary.lr_range
        band = (
            f"{summary.tuneability:.1f} decades ({low:.3g} to {high:.3g})"
            if high > low
            else f"only lr = {low:.3g}"
        )
    status = f"<span class='status {_e(summary.status)}'>{_e(summary.status)}</span>"
    if summary.reason:
        status += f" {_e(summary.reason)}"
    if summary.diverged_runs:
        status += f"<br><small>{summary.diverged_runs} of {summary.runs} runs diverged</small>"
    cells = [name, *(_e(v) if v else "—" for v in (setting, score, loss, target, band)), status]
    row_class = _e(summary.status) + (f" {role}" if role else "")
    return f"<tr class='{row_class}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _figures(comparison: Comparison) -> tuple[list[str], list[str]]:
    """Every figure as an embedded <figure>, and a notice for each that could not be drawn."""
    from ..plots import arena as plots

    seeds = comparison.seeds
    what = comparison.metric or "loss"
    planned: list[tuple[str, Callable[[], Any], str]] = [
        (
            "Loss curves",
            lambda: plots.loss_curves(comparison),
            f"Each optimizer at its chosen setting over its {seeds} fresh seeds: training loss "
            "per step smoothed over an epoch (line: median, band: lowest to highest) and the "
            f"validation {what} per epoch.",
        ),
        (
            "Loss against learning rate",
            lambda: plots.loss_against_lr(comparison),
            "Every tuning run's final training loss and validation score against its learning "
            "rate: a flat, low stretch is a forgiving optimizer; a star marks the chosen setting "
            "and an × a run that diverged.",
        ),
        (
            "Performance profile",
            lambda: plots.performance_profile(comparison),
            "Dolan & Moré performance profile over the (task, seed) pairs of the fresh-seed "
            "runs: the share of seeds on which an optimizer's final training loss is within a "
            "factor τ of the best one's (a diverged run never counts), so the curve highest on "
            "the left wins most often and the one reaching 1 soonest is never far behind.",
        ),
    ]
    statuses = {s.optimizer: s for s in comparison.summaries}
    gradients = []
    for key in _gradient_subjects(comparison):
        summary = statuses.get(key)
        why = (
            f"; {key} is marked {summary.status}: {summary.reason}"
            if summary is not None and summary.status != "ok"
            else ""
        )
        gradients.append(
            (
                f"Gradient norms of {key}",
                lambda key=key: plots.gradient_norms(comparison, key),
                f"Each layer's gradient norm per epoch for {key} at its chosen setting (norms "
                f"sinking towards zero mean vanishing gradients, growing ones exploding){why}.",
            )
        )
    notices: list[str] = []
    blocks = _embedded(planned, notices)
    pairs = _embedded(gradients, notices)
    if pairs:
        blocks.append(f"<div class='pairs'>{''.join(pairs)}</div>")
    return blocks, notices


def _embedded(planned, notices: list[str]) -> list[str]:
    """Each (name, draw, caption) as a <figure>; one that cannot be drawn becomes a notice."""
    blocks = []
    for name, draw, caption in planned:
        try:
            figure = draw()
        except ValueError as error:  # the figure has nothing to show: say why, keep the rest
            notices.append(f"{name}: not drawn, {error}")
            continue
        blocks.append(
            f"<figure><img src='data:image/png;base64,{_png(figure)}' alt='{_e(name)}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return blocks


def _gradient_subjects(comparison: Comparison) -> list[str]:
    """The recommended optimizer (or the first), then the first few that failed."""
    first = comparison.recommendation.best or (comparison.optimizers or [None])[0]
    failed = [key for key, _ in comparison.recommendation.failures if key != first]
    return [key for key in [first, *failed[:GRADIENT_FIGURES_FOR_FAILURES]] if key is not None]


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _settings(comparison: Comparison) -> str:
    settings = comparison.settings
    batch = settings.get("batch_size", "—")
    if batch is None:
        mode = "batch gradient descent (the whole training set every step)"
    elif batch == 1:
        mode = "stochastic gradient descent (one example per step)"
    else:
        mode = f"mini-batches of {batch}, reshuffled every epoch"
    options = [
        ("dropout", settings.get("dropout"), "off"),
        ("initialization", settings.get("init"), "PyTorch's default"),
        ("label smoothing", settings.get("label_smoothing"), "off"),
        ("gradient clipping at norm", settings.get("clip"), "off"),
        ("early stopping after epochs without gain", settings.get("early_stopping"), "off"),
        ("weight decay", settings.get("weight_decay"), "each spec's default"),
    ]
    chosen = "; ".join(
        f"{name}: {unset if value in (None, 0, 0.0, 'default') else value}"
        for name, value, unset in options
    )
    search = settings.get("search", "—")
    search_text = {
        "grid": "a log grid over each spec's learning-rate range",
        "tpe": "Optuna's TPE sampler over every tuned hyperparameter of each spec",
    }.get(search, str(search))
    rows = [
        ("Task", f"{comparison.task_title} ({comparison.task})"),
        ("Optimizers", ", ".join(comparison.optimizers)),
        ("Tuning budget", f"{comparison.budget} settings per optimizer"),
        ("Fresh seeds", f"{comparison.seeds} at each optimizer's chosen setting"),
        ("Search", search_text),
        ("Training mode", mode),
        ("Epochs", settings.get("epochs", "—")),
        ("Batch size", "the whole training set" if batch is None else batch),
        ("Options", chosen),
        ("Base seed", settings.get("seed", "—")),
    ]
    items = "".join(f"<tr><th scope='row'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<section><h2>Settings</h2><table class='settings'>{items}</table></section>"


def _notices(notices: list[str]) -> str:
    if not notices:
        return "<section><h2>Notices</h2><p>None.</p></section>"
    items = "".join(f"<li>{_e(notice)}</li>" for notice in notices)
    return f"<section><h2>Notices</h2><ul>{items}</ul></section>"


STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6575; --line: #d9dee7;
        --accent: #2f6fb3; --paper: #ffffff; --wash: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--wash); color: var(--ink);
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 2rem 1.5rem 3rem; background: var(--paper); }
h1 { font-size: 1.8rem; margin: 0 0 .4rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .8rem; border-bottom: 2px solid var(--line);
     padding-bottom: .3rem; }
h3 { font-size: 1.05rem; margin: 1rem 0 .3rem; }
.lead, .note, footer, figcaption { color: var(--muted); }
.note { font-size: .92rem; }
.recommendation { background: #eef5fc; border-left: 5px solid var(--accent);
                  padding: .2rem 1.3rem 1rem; border-radius: 4px; }
.recommendation h2 { border: none; margin-top: 1rem; }
.recommendation p { font-size: 1.08rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem;
         border-bottom: 1px solid var(--line); }
thead th { background: var(--wash); font-weight: 600; }
table.evidence tr.recommended { background: #f1f8ee; }
.role { display: inline-block; margin-top: .2rem; padding: 0 .4rem; border-radius: 3px;
        font-size: .78rem; background: var(--accent); color: white; }
tr.runner-up .role { background: #7d8aa0; }
details summary { cursor: pointer; font-weight: 600; margin: .6rem 0 .2rem; }
table.settings th { width: 14rem; font-weight: 600; }
code { font-size: .85rem; color: var(--muted); }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
          margin-right: .4rem; vertical-align: baseline; }
.status { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-weight: 600;
          font-size: .85rem; background: #e3e7ee; }
.status.ok { background: #d8efd3; color: #245c1c; }
.status.slow { background: #fdf0cf; color: #7a5600; }
.status.sensitive { background: #fde3cc; color: #8a3d00; }
.status.diverged { background: #f8d4d4; color: #8f1d1d; }
figure { margin: 1.6rem 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto;
             border: 1px solid var(--line); }
figcaption { font-size: .92rem; margin-top: .5rem; }
.pairs { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
         gap: 0 1.5rem; }
footer { margin-top: 2.5rem; font-size: .85rem; }
"""
