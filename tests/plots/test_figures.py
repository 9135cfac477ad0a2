"""Every figure is titled, labelled, saved non-empty at the asked size; one colour per optimizer."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from descentlab import lab, landscapes, optim, schedules
from descentlab.plots import figures, palette


@pytest.fixture(scope="module")
def race_result():
    return lab.race(
        "himmelblau",
        ["sgd:lr=0.01", "momentum:lr=0.005", "adam:lr=0.1"],
        [[0.0, 0.0]],
        40,
        record="inspect",
    )


def _saved(figure, path, size):
    figure.set_size_inches(*size)
    figure.savefig(path, dpi=50)
    figures.plt.close(figure)
    with Image.open(path) as image:
        assert image.size == (size[0] * 50, size[1] * 50)
        assert len(image.convert("L").getcolors(maxcolors=100_000)) > 10, "blank picture"


def _check_axes(figure):
    for ax in figure.axes:
        if ax.name == "3d":
            assert ax.get_zlabel()
        assert ax.get_title() and ax.get_xlabel()


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: figures.contour(r),
        lambda r: figures.loss_curves(r),
        lambda r: figures.surface(r),
        lambda r: figures.effective_step_sizes(r),
        lambda r: figures.overview(r),
    ],
    ids=["contour", "loss", "surface", "inspector", "overview"],
)
def test_race_figures(draw, race_result, tmp_path):
    figure = draw(race_result)
    _check_axes(figure)
    assert figure.axes[0].get_legend() is not None
    _saved(figure, tmp_path / "figure.png", (8, 6))


def test_state_traces_show_each_optimizers_inner_state(tmp_path):
    result = lab.race(
        "rosenbrock",
        ["prodigy", "sophia:lr=0.01", "momentum:lr=0.001"],
        [[-1.2, 1.0]],
        20,
        record="inspect",
    )
    for run, expected in enumerate([{"d", "exp_avg_sq"}, {"hessian"}, {"momentum_buffer"}]):
        figure = figures.state_traces(result, run)
        shown = {ax.get_ylabel() for ax in figure.axes}
        assert expected <= shown, (run, shown)
        _saved(figure, tmp_path / f"state{run}.png", (6, 8))


def test_sweep_schedules_ewa_and_taylor(tmp_path):
    swept = lab.race(
        "rosenbrock",
        [("adam", {"lr": torch.logspace(-3, -1, 5)})],
        [[-1.2, 1.0]],
        20,
        record="final",
    )
    made = [
        figures.sweep(swept, "lr"),
        figures.schedules(
            {
                "cosine": schedules.create("cosine", total_steps=100),
                "step": schedules.create("step", step_size=30),
            },
            100,
        ),
        figures.ewa_demo(),
        figures.taylor_newton_demo(landscapes.get("x_cos_x"), 1.0),
    ]
    for index, figure in enumerate(made):
        _check_axes(figure)
        _saved(figure, tmp_path / f"{index}.png", (6, 4))


def test_one_distinct_colour_per_registered_optimizer():
    colours = [palette.colour(key) for key in optim.names()]
    assert palette.FALLBACK not in colours
    assert len(set(colours)) == len(colours)


def test_paths_figure_needs_a_recorded_race():
    final_only = lab.race("ravine", ["sgd"], [[1.0, 1.0]], 2, record="final")
    with pytest.raises(ValueError, match="record='path'"):
        figures.contour(final_only)


def test_runs_of_one_optimizer_are_told_apart_by_their_dashes():
    result = lab.race(
        "ravine",
        ["sgd:lr=0.02", "sgd:lr=0.45", "sgd:lr=0.55", "momentum:lr=0.05"],
        [[-2.8, 1.0]],
        10,
    )
    for draw in (figures.contour, figures.loss_curves):
        figure = draw(result)
        lines = {
            line.get_label(): line.get_linestyle()
            for line in figure.axes[0].lines
            if line.get_label().startswith(("sgd", "momentum"))
        }
        assert len({lines[label] for label in lines if label.startswith("sgd")}) == 3, lines
        assert lines["momentum (lr=0.05)"] == "-"
        figures.plt.close(figure)
