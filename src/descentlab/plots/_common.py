"""What every figure module shares: the headless backend, new figures, and run labels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files, never a window: the lab runs headless

import matplotlib.pyplot as plt  # noqa: E402

from .. import optim  # noqa: E402


def run_label(info) -> str:
    """``"adam (lr=0.03, beta1=0.8)"``: the key, its lr, and what else differs from the defaults."""
    try:
        entry = optim.spec(info.optimizer)
        defaults = {h.name: h.default for h in entry.hyperparameters}
    except ValueError:
        defaults = {}
    # The learning rate always; other hyperparameters where they differ from the defaults.
    changed = [
        f"{name}={short_number(value)}"
        for name, value in info.hyperparameters.items()
        if name == "lr" or defaults.get(name, object()) != value
    ]
    return f"{info.optimizer} ({', '.join(changed)})" if changed else info.optimizer


def short_number(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def new_figure(ax, size=(6.4, 5.2), projection=None):
    """``(figure, ax)``: the given axes and their figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure = plt.figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot(projection=projection)
