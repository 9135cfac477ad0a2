"""Figures of arena comparisons: loss curves with seed bands, loss against learning rate,
performance profiles across problems (written in ``profiles``, importable from here too),
per-layer gradient norms.

Every function takes a finished comparison (``descentlab.arena.Comparison``, read by its fields
only: plots sit below the arena and import nothing from it), draws with matplotlib and returns
the figure. Each optimizer has its palette colour; a run that diverged is drawn as an ``x`` on
the edge of the panel where the bad values lie, never left out as a gap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files, never a window: reports are written headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    LogFormatter,
    MaxNLocator,
)

from .palette import colour  # noqa: E402
from .profiles import performance_profile, performance_ratios  # noqa: E402

if TYPE_CHECKING:
    from ..arena.results import Comparison, Run

__all__ = [
    "gradient_norms",
    "loss_against_lr",
    "loss_curves",
    "performance_profile",
    "performance_ratios",
    "selection_value",
    "smoothed_training_loss",
]

DIVERGED_MARKER = {"marker": "x", "ms": 8, "mew": 2, "ls": "", "clip_on": False, "zorder": 6}
CHOSEN_MARKER = {"marker": "*", "ms": 15, "mec": "black", "mew": 0.8, "ls": "", "zorder": 7}


def _values(sequence: Sequence[float | None] | None) -> np.ndarray:
    """A float array; JSON's null (a NaN or infinity before the round trip) becomes NaN."""
    if not sequence:
        return np.array([], dtype=float)
    return np.array([math.nan if v is None else float(v) for v in sequence], dtype=float)


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _stack(curves: list[np.ndarray]) -> np.ndarray:
    """Curves of different lengths (early stopping) as rows of one array, padded with NaN."""
    length = max(len(curve) for curve in curves)
    rows = np.full((len(curves), length), np.nan)
    for row, curve in zip(rows, curves, strict=True):
        row[: len(curve)] = curve
    return rows


def _median_band(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum over the rows, ignoring NaN (all-NaN columns stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a gap, as intended
        return np.nanmedian(rows, axis=0), np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)


def smoothed_training_loss(run: Run) -> np.ndarray:
    """The training loss per step as the trailing mean over one epoch's steps (one mini-batch's
    loss is too noisy to read); NaN from the step where the run diverged on."""
    loss = _values(run.train_loss)
    if run.diverged_at is not None:
        loss[run.diverged_at :] = np.nan
    loss = _finite_or_nan(loss)
    window = max(int(run.steps_per_epoch), 1)
    present = np.isfinite(loss)
    sums = np.cumsum(np.where(present, loss, 0.0))
    counts = np.cumsum(present)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    mean[~present] = np.nan
    return mean


def selection_value(run: Run) -> float:
    """The validation number the protocol chose by: the metric (or loss, where the task has no
    metric) at the best epoch under early stopping, else at the last epoch; NaN if diverged."""
    if run.diverged:
        return math.nan
    epoch = -1 if run.best_epoch is None else run.best_epoch
    series = _values(run.val_metric if run.val_metric else run.val_loss)
    if series.size == 0:
        return math.nan
    value = float(series[epoch])
    return value if math.isfinite(value) else math.nan


def _seed_runs(comparison: Comparison, optimizer: str) -> list[Run]:
    return [run for run in comparison.runs if run.optimizer == optimizer and run.phase == "seed"]


def _summary(comparison: Comparison, optimizer: str):
    return next((s for s in comparison.summaries if s.optimizer == optimizer), None)


def _setting_label(optimizer: str, hyperparameters: dict[str, float]) -> str:
    lr = hyperparameters.get("lr")
    return f"{optimizer} (lr={lr:.3g})" if lr is not None else optimizer


class _EdgeMarks:
    """Diverged runs as ``x`` on the top (or bottom) edge of a panel, x in data units and y in
    axes units; several at one x stack inwards so that none hides another."""

    STACKING = 0.045  # axes units between stacked markers

    def __init__(self, ax, top: bool = True):
        self.ax, self.top, self.points = ax, top, []

    def add(self, xs, tone) -> None:
        self.points.extend((float(x), tone) for x in xs)

    def draw(self) -> None:
        level: dict[float, int] = {}
        for x, tone in self.points:
            inward = self.STACKING * level.get(x, 0)
            level[x] = level.get(x, 0) + 1
            y = 1.0 - inward if self.top else inward
            self.ax.plot(
                [x], [y], color=tone, transform=self.ax.get_xaxis_transform(), **DIVERGED_MARKER
            )


def _diverged_epoch(run: Run) -> int:
    """The epoch (counted from 1) in which the run diverged."""
    return run.diverged_at // max(run.steps_per_epoch, 1) + 1


def _log_if_positive(ax, values: list[np.ndarray]) -> None:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
        _plain_log_labels(ax.yaxis)


class _PlainLogFormatter(LogFormatter):
    """Labels "0.2", "1e-05" rather than matplotlib's "2 × 10⁻¹", on the ticks matplotlib would
    label anyway (minor ticks only where the axis spans about a decade or less)."""

    def __call__(self, value, pos=None):
        return f"{value:g}" if super().__call__(value, pos) else ""


def _plain_log_labels(axis) -> None:
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


def _epoch_ticks(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _diverged_handle(where: str) -> Line2D:
    return Line2D([], [], color="0.35", label=f"diverged (× at the {where})", **DIVERGED_MARKER)


def _legend_below(figure: Figure, handles: list) -> None:
    figure.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8
    )


def _metric_name(comparison: Comparison) -> str:
    return f"validation {comparison.metric}" if comparison.metric else "validation loss"


def loss_curves(comparison: Comparison, size=(11.0, 4.6)) -> Figure:
    """Per optimizer, its seed runs at the chosen setting: the training loss per step (smoothed over
    an epoch, log scale) as the median over seeds with a band from the lowest to the highest, and
    the validation metric (or loss) per epoch the same way in the second panel. When optimizers
    took different numbers of steps per epoch (full-batch ones beside mini-batches), the training
    loss is drawn against epochs, so that equal passes over the data line up."""
    figure = plt.figure(figsize=size, layout="constrained")
    train_ax, val_ax = figure.subplots(1, 2)
    in_epochs = len({run.steps_per_epoch for run in comparison.runs if run.phase == "seed"}) > 1
    handles, drawn_train, drawn_val, any_diverged = [], [], [], False
    train_marks, val_marks = _EdgeMarks(train_ax), _EdgeMarks(val_ax, top=not comparison.metric)
    for optimizer in comparison.optimizers:
        runs = _seed_runs(comparison, optimizer)
        tone = colour(optimizer)
        if not runs:
            handles.append(Line2D([], [], color=tone, ls=":", label=f"{optimizer}: no seed runs"))
            continue
        train = _stack([smoothed_training_loss(run) for run in runs])
        middle, low, high = _median_band(train)
        per_epoch = runs[0].steps_per_epoch if in_epochs else 1
        # In epochs: the loss of step k was taken after k - 1 updates, so it sits at (k - 1) / E.
        steps = (
            np.arange(1, train.shape[1] + 1)
            if not in_epochs
            else np.arange(train.shape[1]) / per_epoch
        )
        train_ax.plot(steps, middle, color=tone, lw=1.6)
        train_ax.fill_between(steps, low, high, color=tone, alpha=0.2, lw=0)
        drawn_train.append(train)
        val = _stack([_finite_or_nan(_values(run.val_metric or run.val_loss)) for run in runs])
        middle, low, high = _median_band(val)
        epochs = np.arange(1, val.shape[1] + 1)
        val_ax.plot(epochs, middle, "o-", ms=3, color=tone, lw=1.6)
        val_ax.fill_between(epochs, low, high, color=tone, alpha=0.2, lw=0)
        drawn_val.append(val)
        diverged = [run for run in runs if run.diverged and run.diverged_at is not None]
        any_diverged = any_diverged or bool(diverged)
        train_marks.add([steps[min(run.diverged_at, len(steps) - 1)] for run in diverged], tone)
        val_marks.add([_diverged_epoch(run) for run in diverged], tone)
        label = f"{_setting_label(optimizer, runs[0].hyperparameters)}, {len(runs)} seeds"
        if diverged:
            label += f", {len(diverged)} diverged"
        handles.append(Line2D([], [], color=tone, lw=1.6, label=label))
    _log_if_positive(train_ax, drawn_train)
    if not comparison.metric:
        _log_if_positive(val_ax, drawn_val)
    train_marks.draw()
    val_marks.draw()
    train_ax.set_xlabel(
        "epochs of training (steps ÷ steps per epoch)" if in_epochs else "optimizer step"
    )
    train_ax.set_ylabel("training loss (smoothed over an epoch)")
    train_ax.set_title("Training loss: median over seeds, band from min to max")
    val_ax.set_xlabel("epoch")
    _epoch_ticks(val_ax)
    val_ax.set_ylabel(_metric_name(comparison))
    val_ax.set_title(f"{_metric_name(comparison).capitalize()} per epoch")
    if any_diverged:
        handles.append(_diverged_handle("edge of the bad values"))
    _legend_below(figure, handles)
    figure.suptitle(f"{comparison.task_title}: each optimizer at its chosen setting")
    return figure


def loss_against_lr(comparison: Comparison, size=(11.0, 4.6)) -> Figure:
    """Every tuning run's final training loss (left) and validation score (right) against its
    learning rate (log x), one line per optimizer; diverged runs as ``x`` on the edge of the bad
    values (top for losses, bottom for a metric); the chosen setting as a star."""
    figure = plt.figure(figsize=size, layout="constrained")
    loss_ax, score_ax = figure.subplots(1, 2)
    handles, drawn_loss, drawn_scores, any_diverged, any_chosen = [], [], [], False, False
    loss_marks, score_marks = _EdgeMarks(loss_ax), _EdgeMarks(score_ax, top=not comparison.metric)
    for optimizer in comparison.optimizers:
        runs = [
            run
            for run in comparison.runs
            if run.optimizer == optimizer and run.phase == "tune" and "lr" in run.hyperparameters
        ]
        if not runs:
            continue
        runs.sort(key=lambda run: run.hyperparameters["lr"])
        tone = colour(optimizer)
        rates = np.array([run.hyperparameters["lr"] for run in runs])
        losses = np.array([math.nan if run.diverged else run.final_train_loss for run in runs])
        losses = _finite_or_nan(losses)
        scores = np.array([selection_value(run) for run in runs])
        failed = ~np.isfinite(losses)
        any_diverged = any_diverged or bool(failed.any())
        for ax, values, marks in ((loss_ax, losses, loss_marks), (score_ax, scores, score_marks)):
            kept = np.isfinite(values)
            ax.plot(rates[kept], values[kept], "o-", ms=4, color=tone, lw=1.4)
            marks.add(rates[~kept], tone)
        drawn_loss.append(losses)
        drawn_scores.append(scores)
        summary = _summary(comparison, optimizer)
        chosen = [
            index
            for index, run in enumerate(runs)
            if summary is not None and summary.hyperparameters == run.hyperparameters
        ]
        for index in chosen[:1]:
            any_chosen = True
            loss_ax.plot([rates[index]], [losses[index]], color=tone, **CHOSEN_MARKER)
            score_ax.plot([rates[index]], [scores[index]], color=tone, **CHOSEN_MARKER)
        label = f"{optimizer} ({len(runs)} settings"
        label += f", {int(failed.sum())} diverged)" if failed.any() else ")"
        handles.append(Line2D([], [], color=tone, marker="o", ms=4, lw=1.4, label=label))
    if not handles:
        raise ValueError("loss_against_lr needs tuning runs with a learning rate; this has none")
    for ax in (loss_ax, score_ax):
        ax.set_xscale("log")
        _plain_log_labels(ax.xaxis)
        ax.set_xlabel("learning rate")
    _log_if_positive(loss_ax, drawn_loss)
    if not comparison.metric:
        _log_if_positive(score_ax, drawn_scores)
    loss_marks.draw()
    score_marks.draw()
    loss_ax.set_ylabel("final training loss (last epoch's mean)")
    loss_ax.set_title("Final training loss of every tuning run")
    score_ax.set_ylabel(_metric_name(comparison))
    score_ax.set_title(f"{_metric_name(comparison).capitalize()}: what the choice is made on")
    if any_chosen:
        handles.append(Line2D([], [], color="0.6", label="chosen setting", **CHOSEN_MARKER))
    if any_diverged:
        handles.append(_diverged_handle("edge of the bad values"))
    _legend_below(figure, handles)
    figure.suptitle(f"{comparison.task_title}: sensitivity to the learning rate")
    return figure


def gradient_norms(comparison: Comparison, optimizer: str, size=(7.0, 4.6)) -> Figure:
    """Each layer's gradient norm per epoch (the mean over the epoch's steps) for the seed runs of
    ``optimizer``'s chosen setting: median over seeds with a min-max band, log scale. Norms that
    shrink towards zero layer by layer show vanishing gradients; ones that grow, exploding."""
    if optimizer not in comparison.optimizers:
        compared = ", ".join(comparison.optimizers)
        raise ValueError(f"{optimizer!r} is not in this comparison; it compared {compared}")
    runs = _seed_runs(comparison, optimizer)
    layers = list(dict.fromkeys(name for run in runs for name in run.grad_norms))
    if not layers:
        raise ValueError(f"{optimizer} has no seed runs with recorded gradient norms to draw")
    modules = list(dict.fromkeys(name.rpartition(".")[0] or name for name in layers))
    tones = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(modules), 1)))
    styles = {"bias": "--"}  # weights and anything else solid
    figure = plt.figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    for name in layers:
        module, _, kind = name.rpartition(".")
        tone = tones[modules.index(module or name)]
        rows = _stack([_finite_or_nan(_values(run.grad_norms.get(name))) for run in runs])
        rows[rows <= 0] = np.nan  # a zero norm has no place on a log scale
        middle, low, high = _median_band(rows)
        epochs = np.arange(1, rows.shape[1] + 1)
        ax.plot(epochs, middle, styles.get(kind, "-"), marker="o", ms=3, color=tone, label=name)
        ax.fill_between(epochs, low, high, color=tone, alpha=0.15, lw=0)
    diverged = [run for run in runs if run.diverged and run.diverged_at is not None]
    marks = _EdgeMarks(ax)
    marks.add([_diverged_epoch(run) for run in diverged], "0.2")
    if diverged:
        ax.plot([], [], color="0.2", label="a seed diverged (epoch)", **DIVERGED_MARKER)
    ax.set_yscale("log")
    _plain_log_labels(ax.yaxis)
    marks.draw()
    ax.set_xlabel("epoch")
    _epoch_ticks(ax)
    ax.set_ylabel("gradient norm (mean over the epoch's steps)")
    label = _setting_label(optimizer, runs[0].hyperparameters)
    ax.set_title(f"Gradient norm per layer: {label}, {len(runs)} seeds")
    ax.legend(loc="best", fontsize=8, ncol=2 if len(layers) > 6 else 1)
    return figure
