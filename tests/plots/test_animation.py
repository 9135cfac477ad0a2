"""Animations: a 1-D race slides its points along the curve, a 2-D race grows its paths."""

from __future__ import annotations

from PIL import Image

from descentlab import lab
from descentlab.plots.animation import animate


def test_a_race_on_a_curve_is_animated_along_the_curve(tmp_path):
    result = lab.race("double_well", ["sgd:lr=0.05", "newton"], [[0.2]], 12)
    out = animate(result, tmp_path / "curve.gif")
    with Image.open(out) as movie:
        assert movie.n_frames == 13  # steps 0..12
        movie.seek(0)
        first = movie.convert("RGB").tobytes()
        movie.seek(movie.n_frames - 1)
        last = movie.convert("RGB").tobytes()
    assert first != last  # the points moved
