"""The sweep figure: final loss against one swept hyperparameter, read at a glance.

Per optimizer entry, the median final loss over the starts is a line and the interquartile range
(the middle half of the starts) a band around it. A diverged run counts as infinitely bad: it can
push the median and the band up to the top edge, and a triangle on the top edge marks every swept
value where runs diverged (filled: all starts; hollow: some), so a diverged setting is drawn, not
left as a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._common import new_figure, run_label
from .palette import colour

#: Losses are drawn on a log scale; an exact minimum is shown at this floor.
LOSS_FLOOR = 1e-16


@dataclass
class _Curve:
    """One optimizer entry's runs grouped by swept value: value -> final losses (inf: diverged)."""

    key: str
    label: str
    losses: dict[float, list[float]] = field(default_factory=dict)

    def quantile(self, value: float, fraction: float) -> float:
        return quantile(self.losses[value], fraction)


def quantile(losses: list[float], fraction: float) -> float:
    """Linear-interpolation quantile (numpy's default) where ``inf`` may appear: interpolating
    towards an infinite loss gives ``inf`` (not the ``nan`` that ``inf - inf`` would)."""
    ordered = sorted(losses)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    if weight == 0 or ordered[low] == ordered[high]:
        return ordered[low]
    if math.isinf(ordered[high]):
        return math.inf
    return ordered[low] + (ordered[high] - ordered[low]) * weight


def _curves(result, hyperparameter: str) -> list[_Curve]:
    minimum = result.landscape.global_minimum
    offset = minimum.value if minimum is not None else 0.0
    curves: dict[str, _Curve] = {}
    for index, info in enumerate(result.runs):
        if hyperparameter not in info.hyperparameters:
            continue
        # Runs of one entry differ only in the swept value and the start: label without the value.
        rest = {k: v for k, v in info.hyperparameters.items() if k != hyperparameter}
        label = run_label(replace(info, hyperparameters=rest))
        curve = curves.setdefault(label, _Curve(info.optimizer, label))
        loss = float(result.final_loss[index]) - offset
        if bool(result.diverged[index]) or not math.isfinite(loss):
            loss = math.inf
        value = float(info.hyperparameters[hyperparameter])
        curve.losses.setdefault(value, []).append(max(loss, LOSS_FLOOR))
    if not curves:
        raise ValueError(f"no run has the hyperparameter {hyperparameter!r}")
    return list(curves.values())


def sweep(result, hyperparameter: str = "lr", ax=None, size=(6.4, 4.2)) -> Figure:
    """Final loss against one swept hyperparameter (log-log): per optimizer entry the median over
    starts with its interquartile band, and diverged runs marked on the top edge at their value."""
    figure, ax = new_figure(ax, size)
    curves = _curves(result, hyperparameter)
    finite = [x for c in curves for losses in c.losses.values() for x in losses if x < math.inf]
    low = min(finite, default=1.0)
    top = max(finite, default=1.0) * 10
    handles = []
    for index, curve in enumerate(curves):
        values = sorted(curve.losses)
        starts = max(len(losses) for losses in curve.losses.values())
        median = [curve.quantile(v, 0.5) for v in values]
        tone = colour(curve.key)
        shown = [m if m < math.inf else math.nan for m in median]
        (line,) = ax.plot(values, shown, "o-", ms=3, lw=1.6, color=tone)
        line.set_label(curve.label + (f": median of {starts} starts" if starts > 1 else ""))
        handles.append(line)
        if starts > 1:
            lower = [min(curve.quantile(v, 0.25), top) for v in values]
            upper = [min(curve.quantile(v, 0.75), top) for v in values]
            ax.fill_between(values, lower, upper, color=tone, alpha=0.2, lw=0)
        _mark_diverged(ax, curve, values, tone, height=0.97 - 0.045 * index)
    if any(math.inf in losses for c in curves for losses in c.losses.values()):
        handles += _divergence_legend()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(max(low / 10, LOSS_FLOOR / 10), top)
    ax.set_xlabel(hyperparameter)
    minimum = result.landscape.global_minimum
    ax.set_ylabel("final loss − minimum" if minimum is not None else "final loss")
    starts_note = (
        " (band: middle half of the starts)"
        if any(max(len(x) for x in c.losses.values()) > 1 for c in curves)
        else ""
    )
    ax.set_title(
        f"{result.landscape.title}: final loss after {result.steps} steps{starts_note}",
        fontsize=10,
    )
    ax.legend(handles=handles, loc="best", fontsize=8)
    return figure


def _mark_diverged(ax, curve: _Curve, values: list[float], tone, height: float) -> None:
    """Triangles on the top edge (axes coordinates in y) where some or all runs diverged."""
    every, some = [], []
    for value in values:
        diverged = sum(math.isinf(x) for x in curve.losses[value])
        if diverged == len(curve.losses[value]):
            every.append(value)
        elif diverged:
            some.append(value)
    edge = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    style = {"ls": "", "marker": "^", "ms": 7, "mec": tone, "transform": edge, "clip_on": False}
    if every:
        ax.plot(every, [height] * len(every), mfc=tone, **style)
    if some:
        ax.plot(some, [height] * len(some), mfc="white", **style)


def _divergence_legend() -> list[Line2D]:
    style = {"ls": "", "marker": "^", "ms": 7, "mec": "0.3"}
    return [
        Line2D([], [], mfc="0.3", label="every start diverged", **style),
        Line2D([], [], mfc="white", label="some starts diverged", **style),
    ]
