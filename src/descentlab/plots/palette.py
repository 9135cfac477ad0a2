"""One colour per optimizer, the same in every figure, animation and page.

Plain data (no matplotlib import), so the web app can use it too. Colours are chosen so that the
methods a lesson compares side by side (GD / momentum / Nesterov; Adagrad / RMSprop / Adam) are far
apart in hue, and so that no newer method shares a hue and lightness with the classic it is
usually raced against (Lion and momentum, Prodigy and Adam, L-BFGS and GD).
"""

from __future__ import annotations

COLOURS: dict[str, str] = {
    # the course's classics
    "sgd": "#1f77b4",
    "momentum": "#ff7f0e",
    "nesterov": "#2ca02c",
    "adagrad": "#d62728",
    "adadelta": "#9467bd",
    "rmsprop": "#8c564b",
    "adam": "#e377c2",
    "adamw": "#7f7f7f",
    "nadam": "#bcbd22",
    "adamax": "#17becf",
    "radam": "#393b79",
    "rprop": "#637939",
    "yogi": "#8c6d31",
    "quickprop": "#843c39",
    "newton": "#000000",
    "bfgs": "#7b4173",
    "lbfgs": "#08306b",
    # beyond the course
    "adafactor": "#01665e",
    "muon": "#31a354",
    "asgd": "#756bb1",
    "lion": "#c51b7d",
    "adabelief": "#74c476",
    "lamb": "#9e9ac8",
    "lars": "#6baed6",
    "lookahead": "#7f3b08",
    "schedulefree_adamw": "#a1d99b",
    "schedulefree_sgd": "#bcbddc",
    "prodigy": "#b8860b",
    "sophia": "#cedb9c",
}
#: For keys added later and not yet given a colour here.
FALLBACK = "#555555"


def colour(key: str) -> str:
    """The colour of an optimizer registry key (hex)."""
    return COLOURS.get(key, FALLBACK)
