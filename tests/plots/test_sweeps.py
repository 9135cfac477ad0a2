"""The sweep figure: a median line and an interquartile band per optimizer over the starts, and
diverged runs marked on the top edge at their swept value instead of leaving gaps."""

from __future__ import annotations

import math

import numpy
import pytest
import torch
from matplotlib.collections import PolyCollection

from descentlab import lab
from descentlab.plots import figures, palette
from descentlab.plots.sweeps import quantile

LEARNING_RATES = torch.logspace(-4, 0, 9, dtype=torch.float64)


@pytest.fixture(scope="module")
def swept():
    starts = [[-1.2, 1.0], [0.5, 2.0], [-1.5, -0.5]]
    return lab.race(
        "rosenbrock",
        [("adam", {"lr": LEARNING_RATES}), ("sgd", {"lr": LEARNING_RATES})],
        starts,
        25,
        record="final",
    )


@pytest.mark.parametrize(
    "losses", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0], [0.1, 9.0, 3.0, 7.0, 2.0]]
)
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_quantile_matches_numpy_on_finite_losses(losses, fraction):
    assert quantile(losses, fraction) == pytest.approx(numpy.quantile(losses, fraction))


def test_quantile_counts_a_diverged_run_as_infinitely_bad():
    assert quantile([1.0, 2.0, math.inf], 0.5) == 2.0
    assert quantile([1.0, math.inf, math.inf], 0.5) == math.inf
    assert quantile([1.0, 2.0, math.inf, math.inf], 0.5) == math.inf  # halfway towards inf
    assert quantile([math.inf, math.inf], 0.25) == math.inf  # not nan


def _by_value(result, key):
    """value -> (final losses, diverged flags) of one optimizer's runs."""
    grouped: dict[float, list[tuple[float, bool]]] = {}
    for index, info in enumerate(result.runs):
        if info.optimizer == key:
            grouped.setdefault(float(info.hyperparameters["lr"]), []).append(
                (float(result.final_loss[index]), bool(result.diverged[index]))
            )
    return grouped


def test_median_line_band_and_divergence_marks(swept):
    figure = figures.sweep(swept, "lr")
    ax = figure.axes[0]
    assert "median of 3 starts" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2, "one interquartile band per optimizer"
    sgd = _by_value(swept, "sgd")
    assert any(any(d for _, d in runs) for runs in sgd.values()), "the sweep must reach divergence"
    for key in ("adam", "sgd"):
        tone = palette.colour(key)
        grouped = _by_value(swept, key)
        values = sorted(grouped)
        (median,) = [
            line for line in ax.lines if line.get_marker() == "o" and line.get_color() == tone
        ]
        assert list(median.get_xdata()) == pytest.approx(values)
        for value, shown in zip(values, median.get_ydata(), strict=True):
            runs = grouped[value]
            converged = sorted(loss for loss, diverged in runs if not diverged)
            if len(converged) * 2 > len(runs):  # most starts converged: the median is one of them
                assert shown == pytest.approx(max(converged[len(runs) // 2], 1e-16), rel=1e-6)
            else:  # most diverged: no point on the line, a mark on the top edge instead
                assert math.isnan(shown)
        marks = [line for line in ax.lines if line.get_marker() == "^" and line.get_mec() == tone]
        marked = sorted(x for line in marks for x in line.get_xdata())
        diverged_at = [v for v in values if any(d for _, d in grouped[v])]
        assert marked == pytest.approx(diverged_at)
        for line in marks:  # drawn on the top edge, in axes coordinates
            assert all(0.8 < y <= 1.0 for y in line.get_ydata())
            assert line.get_transform() == ax.get_xaxis_transform()
    figures.plt.close(figure)


def test_one_start_draws_a_plain_line_without_band():
    result = lab.race(
        "booth", [("adam", {"lr": [0.01, 0.1, 1.0]})], [[0.0, 0.0]], 20, record="final"
    )
    figure = figures.sweep(result, "lr")
    ax = figure.axes[0]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["adam"]
    figures.plt.close(figure)


def test_sweep_needs_the_swept_hyperparameter(swept):
    with pytest.raises(ValueError, match="rho"):
        figures.sweep(swept, "rho")
