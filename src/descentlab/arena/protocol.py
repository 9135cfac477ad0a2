"""The fair protocol: the same tuning budget for every optimizer, then fresh seeds at the best.

For each optimizer, ``budget`` configurations are trained on one tuning seed: a log grid over the
learning-rate range of its spec (``search="grid"``, every other hyperparameter at its default) or
points proposed by Optuna's TPE sampler over every tuned hyperparameter of the spec
(``search="tpe"``). The configuration with the best validation score (accuracy, or validation
loss where the task has no metric) is then trained again from ``seeds`` fresh seeds and reported on
the test split. Schmidt, Schneider & Hennig (2021), "Descending through a Crowded Valley", argue for
exactly this: compare optimizers at equal tuning budgets, over several seeds, not at one hand-picked
setting.

Everything here is pure bookkeeping over :class:`~descentlab.arena.results.Run` records; training
lives in ``train``, storage and workers in ``study``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .. import optim
from ..optim.spec import Hyperparameter, Spec
from .results import Recommendation, Run, Summary

SEARCHES = ("grid", "tpe")
#: A tuning point counts as "as good as the best" within this fraction of the best score's scale.
TOLERANCE = 0.05
#: Narrower than this many decades of learning rate, a good setting is hard to find: "sensitive".
SENSITIVE_DECADES = 0.5


def default_optimizers() -> list[str]:
    """Every first-order registry key whose step needs no closure: what ``all`` means."""
    return [key for key in optim.names() if not optim.spec(key).needs_closure]


def resolve_optimizers(optimizers: str | Sequence[str]) -> list[str]:
    """``"all"``, a comma-separated string or a list of registry keys: checked, in order, unique."""
    if isinstance(optimizers, str):
        if optimizers.strip() == "all":
            return default_optimizers()
        optimizers = [part.strip() for part in optimizers.split(",")]
    keys: list[str] = []
    for key in optimizers:
        entry = optim.spec(key)  # ValueError naming the unknown key and the known ones
        if entry.key not in keys:
            keys.append(entry.key)
    if not keys:
        raise ValueError("optimizers: name at least one optimizer")
    return keys


def tuning_grid(entry: Spec, budget: int) -> list[dict[str, float]]:
    """``budget`` learning rates spread evenly in log over the spec's range (the ends included)."""
    lr = entry.hyperparameter("lr")
    if budget == 1:
        return [{"lr": float(lr.default)}]
    return [{"lr": value} for value in lr.grid(budget)]


def tuned(entry: Spec) -> list[Hyperparameter]:
    """The hyperparameters a sampler searches: every tuned one of the spec."""
    return [h for h in entry.hyperparameters if h.tuned]


@dataclass(frozen=True)
class Choice:
    """The chosen tuning run of one optimizer (None when every point diverged)."""

    optimizer: str
    run: Run | None


def choose(tune_runs: Sequence[Run]) -> Run | None:
    """The tuning run with the best validation score; ties go to the lower final training loss,
    then to the smaller learning rate (so that the same runs always give the same choice)."""
    usable = [run for run in tune_runs if math.isfinite(run.selection_score)]
    if not usable:
        return None
    return min(
        usable,
        key=lambda run: (
            run.selection_score,
            _finite_or_inf(run.final_train_loss),
            run.hyperparameters.get("lr", 0.0),
        ),
    )


def _finite_or_inf(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def good_band(tune_runs: Sequence[Run], tolerance: float = TOLERANCE) -> tuple[float, float] | None:
    """The learning rates whose validation score is within ``tolerance`` of the best one.

    For a metric (accuracy in [0, 1]) "within" is an absolute difference; for a loss, relative.
    Returns (lowest, highest) of those learning rates, or None.
    """
    scored = [run for run in tune_runs if math.isfinite(run.selection_score)]
    if not scored:
        return None
    best = min(run.selection_score for run in scored)
    slack = tolerance if scored[0].val_metric else tolerance * abs(best)
    rates = [run.hyperparameters["lr"] for run in scored if run.selection_score <= best + slack]
    return (min(rates), max(rates)) if rates else None


def decades(band: tuple[float, float] | None) -> float:
    return math.log10(band[1] / band[0]) if band else 0.0


def summarize(
    key: str, tune_runs: Sequence[Run], seed_runs: Sequence[Run], target: float | None
) -> Summary:
    """One optimizer's line of the comparison, with its status and the reason in words."""
    entry = optim.spec(key)
    chosen = choose(tune_runs)
    band = good_band(tune_runs)
    finals = [run for run in seed_runs if not run.diverged] or list(seed_runs)
    metrics = [run.test_metric for run in finals if run.test_metric is not None]
    train = [run.final_train_loss for run in finals]
    reached = [run.steps_to_target for run in finals if run.steps_to_target is not None]
    seconds_reached = [s for s in (run.seconds_to_target for run in finals) if s is not None]
    diverged = sum(run.diverged for run in [*tune_runs, *seed_runs])
    summary = Summary(
        optimizer=key,
        title=entry.title,
        hyperparameters=dict(chosen.hyperparameters) if chosen else {},
        test_metric=statistics.fmean(metrics) if metrics else None,
        test_metric_std=statistics.pstdev(metrics)
        if len(metrics) > 1
        else (0.0 if metrics else None),
        test_loss=statistics.fmean(run.test_loss for run in finals) if finals else math.nan,
        train_loss=statistics.fmean(train) if train else math.nan,
        train_loss_std=statistics.pstdev(train) if len(train) > 1 else 0.0,
        steps_to_target=statistics.median(reached)
        if len(reached) == len(finals) and reached
        else None,
        seconds_to_target=(
            statistics.median(seconds_reached)
            if len(seconds_reached) == len(finals) and seconds_reached
            else None
        ),
        seconds=sum(run.seconds for run in [*tune_runs, *seed_runs]),
        tuneability=decades(band),
        lr_range=band,
        diverged_runs=diverged,
        runs=len(tune_runs) + len(seed_runs),
        status="ok",
    )
    if chosen is None:
        summary.status = "diverged"
        summary.reason = f"diverged at every one of the {len(tune_runs)} settings tried"
    elif seed_runs and all(run.diverged for run in seed_runs):
        summary.status = "diverged"
        summary.reason = "the best tuning setting diverged on every fresh seed"
    elif target is not None and summary.steps_to_target is None:
        summary.status = "slow"
        summary.reason = f"did not bring the training loss below {target:g} within the budget"
    elif len(tune_runs) > 2 and summary.tuneability < SENSITIVE_DECADES and _alone(band, tune_runs):
        summary.status = "sensitive"
        summary.reason = (
            "only one of the learning rates tried came within "
            f"{TOLERANCE:.0%} of its best score: hard to tune"
        )
    return summary


def _alone(band: tuple[float, float] | None, tune_runs: Sequence[Run]) -> bool:
    if band is None:
        return True
    inside = [run for run in tune_runs if band[0] <= run.hyperparameters.get("lr", -1) <= band[1]]
    return len(inside) <= 1


def rank(summaries: Sequence[Summary]) -> list[Summary]:
    """Best first: test metric (higher), else test loss; then final training loss (lower)."""

    def key(summary: Summary) -> tuple[float, float, float]:
        failed = 0.0 if summary.status in ("ok", "slow", "sensitive") else 1.0
        metric = -summary.test_metric if summary.test_metric is not None else summary.test_loss
        metric = metric if math.isfinite(metric) else math.inf
        return (failed, metric, _finite_or_inf(summary.train_loss))

    return sorted(summaries, key=key)


def recommend(summaries: Sequence[Summary], metric: str | None) -> Recommendation:
    """The plain-language recommendation and its evidence, from the summaries alone."""
    ordered = rank(summaries)
    healthy = [s for s in ordered if s.status == "ok"]
    usable = healthy or [s for s in ordered if s.status in ("slow", "sensitive")]
    failures = [(s.optimizer, s.reason) for s in ordered if s.status != "ok"]
    if not usable:
        return Recommendation(
            None, None, None, failures, "No optimizer trained successfully: every one diverged. "
            "Check the model, the loss and the data scale first.", [],
        )  # fmt: skip
    best, runner_up = usable[0], (usable[1] if len(usable) > 1 else None)
    lr = best.hyperparameters.get("lr")
    evidence = [_line(s, metric) for s in ordered]
    text = f"Use {best.title} with lr = {lr:.3g}" if lr is not None else f"Use {best.title}"
    text += f": {_score(best, metric)} over the seeds, the best of {len(summaries)} optimizers "
    text += "tuned with the same budget."
    if best.lr_range and best.lr_range[0] < best.lr_range[1]:
        text += (
            f" Learning rates from {best.lr_range[0]:.3g} to {best.lr_range[1]:.3g} did about "
            f"as well ({best.tuneability:.1f} decades), so the setting is forgiving."
        )
    elif best.lr_range:
        text += " Only that learning rate did this well: tune it with care."
    if runner_up is not None:
        text += f" Runner-up: {runner_up.title} ({_score(runner_up, metric)})."
    if failures:
        named = "; ".join(f"{key}: {reason}" for key, reason in failures[:4])
        more = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
        text += f" Not recommended: {named}{more}."
    return Recommendation(
        best.optimizer,
        runner_up.optimizer if runner_up else None,
        best.lr_range,
        failures,
        text,
        evidence,
    )


def _score(summary: Summary, metric: str | None) -> str:
    if summary.test_metric is not None:
        spread = f" ± {summary.test_metric_std:.3f}" if summary.test_metric_std else ""
        return f"test {metric or 'metric'} {summary.test_metric:.3f}{spread}"
    return f"test loss {summary.test_loss:.4g}"


def _line(summary: Summary, metric: str | None) -> str:
    status = "" if summary.status == "ok" else f" [{summary.status}: {summary.reason}]"
    target = (
        f", target reached in {summary.steps_to_target:.0f} steps"
        if summary.steps_to_target is not None
        else ""
    )
    return (
        f"{summary.title}: {_score(summary, metric)}, final training loss "
        f"{summary.train_loss:.4g}{target}, good lr band {summary.tuneability:.1f} decades{status}"
    )
