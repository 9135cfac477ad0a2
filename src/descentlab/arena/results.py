"""What a comparison produces: every training run, one summary per optimizer, a recommendation.

Plain dataclasses of numbers and strings, so that a comparison round-trips through JSON (the report
writes it beside the HTML; the course reads it) and builds again from the trials of an Optuna study.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Run:
    """One training of one configuration (an optimizer, its hyperparameters, a seed).

    ``phase`` is ``"tune"`` (a point of the search, on the tuning seed) or ``"seed"`` (the chosen
    setting retrained on a fresh seed). Losses are per optimizer step (training, on the mini-batch)
    and per epoch (validation); ``grad_norms`` holds each layer's gradient norm per epoch (the mean
    over that epoch's steps), so vanishing and exploding gradients show. ``seconds`` is this run's
    share of the wall time of the batched training it was part of (total / K).
    """

    optimizer: str
    phase: str
    hyperparameters: dict[str, float]
    seed: int
    train_loss: list[float]
    val_loss: list[float]
    val_metric: list[float] | None
    test_loss: float
    test_metric: float | None
    steps_per_epoch: int
    steps_to_target: int | None
    seconds: float
    diverged: bool
    diverged_at: int | None = None
    best_epoch: int | None = None
    grad_norms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.train_loss)

    @property
    def final_train_loss(self) -> float:
        """The mean training loss over the last epoch's steps (one mini-batch is too noisy)."""
        tail = self.train_loss[-self.steps_per_epoch :] if self.train_loss else [math.nan]
        return sum(tail) / len(tail)

    @property
    def seconds_to_target(self) -> float | None:
        if self.steps_to_target is None or not self.train_loss:
            return None
        return self.seconds * self.steps_to_target / len(self.train_loss)

    @property
    def selection_score(self) -> float:
        """Lower is better: minus the validation metric where there is one, else the val loss.

        Taken at the best epoch when early stopping chose one, else at the last epoch.
        """
        if self.diverged:
            return math.inf
        epoch = -1 if self.best_epoch is None else self.best_epoch
        if self.val_metric:
            value = -self.val_metric[epoch]
        else:
            value = self.val_loss[epoch] if self.val_loss else math.inf
        return value if math.isfinite(value) else math.inf


@dataclass
class Summary:
    """One optimizer's result under the protocol.

    ``test_metric``/``train_loss`` are means over the seed runs at the chosen setting (``*_std``
    their standard deviations). ``tuneability`` is the width, in decades of the learning rate, of
    the band of tuning points whose validation score is within ``tolerance`` of the best one
    (``lr_range`` its ends). ``status`` is ``"ok"``, ``"diverged"``, ``"slow"`` or ``"sensitive"``,
    with ``reason`` in words.
    """

    optimizer: str
    title: str
    hyperparameters: dict[str, float]
    test_metric: float | None
    test_metric_std: float | None
    test_loss: float
    train_loss: float
    train_loss_std: float
    steps_to_target: float | None
    seconds_to_target: float | None
    seconds: float
    tuneability: float
    lr_range: tuple[float, float] | None
    diverged_runs: int
    runs: int
    status: str
    reason: str = ""


@dataclass
class Recommendation:
    """The plain-language answer and the evidence behind it."""

    best: str | None
    runner_up: str | None
    lr_range: tuple[float, float] | None
    failures: list[tuple[str, str]]
    text: str
    evidence: list[str]


@dataclass
class Comparison:
    """A whole comparison: what was asked, every run, the summaries and the recommendation."""

    task: str
    task_title: str
    metric: str | None
    settings: dict[str, Any]
    optimizers: list[str]
    budget: int
    seeds: int
    runs: list[Run]
    summaries: list[Summary]
    recommendation: Recommendation
    notices: list[str] = field(default_factory=list)

    @property
    def summary(self) -> list[dict[str, Any]]:
        """The summaries as dictionaries (what the course and the JSON show)."""
        return [asdict(entry) for entry in self.summaries]

    def runs_of(self, optimizer: str, phase: str | None = None) -> list[Run]:
        return [
            run
            for run in self.runs
            if run.optimizer == optimizer and (phase is None or run.phase == phase)
        ]

    def to_json(self) -> str:
        return json.dumps(_finite(asdict(self)), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Comparison:
        data = json.loads(text)
        data["runs"] = [Run(**run) for run in data["runs"]]
        data["summaries"] = [_summary(entry) for entry in data["summaries"]]
        recommendation = data["recommendation"]
        recommendation["failures"] = [tuple(pair) for pair in recommendation["failures"]]
        if recommendation["lr_range"] is not None:
            recommendation["lr_range"] = tuple(recommendation["lr_range"])
        data["recommendation"] = Recommendation(**recommendation)
        return cls(**data)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per run: what was trained and how it ended (for the CSV beside the report)."""
        rows = []
        for run in self.runs:
            row = {
                "task": self.task,
                "optimizer": run.optimizer,
                "phase": run.phase,
                "seed": run.seed,
                **{f"hp_{name}": value for name, value in sorted(run.hyperparameters.items())},
                "final_train_loss": run.final_train_loss,
                "val_score": run.selection_score,
                "test_loss": run.test_loss,
                "test_metric": run.test_metric,
                "steps": run.steps,
                "steps_to_target": run.steps_to_target,
                "seconds": run.seconds,
                "diverged": run.diverged,
            }
            rows.append(row)
        return rows


def _summary(data: dict[str, Any]) -> Summary:
    if data.get("lr_range") is not None:
        data["lr_range"] = tuple(data["lr_range"])
    known = {f.name for f in fields(Summary)}
    return Summary(**{key: value for key, value in data.items() if key in known})


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
