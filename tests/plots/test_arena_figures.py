"""The arena's figures draw what the comparison holds: one line per optimizer in its palette
colour, seed bands, diverged runs as markers on the edge, the chosen setting, exact performance
ratios, every layer's gradient norm; and they survive the JSON round trip (NaN -> null)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from descentlab.arena.results import Comparison, Recommendation, Run, Summary
from descentlab.plots import arena as figures
from descentlab.plots.palette import colour

STEPS_PER_EPOCH = 4
EPOCHS = 3


def make_run(optimizer, phase, lr, seed, scale=1.0, diverged_at=None, task_metric=True) -> Run:
    """A run whose training loss decays like ``scale / (1 + step)``, diverging if asked."""
    steps = STEPS_PER_EPOCH * EPOCHS
    loss = [scale / (1 + step) for step in range(steps)]
    if diverged_at is not None:
        loss[diverged_at:] = [math.inf] * (steps - diverged_at)
    val = [scale / (1 + epoch) for epoch in range(EPOCHS)]
    metric = [0.5 + 0.1 * epoch - 0.01 * scale for epoch in range(EPOCHS)] if task_metric else None
    if diverged_at is not None:
        val[diverged_at // STEPS_PER_EPOCH :] = [math.nan] * (
            EPOCHS - diverged_at // STEPS_PER_EPOCH
        )
        if metric:
            metric = [0.1] * EPOCHS
    return Run(
        optimizer=optimizer,
        phase=phase,
        hyperparameters={"lr": lr},
        seed=seed,
        train_loss=loss,
        val_loss=val,
        val_metric=metric,
        test_loss=val[-1],
        test_metric=metric[-1] if metric else None,
        steps_per_epoch=STEPS_PER_EPOCH,
        steps_to_target=None,
        seconds=0.5,
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        grad_norms={
            "0.weight": [1.0 / (1 + e) for e in range(EPOCHS)],
            "0.bias": [0.1 / (1 + e) for e in range(EPOCHS)],
            "2.weight": [math.inf if diverged_at is not None else 2.0] * EPOCHS,
        },
    )


def make_summary(optimizer, lr, status="ok", reason="") -> Summary:
    return Summary(
        optimizer=optimizer,
        title=optimizer.upper(),
        hyperparameters={"lr": lr},
        test_metric=0.8,
        test_metric_std=0.01,
        test_loss=0.3,
        train_loss=0.2,
        train_loss_std=0.01,
        steps_to_target=8.0,
        seconds_to_target=0.4,
        seconds=3.0,
        tuneability=1.0,
        lr_range=(lr / 10, lr),
        diverged_runs=0,
        runs=5,
        status=status,
        reason=reason,
    )


def hand_built_comparison(task="toy", metric="accuracy") -> Comparison:
    """adam tunes cleanly; sgd diverges at its largest lr and on one of its two fresh seeds."""
    with_metric = metric is not None
    runs = [
        make_run("adam", "tune", lr, 0, scale, task_metric=with_metric)
        for lr, scale in ((1e-3, 2.0), (1e-2, 1.0), (1e-1, 1.5))
    ]
    runs += [
        make_run("sgd", "tune", 1e-2, 0, 3.0, task_metric=with_metric),
        make_run("sgd", "tune", 1e-1, 0, 2.5, task_metric=with_metric),
        make_run("sgd", "tune", 1.0, 0, 2.5, diverged_at=5, task_metric=with_metric),
    ]
    runs += [make_run("adam", "seed", 1e-2, seed, 1.0 + 0.1 * seed, task_metric=with_metric)
             for seed in (1, 2)]  # fmt: skip
    runs += [
        make_run("sgd", "seed", 1e-1, 1, 2.0, task_metric=with_metric),
        make_run("sgd", "seed", 1e-1, 2, 2.0, diverged_at=6, task_metric=with_metric),
    ]
    summaries = [
        make_summary("adam", 1e-2),
        make_summary("sgd", 1e-1, "sensitive", "only one learning rate < did well & more"),
    ]
    recommendation = Recommendation(
        best="adam",
        runner_up="sgd",
        lr_range=(1e-3, 1e-2),
        failures=[("sgd", "only one learning rate < did well & more")],
        text="Use <Adam> with lr = 0.01: it beat SGD & friends.",
        evidence=["ADAM: test accuracy 0.8", "SGD: test accuracy 0.8"],
    )
    return Comparison(
        task=task,
        task_title=f"Toy task {task}",
        metric=metric,
        settings={
            "epochs": EPOCHS,
            "batch_size": 16,
            "dropout": 0.0,
            "init": "default",
            "label_smoothing": 0.0,
            "clip": None,
            "early_stopping": None,
            "weight_decay": None,
            "search": "grid",
            "seed": 0,
        },  # fmt: skip
        optimizers=["adam", "sgd"],
        budget=3,
        seeds=2,
        runs=runs,
        summaries=summaries,
        recommendation=recommendation,
        notices=["sgd: a notice with <angle brackets>"],
    )


@pytest.fixture(scope="module")
def comparison():
    return hand_built_comparison()


def _saved_non_blank(figure, path):
    figure.savefig(path, dpi=40)
    figures.plt.close(figure)
    with Image.open(path) as image:
        assert len(image.convert("L").getcolors(maxcolors=100_000)) > 10, "blank picture"


def _lines_in(ax, tone):
    return [line for line in ax.get_lines() if line.get_color() == tone]


def _edge_markers(ax):
    """(x, y in axes units) of every diverged marker drawn on the panel's edge."""
    return [
        (float(line.get_xdata()[0]), float(line.get_ydata()[0]))
        for line in ax.get_lines()
        if line.get_marker() == "x" and line.get_transform() == ax.get_xaxis_transform()
    ]


def _legend_texts(figure):
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_loss_curves_draw_median_and_band_per_optimizer_and_mark_divergence(comparison, tmp_path):
    figure = figures.loss_curves(comparison)
    train_ax, val_ax = figure.axes
    assert train_ax.get_yscale() == "log"
    for ax in (train_ax, val_ax):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.collections) == 2  # one seed band per optimizer
    (adam_median,) = _lines_in(train_ax, colour("adam"))
    steps = STEPS_PER_EPOCH * EPOCHS
    assert len(adam_median.get_xdata()) == steps
    # The median of the two seeds' epoch-smoothed losses (scales 1.1 and 1.2) at the last step.
    last = [sum(s / (1 + k) for k in range(steps - STEPS_PER_EPOCH, steps)) / STEPS_PER_EPOCH
            for s in (1.1, 1.2)]  # fmt: skip
    assert adam_median.get_ydata()[-1] == pytest.approx(np.median(last))
    # sgd's second seed diverged at step 6 (index): an x on the top edge at step 7.
    assert _edge_markers(train_ax) == [(7.0, 1.0)]
    assert _edge_markers(val_ax) == [(2.0, 0.0)]  # accuracy: the bad edge is the bottom
    labels = _legend_texts(figure)
    assert any(label.startswith("adam (lr=0.01), 2 seeds") for label in labels)
    assert any("sgd (lr=0.1), 2 seeds, 1 diverged" in label for label in labels)
    _saved_non_blank(figure, tmp_path / "curves.png")


def test_loss_against_lr_has_one_line_per_optimizer_divergence_on_the_edge_and_the_choice(
    comparison, tmp_path
):
    figure = figures.loss_against_lr(comparison)
    loss_ax, score_ax = figure.axes
    assert loss_ax.get_xscale() == score_ax.get_xscale() == "log"
    (adam_line, adam_star) = _lines_in(loss_ax, colour("adam"))
    assert list(adam_line.get_xdata()) == [1e-3, 1e-2, 1e-1]
    assert adam_star.get_marker() == "*" and list(adam_star.get_xdata()) == [1e-2]
    sgd_lines = _lines_in(loss_ax, colour("sgd"))
    assert list(sgd_lines[0].get_xdata()) == [1e-2, 1e-1]  # the diverged lr is no point ...
    assert (1.0, 1.0) in _edge_markers(loss_ax)  # ... but an x on the top edge
    assert (1.0, 0.0) in _edge_markers(score_ax)  # and on the bottom edge of accuracy
    assert "chosen setting" in _legend_texts(figure)
    _saved_non_blank(figure, tmp_path / "lr.png")


def test_loss_against_lr_without_a_metric_puts_divergence_on_top_of_the_val_loss(tmp_path):
    figure = figures.loss_against_lr(hand_built_comparison(metric=None))
    loss_ax, score_ax = figure.axes
    assert (1.0, 1.0) in _edge_markers(score_ax)
    assert score_ax.get_ylabel() == "validation loss"
    _saved_non_blank(figure, tmp_path / "lr.png")


def test_performance_ratios_per_task_and_seed_are_exact(comparison):
    problems, ratios = figures.performance_ratios(comparison)
    assert problems == ["toy, seed 1", "toy, seed 2"]
    last_epoch_mean = {
        scale: sum(scale / (1 + k) for k in range(8, 12)) / STEPS_PER_EPOCH
        for scale in (1.1, 1.2, 2.0)
    }
    assert ratios["adam"] == pytest.approx([1.0, 1.0])
    assert ratios["sgd"][0] == pytest.approx(last_epoch_mean[2.0] / last_epoch_mean[1.1])
    assert ratios["sgd"][1] == math.inf  # diverged: a failure, not a gap


def test_performance_profile_steps_reach_the_share_solved(comparison, tmp_path):
    figure = figures.performance_profile(comparison)
    (ax,) = figure.axes
    assert ax.get_xscale() == "log" and "(task, seed) pairs" in ax.get_title()
    (adam,) = _lines_in(ax, colour("adam"))
    (sgd,) = _lines_in(ax, colour("sgd"))
    assert adam.get_ydata()[0] == 1.0  # best on both problems from tau = 1
    assert sgd.get_ydata()[0] == 0.0 and sgd.get_ydata()[-1] == 0.5  # one of two never solved
    assert "sgd (failed on 1 of 2)" in _legend_texts(figure)
    _saved_non_blank(figure, tmp_path / "profile.png")


def test_performance_profile_over_several_tasks_keeps_the_shared_optimizers(tmp_path):
    first, second = hand_built_comparison("one"), hand_built_comparison("two")
    second.optimizers = ["adam", "sgd", "lion"]
    second.runs.append(make_run("lion", "seed", 1e-3, 1, 0.5))
    problems, ratios = figures.performance_ratios([first, second])
    assert problems == ["one", "two"] and set(ratios) == {"adam", "sgd"}
    assert list(ratios["sgd"]) == [math.inf, math.inf]  # a diverged seed fails the task
    figure = figures.performance_profile([first, second])
    assert "tasks (one comparison each)" in figure.axes[0].get_title()
    assert any("left out: lion" in text for text in _legend_texts(figure))
    _saved_non_blank(figure, tmp_path / "profile.png")


def test_performance_profile_refuses_what_has_no_ratio():
    comparison = hand_built_comparison()
    for run in comparison.runs:
        run.train_loss = [-1.0] * len(run.train_loss)
    with pytest.raises(ValueError, match="positive costs.*toy, seed 1"):
        figures.performance_ratios(comparison)
    with pytest.raises(ValueError, match="at least one comparison"):
        figures.performance_profile([])


def test_gradient_norms_draw_every_layer_and_name_bad_requests(comparison, tmp_path):
    figure = figures.gradient_norms(comparison, "sgd")
    (ax,) = figure.axes
    assert ax.get_yscale() == "log" and "sgd (lr=0.1), 2 seeds" in ax.get_title()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:3] == ["0.weight", "0.bias", "2.weight"]
    assert "a seed diverged (epoch)" in labels
    bias = next(line for line in ax.get_lines() if line.get_label() == "0.bias")
    assert bias.get_linestyle() == "--"
    assert list(bias.get_ydata()) == pytest.approx([0.1 / (1 + e) for e in range(EPOCHS)])
    _saved_non_blank(figure, tmp_path / "norms.png")
    with pytest.raises(ValueError, match="'lion' is not in this comparison; it compared adam, sgd"):
        figures.gradient_norms(comparison, "lion")


def test_figures_draw_a_comparison_read_back_from_json(comparison, tmp_path):
    """JSON writes NaN and infinity as null, read back as NaN: a gap or a failure in figures."""
    again = Comparison.from_json(comparison.to_json())
    assert any(math.isnan(value) for run in again.runs for value in run.train_loss)
    for index, figure in enumerate(
        [
            figures.loss_curves(again),
            figures.loss_against_lr(again),
            figures.performance_profile(again),
            figures.gradient_norms(again, "sgd"),
        ]
    ):
        _saved_non_blank(figure, tmp_path / f"{index}.png")
    assert figures.performance_ratios(again)[1]["sgd"][1] == math.inf


def test_loss_curves_switch_to_epochs_when_optimizers_step_differently(tmp_path):
    comparison = hand_built_comparison()
    for run in comparison.runs:
        if run.optimizer == "sgd":  # full batch: one step per epoch
            run.train_loss, run.steps_per_epoch = run.train_loss[:EPOCHS], 1
            run.diverged_at = 1 if run.diverged else None
    figure = figures.loss_curves(comparison)
    train_ax = figure.axes[0]
    assert train_ax.get_xlabel().startswith("epochs of training")
    (adam,) = _lines_in(train_ax, colour("adam"))
    (sgd,) = _lines_in(train_ax, colour("sgd"))[:1]
    assert adam.get_xdata()[-1] == pytest.approx((STEPS_PER_EPOCH * EPOCHS - 1) / STEPS_PER_EPOCH)
    assert list(sgd.get_xdata()) == [0.0, 1.0, 2.0]
    assert _edge_markers(train_ax) == [(1.0, 1.0)]
    _saved_non_blank(figure, tmp_path / "epochs.png")
