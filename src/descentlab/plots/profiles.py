"""Dolan & Moré (2002) performance profiles of arena comparisons.

E. D. Dolan and J. J. Moré, "Benchmarking optimization software with performance profiles",
Mathematical Programming 91 (2002): for a set of problems P and solvers S with a cost t[p, s]
(here: the final training loss), the ratio r[p, s] = t[p, s] / min over s' of t[p, s'] is
infinite where s failed on p, and rho_s(tau) = |{p : r[p, s] <= tau}| / |P| is the share of
problems on which s is within a factor tau of the best. rho_s(1) is how often s wins;
rho_s(tau) for large tau, how often it succeeds at all.

Comparisons are read by their fields only (plots import nothing from the arena).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files, never a window: reports are written headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from .palette import colour  # noqa: E402

if TYPE_CHECKING:
    from ..arena.results import Comparison


def performance_ratios(
    comparisons: Comparison | Sequence[Comparison],
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Dolan & Moré's performance ratios r[p, s] = cost[p, s] / min over s' of cost[p, s'].

    The cost is the final training loss (the mean over the last epoch's steps). With one
    comparison a problem is one (task, seed) pair of its seed runs; with several, one comparison
    (one task), whose cost is the mean over its seed runs, and only the optimizers that every
    comparison ran take part. A run that diverged (any seed, for a task) or a missing seed run
    counts as a failure: an infinite ratio. Returns the problems' names and, per optimizer, its
    ratios in the problems' order.
    """
    many, group = _as_group(comparisons)
    optimizers, _ = _common_optimizers(group)
    problems, costs = [], []  # costs: one {optimizer: cost} per problem
    for comparison in group:
        seeds = sorted({run.seed for run in comparison.runs if run.phase == "seed"})
        per_seed = {
            seed: {key: _cost(comparison, key, [seed]) for key in optimizers} for seed in seeds
        }
        if many:
            problems.append(comparison.task)
            costs.append({key: _mean_cost(per_seed, key) for key in optimizers})
        else:
            problems.extend(f"{comparison.task}, seed {seed}" for seed in seeds)
            costs.extend(per_seed[seed] for seed in seeds)
    if not problems:
        raise ValueError("performance_profile needs seed runs; this comparison has none")
    ratios = {key: np.full(len(problems), np.inf) for key in optimizers}
    for index, (problem, cost) in enumerate(zip(problems, costs, strict=True)):
        finite = [value for value in cost.values() if math.isfinite(value)]
        if not finite:
            continue  # every optimizer failed here: all ratios stay infinite
        best = min(finite)
        if best <= 0:
            raise ValueError(
                f"performance ratios need positive costs; on {problem} the best final "
                f"training loss is {best:g}"
            )
        for key, value in cost.items():
            ratios[key][index] = value / best
    return problems, ratios


def _as_group(comparisons) -> tuple[bool, list[Comparison]]:
    """(given several?, the comparisons as a list) for one comparison or a sequence of them."""
    many = not hasattr(comparisons, "runs")
    group = list(comparisons) if many else [comparisons]
    if not group:
        raise ValueError("performance_profile needs at least one comparison")
    return many, group


def _common_optimizers(group: list[Comparison]) -> tuple[list[str], list[str]]:
    """The optimizers every comparison ran (in first-seen order) and those left out."""
    seen = list(dict.fromkeys(key for c in group for key in c.optimizers))
    common = [key for key in seen if all(key in c.optimizers for c in group)]
    if not common:
        raise ValueError("performance_profile: no optimizer was run in every comparison given")
    return common, [key for key in seen if key not in common]


def _cost(comparison: Comparison, optimizer: str, seeds: list[int]) -> float:
    runs = [
        run
        for run in comparison.runs
        if run.optimizer == optimizer and run.phase == "seed" and run.seed in seeds
    ]
    if not runs or any(run.diverged for run in runs):
        return math.inf
    value = float(np.mean([run.final_train_loss for run in runs]))
    return value if math.isfinite(value) else math.inf


def _mean_cost(per_seed: dict[int, dict[str, float]], optimizer: str) -> float:
    values = [costs[optimizer] for costs in per_seed.values()]
    return float(np.mean(values)) if values else math.inf


def performance_profile(comparisons: Comparison | Sequence[Comparison], size=(7.0, 4.8)) -> Figure:
    """Dolan & Moré (2002) performance profiles: rho_s(tau), the share of problems on which
    optimizer s is within a factor tau of the best, as a step plot against log tau. See
    :func:`performance_ratios` for the problems and the cost (final training loss)."""
    problems, ratios = performance_ratios(comparisons)
    many, group = _as_group(comparisons)
    _, left_out = _common_optimizers(group)
    count = len(problems)
    finite = np.concatenate([r[np.isfinite(r)] for r in ratios.values()])
    tau_max = max(float(finite.max()) * 1.25 if finite.size else 2.0, 1.1)
    figure = plt.figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    for key, ratio in ratios.items():
        solved = np.sort(ratio[np.isfinite(ratio)])
        taus = np.concatenate([[1.0], solved, [tau_max]])
        share = np.array([(ratio <= tau).sum() / count for tau in taus])
        failed = count - solved.size
        label = key if not failed else f"{key} (failed on {failed} of {count})"
        ax.step(taus, share, where="post", color=colour(key), lw=1.8, label=label)
    ax.set_xscale("log")
    if tau_max < 3:  # a narrow range: evenly spaced ticks read best
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    else:  # 1, 2, 5 per decade (more within a decade)
        subs = (1.0, 2.0, 5.0) if tau_max > 10 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
        ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.04, 1.06)
    ax.set_xlabel("τ: final training loss ÷ the best optimizer's on that problem")
    ax.set_ylabel("ρ(τ): share of problems within τ of the best")
    what = "tasks (one comparison each)" if many else "(task, seed) pairs"
    ax.set_title(f"Performance profile (Dolan & Moré 2002) over {count} {what}")
    handles, _ = ax.get_legend_handles_labels()
    if left_out:
        note = f"not run on every task, left out: {', '.join(left_out)}"
        handles.append(Line2D([], [], color="none", label=note))
    figure.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8
    )
    return figure
