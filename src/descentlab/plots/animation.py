"""Animations of a race: the runs' paths growing over the landscape, as GIF (Pillow, which
matplotlib already needs) or MP4 (with the ffmpeg binary of the imageio-ffmpeg package)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import animation as mpl_animation  # noqa: E402

from .figures import _drawn_runs, _labels, _line_styles, _require_path, draw_landscape  # noqa: E402
from .palette import colour  # noqa: E402

MAX_FRAMES = 60


def ffmpeg_path() -> str | None:
    """The ffmpeg binary shipped by imageio-ffmpeg, if that package is installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def animate(result, out: str | Path, fps: int = 20, size=(6.4, 5.2), dpi: int = 80) -> Path:
    """Write the race as an animation; the format follows the extension (.gif or .mp4)."""
    _require_path(result)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"animations are .gif or .mp4, got {out.name!r}")
    if result.landscape.dim not in (1, 2):
        raise ValueError("animations draw 1-D curves and 2-D landscapes")
    if suffix == ".mp4":
        binary = ffmpeg_path()
        if binary is None:
            raise ValueError("MP4 needs ffmpeg: pip install imageio-ffmpeg (or write a .gif)")
        matplotlib.rcParams["animation.ffmpeg_path"] = binary
        writer = mpl_animation.FFMpegWriter(fps=fps)
    else:
        writer = mpl_animation.PillowWriter(fps=fps)

    figure = plt.figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    drawn = _drawn_runs(result)
    labels = _labels(result, drawn)
    if result.landscape.dim == 1:
        # A curve: each run is a point sliding along f, its trail the points it has visited.
        trace = _draw_curve(ax, result)
    else:
        draw_landscape(ax, result.landscape)
        trace = lambda i, step: result.path[: step + 1, i].numpy()  # noqa: E731
    # Runs of one optimizer share its colour; dash patterns tell them apart (as in the figures).
    styles = _line_styles(result, labels)
    trails, heads = [], []
    for i in drawn:
        tone = colour(result.runs[i].optimizer)
        style = styles.get(i, "-")
        trails.append(ax.plot([], [], style, color=tone, lw=1.4, label=labels.get(i))[0])
        heads.append(ax.plot([], [], "o", color=tone, ms=6, mec="k")[0])
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    title = result.landscape.title
    steps = result.steps
    frames = sorted(
        {round(k * steps / min(steps, MAX_FRAMES)) for k in range(min(steps, MAX_FRAMES) + 1)}
    )

    def draw(step: int):
        for trail, head, i in zip(trails, heads, drawn, strict=True):
            path = trace(i, step)
            trail.set_data(path[:, 0], path[:, 1])
            head.set_data(path[-1:, 0], path[-1:, 1])
        ax.set_title(f"{title}: step {step}")
        return [*trails, *heads]

    movie = mpl_animation.FuncAnimation(figure, draw, frames=frames, blit=False)
    movie.save(out, writer=writer, dpi=dpi)
    plt.close(figure)
    return out


def _draw_curve(ax, result):
    """Draw f over the domain (with the minima marked); return (run, step) -> visited (x, f(x))."""
    import numpy
    import torch

    surface = result.landscape
    low, high = surface.domain[0]
    xs = torch.linspace(low, high, 400, dtype=result.path.dtype).reshape(-1, 1)
    with torch.no_grad():
        ax.plot(xs[:, 0].numpy(), surface(xs).numpy(), color="0.35", lw=1.2)
        heights = surface(result.path.reshape(-1, 1)).reshape(result.path.shape[:2]).numpy()
    for minimum in surface.minima:
        ax.plot([minimum.location[0]], [minimum.value], "*", color="gold", ms=12, mec="k", zorder=5)
    ax.set_xlim(low, high)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    positions = result.path[..., 0].numpy()
    return lambda i, step: numpy.stack([positions[: step + 1, i], heights[: step + 1, i]], axis=1)
