"""Animations of a race: the runs' paths growing over the landscape, as GIF (Pillow, which
matplotlib already needs) or MP4 (with the ffmpeg binary of the imageio-ffmpeg package)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import animation as mpl_animation  # noqa: E402

from .figures import _drawn_runs, _labels, _require_path, draw_landscape  # noqa: E402
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
    if result.landscape.dim != 2:
        raise ValueError("animations need a 2-D landscape")
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
    draw_landscape(ax, result.landscape)
    drawn = _drawn_runs(result)
    labels = _labels(result, drawn)
    trails, heads = [], []
    for i in drawn:
        tone = colour(result.runs[i].optimizer)
        trails.append(ax.plot([], [], "-", color=tone, lw=1.4, label=labels.get(i))[0])
        heads.append(ax.plot([], [], "o", color=tone, ms=6, mec="k")[0])
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    title = result.landscape.title
    steps = result.steps
    frames = sorted(
        {round(k * steps / min(steps, MAX_FRAMES)) for k in range(min(steps, MAX_FRAMES) + 1)}
    )

    def draw(step: int):
        for trail, head, i in zip(trails, heads, drawn, strict=True):
            path = result.path[: step + 1, i].numpy()
            trail.set_data(path[:, 0], path[:, 1])
            head.set_data(path[-1:, 0], path[-1:, 1])
        ax.set_title(f"{title}: step {step}")
        return [*trails, *heads]

    movie = mpl_animation.FuncAnimation(figure, draw, frames=frames, blit=False)
    movie.save(out, writer=writer, dpi=dpi)
    plt.close(figure)
    return out
