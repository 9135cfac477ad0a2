"""Figures of lab results: contours with paths, loss curves, surfaces, the inspector, schedules,
and the small demos of the course (exponentially weighted averages, Taylor expansion and Newton).

Every function draws on a given ``ax`` (or a new figure) and returns the figure; titles, axis
labels and legends are always set, and each optimizer has its palette colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files, never a window: the lab runs headless

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .. import optim  # noqa: E402
from ._common import new_figure as _figure  # noqa: E402
from ._common import run_label  # noqa: E402
from .palette import colour  # noqa: E402
from .sweeps import sweep  # noqa: E402, F401  (part of this module's interface)

#: Beyond this many runs a picture draws a sample of the paths and labels optimizers only.
MAX_LABELLED_RUNS = 12
MAX_DRAWN_PATHS = 60


def _drawn_runs(result) -> list[int]:
    runs = len(result.runs)
    if runs <= MAX_DRAWN_PATHS:
        return list(range(runs))
    step = runs / MAX_DRAWN_PATHS
    return sorted({int(i * step) for i in range(MAX_DRAWN_PATHS)})


def _labels(result, drawn: list[int]) -> dict[int, str]:
    """Which drawn run carries which legend label (one per optimizer for large races)."""
    if len(result.runs) <= MAX_LABELLED_RUNS:
        return {i: run_label(result.runs[i]) for i in drawn}
    first: dict[str, int] = {}
    for i in drawn:
        first.setdefault(result.runs[i].optimizer, i)
    return {
        i: f"{key} ({sum(r.optimizer == key for r in result.runs)} runs)"
        for key, i in first.items()
    }


#: Dash patterns that tell apart labelled runs of one optimizer (which share its colour).
LINE_STYLES = ("-", "--", ":", "-.")


def _line_styles(result, labels: dict[int, str]) -> dict[int, str]:
    """Per labelled run, a dash pattern: solid for an optimizer's first run, then dashed, dotted..."""
    seen: dict[str, int] = {}
    styles = {}
    for i in sorted(labels):
        key = result.runs[i].optimizer
        styles[i] = LINE_STYLES[seen.get(key, 0) % len(LINE_STYLES)]
        seen[key] = seen.get(key, 0) + 1
    return styles


def _grid(landscape, resolution: int):
    (x_low, x_high), (y_low, y_high) = landscape.domain
    xs = torch.linspace(x_low, x_high, resolution, dtype=torch.float64)
    ys = torch.linspace(y_low, y_high, resolution, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        values = landscape(torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2))
    return grid_x.numpy(), grid_y.numpy(), values.reshape(resolution, resolution).numpy()


def _mark_points(ax, landscape, three_d=False) -> None:
    for index, point in enumerate(landscape.minima):
        label = "known minimum" if index == 0 else None
        if three_d:
            ax.scatter(
                *point.location,
                point.value,
                marker="*",
                s=160,
                c="gold",
                edgecolors="k",
                label=label,
                zorder=5,
            )
        else:
            ax.plot(
                *point.location, marker="*", ms=15, c="gold", mec="k", ls="", label=label, zorder=5
            )
    for index, point in enumerate(landscape.saddles):
        if not three_d:
            ax.plot(
                *point.location,
                marker="X",
                ms=10,
                c="white",
                mec="k",
                ls="",
                label="saddle point" if index == 0 else None,
                zorder=5,
            )


def _require_path(result) -> None:
    if result.path is None:
        raise ValueError("this figure needs the paths: race with record='path' or 'inspect'")


def draw_landscape(ax, landscape, resolution: int = 200) -> None:
    """Filled, log-spaced contours of a 2-D landscape with its minima and saddles marked."""
    grid_x, grid_y, values = _grid(landscape, resolution)
    shifted = values - float(values.min()) + 1e-12
    top = float(shifted.max())
    levels = torch.logspace(math.log10(max(top * 1e-6, 1e-12)), math.log10(top), 30).numpy()
    norm = matplotlib.colors.LogNorm()
    ax.contourf(grid_x, grid_y, shifted, levels=levels, cmap="Greys_r", norm=norm, alpha=0.55)
    ax.contour(grid_x, grid_y, shifted, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    _mark_points(ax, landscape)
    (x_low, x_high), (y_low, y_high) = landscape.domain
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def contour(result, ax=None, resolution: int = 200, size=(6.4, 5.2)) -> Figure:
    """Contour lines of a 2-D landscape (or the curve of a 1-D one) with every run's path."""
    _require_path(result)
    landscape = result.landscape
    figure, ax = _figure(ax, size)
    drawn = _drawn_runs(result)
    labels = _labels(result, drawn)
    if landscape.dim == 1:
        _curve_with_paths(ax, result, drawn, labels)
    elif landscape.dim == 2:
        draw_landscape(ax, landscape, resolution)
        styles = _line_styles(result, labels)
        for i in drawn:
            path = result.path[:, i].numpy()
            key = result.runs[i].optimizer
            ax.plot(
                path[:, 0],
                path[:, 1],
                styles.get(i, "-"),
                color=colour(key),
                lw=1.6 if i in labels else 0.8,
                alpha=0.95 if len(drawn) <= MAX_LABELLED_RUNS else 0.5,
                label=labels.get(i),
            )
            ax.plot(path[0, 0], path[0, 1], "o", color=colour(key), ms=4)
    else:
        raise ValueError(
            f"contour needs a 1-D or 2-D landscape; {landscape.key} has {landscape.dim} dimensions"
        )
    ax.set_title(f"{landscape.title}: {result.steps} steps")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return figure


def _curve_with_paths(ax, result, drawn, labels) -> None:
    landscape = result.landscape
    ((low, high),) = landscape.domain
    xs = torch.linspace(low, high, 400, dtype=torch.float64)
    with torch.no_grad():
        ax.plot(
            xs.numpy(), landscape(xs[:, None]).numpy(), color="k", lw=1.2, label=landscape.title
        )
    for i in drawn:
        path = result.path[:, i, 0]
        with torch.no_grad():
            values = landscape(path[:, None].double())
        ax.plot(
            path.numpy(),
            values.numpy(),
            "o-",
            ms=3,
            lw=0.8,
            color=colour(result.runs[i].optimizer),
            label=labels.get(i),
        )
    ax.set_xlim(low, high)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")


def loss_curves(result, ax=None, size=(6.4, 4.2)) -> Figure:
    """Loss (above the known minimum, when there is one) against step, on a log scale."""
    _require_path(result)
    figure, ax = _figure(ax, size)
    minimum = result.landscape.global_minimum
    drawn = _drawn_runs(result)
    labels = _labels(result, drawn)
    styles = _line_styles(result, labels)
    for i in drawn:
        loss = result.loss[:, i].double()
        # Above a known minimum the gap is positive: a log scale shows convergence rates. Without
        # one (a saddle is unbounded below) the loss itself is drawn, on a symmetric log scale.
        shown = (loss - minimum.value).clamp(min=1e-16) if minimum is not None else loss
        ax.plot(
            shown.numpy(),
            styles.get(i, "-"),
            color=colour(result.runs[i].optimizer),
            label=labels.get(i),
            lw=1.4 if i in labels else 0.7,
        )
    ax.set_yscale("log" if minimum is not None else "symlog")
    ax.set_xlabel("step")
    ax.set_ylabel("loss − minimum" if minimum is not None else "loss")
    ax.set_title(f"{result.landscape.title}: loss per step")
    ax.legend(loc="best", fontsize=8)
    return figure


def surface(result, ax=None, resolution: int = 80, size=(7.0, 5.6)) -> Figure:
    """The 2-D landscape as a 3-D surface, with the paths drawn on it."""
    _require_path(result)
    landscape = result.landscape
    if landscape.dim != 2:
        raise ValueError(
            f"surface needs a 2-D landscape; {landscape.key} has {landscape.dim} dimensions"
        )
    figure, ax = _figure(ax, size, projection="3d")
    grid_x, grid_y, values = _grid(landscape, resolution)
    ax.plot_surface(grid_x, grid_y, values, cmap="viridis", alpha=0.55, linewidth=0)
    drawn = _drawn_runs(result)
    labels = _labels(result, drawn)
    for i in drawn:
        path = result.path[:, i].double()
        with torch.no_grad():
            height = landscape(path)
        ax.plot(
            path[:, 0].numpy(),
            path[:, 1].numpy(),
            height.numpy(),
            color=colour(result.runs[i].optimizer),
            lw=2,
            label=labels.get(i),
        )
    _mark_points(ax, landscape, three_d=True)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("f(x, y)")
    ax.set_title(landscape.title)
    ax.legend(loc="upper left", fontsize=8)
    return figure


def effective_step_sizes(
    result, runs: Sequence[int] | None = None, ax=None, size=(6.4, 4.2)
) -> Figure:
    """The inspector: per coordinate, |Δx| / |g| at every step (the step size the method really took)."""
    steps = result.effective_step_size()
    figure, ax = _figure(ax, size)
    chosen = list(runs) if runs is not None else list(range(min(len(result.runs), 6)))
    styles = ["-", "--", ":", "-."]
    for i in chosen:
        info = result.runs[i]
        for axis in range(steps.shape[2]):
            name = "xy"[axis] if steps.shape[2] <= 2 else f"x{axis}"
            ax.plot(
                steps[:, i, axis].numpy(),
                styles[axis % 4],
                color=colour(info.optimizer),
                label=f"{run_label(info)}, {name}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("effective step size |Δx| / |g|")
    ax.set_title(f"Inspector: effective step size per coordinate ({result.landscape.title})")
    ax.legend(loc="best", fontsize=8)
    return figure


def schedules(
    named: dict[str, object], steps: int, base_lr: float = 0.1, ax=None, size=(6.4, 4.2)
) -> Figure:
    """Learning rate against step for descentlab.schedules schedules."""
    figure, ax = _figure(ax, size)
    t = torch.arange(steps + 1, dtype=torch.float64)
    for name, schedule in named.items():
        ax.plot(t.numpy(), schedule.lr(t, base_lr).numpy(), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Learning-rate schedules (base lr {base_lr:g})")
    ax.legend(loc="best", fontsize=8)
    return figure


def ewa_demo(
    betas: Sequence[float] = (0.5, 0.9, 0.98),
    length: int = 100,
    seed: int = 0,
    ax=None,
    size=(7.0, 4.4),
) -> Figure:
    """Exponentially weighted averages of a noisy series, with and without bias correction.

    v_t = β v_{t-1} + (1 - β) θ_t from v_0 = 0 starts near zero; dividing by 1 - β^t removes that.
    """
    figure, ax = _figure(ax, size)
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(1, length + 1, dtype=torch.float64)
    series = (
        10
        + 5 * torch.sin(t / 15)
        + 2 * torch.randn(length, generator=generator, dtype=torch.float64)
    )
    ax.plot(t.numpy(), series.numpy(), ".", color="0.6", ms=4, label="noisy series θ_t")
    for index, beta in enumerate(betas):
        average, raw, corrected = 0.0, [], []
        for step, value in enumerate(series.tolist(), start=1):
            average = beta * average + (1 - beta) * value
            raw.append(average)
            corrected.append(average / (1 - beta**step))
        tone = plt.get_cmap("viridis")(index / max(len(betas) - 1, 1))
        ax.plot(t.numpy(), raw, "--", color=tone, lw=1.2, label=f"β={beta:g}, no bias correction")
        ax.plot(t.numpy(), corrected, "-", color=tone, lw=1.6, label=f"β={beta:g}, corrected")
    ax.set_xlabel("t")
    ax.set_ylabel("value")
    ax.set_title("Exponentially weighted averages (window ≈ 1 / (1 − β))")
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    return figure


def taylor_newton_demo(landscape, x0: float, ax=None, size=(6.4, 4.4)) -> Figure:
    """A 1-D function, its second-order Taylor expansion at x0, and Newton's step to its vertex."""
    if landscape.dim != 1:
        raise ValueError(
            f"taylor_newton_demo needs a 1-D landscape; {landscape.key} has {landscape.dim}"
        )
    figure, ax = _figure(ax, size)
    ((low, high),) = landscape.domain
    point = torch.tensor([[float(x0)]], dtype=torch.float64, requires_grad=True)
    value = landscape(point).sum()
    (slope,) = torch.autograd.grad(value, point, create_graph=True)
    (curvature,) = torch.autograd.grad(slope.sum(), point)
    f0, g0, h0 = float(value.detach()), float(slope.detach()), float(curvature)
    xs = torch.linspace(low, high, 400, dtype=torch.float64)
    with torch.no_grad():
        ax.plot(xs.numpy(), landscape(xs[:, None]).numpy(), "k", lw=1.4, label=landscape.title)
    taylor = f0 + g0 * (xs - x0) + 0.5 * h0 * (xs - x0) ** 2
    ax.plot(
        xs.numpy(), taylor.numpy(), "--", color=colour("newton"), label="2nd-order Taylor at x₀"
    )
    ax.plot([x0], [f0], "o", color=colour("newton"), label=f"x₀ = {x0:g}")
    if h0 != 0:
        x1 = x0 - g0 / h0
        with torch.no_grad():
            f1 = float(landscape(torch.tensor([[x1]], dtype=torch.float64)))
        kind = "minimum" if h0 > 0 else "maximum (negative curvature!)"
        ax.plot(
            [x1],
            [f1],
            "s",
            color=colour("newton"),
            label=f"Newton step x₁ = {x1:.3g} (parabola's {kind})",
        )
        ax.annotate(
            "", xy=(x1, f1), xytext=(x0, f0), arrowprops={"arrowstyle": "->", "color": "0.3"}
        )
    values = landscape(xs[:, None]).detach()
    span = float(values.max() - values.min())
    ax.set_ylim(float(values.min()) - 0.2 * span, float(values.max()) + 0.2 * span)
    ax.set_xlim(low, high)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title("Newton's method: jump to the vertex of the local parabola")
    ax.legend(loc="best", fontsize=8)
    return figure


def overview(result, size=(12.0, 5.0)) -> Figure:
    """The race at a glance: paths on the landscape (left), loss per step (right)."""
    figure = plt.figure(figsize=size, layout="constrained")
    left, right = figure.subplots(1, 2)
    contour(result, ax=left)
    loss_curves(result, ax=right)
    return figure


def state_traces(result, run: int = 0, size=(7.0, 2.4)) -> Figure:
    """The inspector's inner state of one run: every recorded buffer over the steps, one panel each
    (momentum, squared-gradient averages, Prodigy's d, Sophia's Hessian estimate, ...)."""
    if not result.state:
        raise ValueError("state_traces needs a race recorded with record='inspect'")
    info = result.runs[run]
    names = [name for name, trace in result.state.items() if torch.isfinite(trace[:, run]).any()]
    if not names:
        raise ValueError(f"{info.optimizer} keeps no per-run state to show")
    figure = plt.figure(figsize=(size[0], size[1] * len(names)), layout="constrained")
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    entry = optim.spec(info.optimizer)
    symbols = {buffer.name: buffer for buffer in entry.state}
    for ax, name in zip(axes, names, strict=True):
        trace = result.state[name][:, run]
        trace = trace.reshape(trace.shape[0], -1)
        for coordinate in range(trace.shape[1]):
            label = f"{name}[{coordinate}]" if trace.shape[1] > 1 else name
            ax.plot(
                trace[:, coordinate].numpy(),
                color=colour(info.optimizer),
                ls=["-", "--", ":", "-."][coordinate % 4],
                label=label,
            )
        meaning = symbols[name].meaning if name in symbols else ""
        ax.set_ylabel(name)
        ax.set_title(meaning, fontsize=9)
        ax.legend(loc="best", fontsize=7)
    axes[-1].set_xlabel("step")
    figure.suptitle(f"Inspector: inner state of {run_label(info)} on {result.landscape.title}")
    return figure
