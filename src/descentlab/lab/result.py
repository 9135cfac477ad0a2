"""The result of a race: tensors per run, metrics, and export to JSON and CSV."""

from __future__ import annotations

import bisect
import csv
import dataclasses
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .record import NEVER, Recorder
from .runs import Entry


@dataclass(frozen=True)
class RunInfo:
    optimizer: str
    hyperparameters: dict[str, Any]
    start: tuple[float, ...]


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite_or_none(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


class RunTable(Sequence[RunInfo]):
    """Every run's optimizer, hyperparameters and start, in race order, each made when it is
    read: building 100,000 of them up front took most of a second at the end of a 100,000-run
    race whose caller reads a few (per-entry columns are converted to Python numbers once, on
    first use)."""

    def __init__(self, entries: list[Entry]) -> None:
        self._entries = entries
        self._ends = list(itertools.accumulate(entry.runs for entry in entries))
        self._columns: dict[int, tuple[dict[str, Any], dict[str, list], list]] = {}

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"run {index} of a race with {len(self)} runs")
        index %= len(self)
        which = bisect.bisect_right(self._ends, index)
        local = index - (self._ends[which - 1] if which else 0)
        shared, columns, starts = self._columns_of(which)
        hyperparameters = {**shared, **{name: values[local] for name, values in columns.items()}}
        return RunInfo(self._entries[which].key, hyperparameters, tuple(starts[local]))

    def _columns_of(self, which: int):
        if which not in self._columns:
            entry = self._entries[which]
            self._columns[which] = (
                entry.shared_hyperparameters(),
                {name: value.tolist() for name, value in entry.values.items()},
                entry.starts.tolist(),
            )
        return self._columns[which]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RunTable({len(self)} runs)"


class _Selected(Sequence[RunInfo]):
    """Some runs of a run table, in a given order, each read when asked for."""

    def __init__(self, runs: Sequence[RunInfo], rows: list[int]) -> None:
        self._runs, self._rows = runs, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._runs[self._rows[index]]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)


@dataclass
class RaceResult:
    """Every run of a race, in the order of the optimizer entries, then of their runs.

    Per-run tensors (first dimension R, or second for per-step ones): ``final`` (R, D),
    ``final_loss``, ``diverged``, ``diverged_at`` and ``steps_to_tolerance`` (-1: never),
    ``distance_to_minimum`` (NaN when the landscape has no known minimum); when recorded,
    ``path`` (T+1, R, D), ``loss`` (T+1, R), ``grad`` (T, R, D) and ``state`` buffers (T, R, D),
    NaN for runs whose optimizer keeps no such buffer.
    """

    landscape: Any
    runs: Sequence[RunInfo]
    steps: int
    final: Tensor
    final_loss: Tensor
    diverged_at: Tensor
    steps_to_tolerance: Tensor
    distance_to_minimum: Tensor
    path: Tensor | None = None
    loss: Tensor | None = None
    grad: Tensor | None = None
    state: dict[str, Tensor] = field(default_factory=dict)

    @property
    def diverged(self) -> Tensor:
        return self.diverged_at >= 0

    def effective_step_size(self) -> Tensor:
        """Per coordinate, how far each step moved per unit of gradient: |dx| / |g|, (T, R, D).

        For plain GD this is the learning rate; Adagrad's only shrinks; Adam's adapts per axis.
        Needs ``record="inspect"``; NaN where the gradient is zero.
        """
        if self.grad is None or self.path is None:
            raise ValueError("effective_step_size needs a race recorded with record='inspect'")
        moved = (self.path[1:] - self.path[:-1]).abs()
        return moved / self.grad.abs()

    # ----------------------------------------------------------------------------- assembly

    @classmethod
    def assemble(
        cls,
        surface,
        entries: list[Entry],
        recorders: list[Recorder],
        *,
        restarts: int,
        tolerance: float,
        steps: int,
        whole: Recorder | None = None,
        distance_to_minimum: Callable[[Tensor], Tensor] | None = None,
        replica_starts: list[Tensor] | None = None,
    ) -> RaceResult:
        """The result from each entry's recorder; ``whole``, when given, is one recorder whose
        per-step record already holds every entry's runs side by side, in order, taken as is.
        ``distance_to_minimum`` computes the final points' distances when the runs are not all
        on ``surface`` (a race on several landscapes). With restarts, ``replica_starts`` holds
        each entry's starts of every replica, so that each run reports the start it kept."""
        measure = distance_to_minimum or (lambda final: distance_to_minima(final, surface))
        parts = [
            _best_replicas(recorder, entry.runs, restarts)
            for entry, recorder in zip(entries, recorders, strict=True)
        ]
        if restarts > 1 and replica_starts is not None:
            entries = [
                dataclasses.replace(entry, starts=starts[part["chosen"]])
                for entry, starts, part in zip(entries, replica_starts, parts, strict=True)
            ]
        runs = RunTable(entries)
        final = torch.cat([p["final"] for p in parts])
        recorded = parts[0]["path"] is not None
        inspected = parts[0]["grad"] is not None
        names = sorted({name for p in parts for name in p["state"]})
        state = {}
        for name in names:
            # Entries without the buffer get NaN in the shape of those that have it.
            like = next(p["state"][name] for p in parts if name in p["state"])
            filled = []
            for p in parts:
                if name in p["state"]:
                    filled.append(p["state"][name])
                else:
                    shape = (like.shape[0], p["grad"].shape[1], *like.shape[2:])
                    filled.append(torch.full(shape, float("nan"), dtype=like.dtype))
            try:
                state[name] = torch.cat(filled, dim=1)
            except RuntimeError:
                continue  # same name, different layouts in two optimizers: not comparable
        return cls(
            landscape=surface,
            runs=runs,
            steps=steps,
            final=final,
            final_loss=torch.cat([p["final_loss"] for p in parts]),
            diverged_at=_never_as_minus_one(torch.cat([p["diverged_at"] for p in parts])),
            steps_to_tolerance=_never_as_minus_one(torch.cat([p["reached_at"] for p in parts])),
            distance_to_minimum=measure(final),
            path=_joined([p["path"] for p in parts], whole and whole.path) if recorded else None,
            loss=_joined([p["loss"] for p in parts], whole and whole.loss) if recorded else None,
            grad=_joined([p["grad"] for p in parts], whole and whole.grad) if inspected else None,
            state=state,
        )

    def select(self, index: Tensor, landscape: Any) -> RaceResult:
        """The runs ``index`` (a 1-D tensor of run numbers, in the order wanted) as a result of
        their own on ``landscape``: one landscape's share of a race on several."""
        rows = index.tolist()

        def columns(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor[:, index]

        return RaceResult(
            landscape=landscape,
            runs=_Selected(self.runs, rows),
            steps=self.steps,
            final=self.final[index],
            final_loss=self.final_loss[index],
            diverged_at=self.diverged_at[index],
            steps_to_tolerance=self.steps_to_tolerance[index],
            distance_to_minimum=self.distance_to_minimum[index],
            path=columns(self.path),
            loss=columns(self.loss),
            grad=columns(self.grad),
            state={name: value[:, index] for name, value in self.state.items()},
        )

    # ----------------------------------------------------------------------------- export

    def to_dict(self) -> dict[str, Any]:
        """``{"landscape": ..., "runs": [{"optimizer", "hyperparameters", "start", "path", "loss",
        "diverged", ...}]}``; paths and losses only when they were recorded."""
        runs = []
        for index, info in enumerate(self.runs):
            run: dict[str, Any] = {
                "optimizer": info.optimizer,
                "hyperparameters": {k: _json_value(v) for k, v in info.hyperparameters.items()},
                "start": list(info.start),
                "final": _finite_or_none(self.final[index].tolist()),
                "final_loss": _json_value(float(self.final_loss[index])),
                "diverged": bool(self.diverged[index]),
                "steps_to_tolerance": int(self.steps_to_tolerance[index]),
                "distance_to_minimum": _json_value(float(self.distance_to_minimum[index])),
            }
            if self.path is not None:
                run["path"] = [_finite_or_none(p) for p in self.path[:, index].tolist()]
                run["loss"] = _finite_or_none(self.loss[:, index].tolist())
            runs.append(run)
        return {
            "landscape": {
                "key": self.landscape.key,
                "title": self.landscape.title,
                "latex": self.landscape.latex,
                "domain": [list(b) for b in self.landscape.domain],
            },
            "steps": self.steps,
            "runs": runs,
        }

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), allow_nan=False))

    def to_csv(self, path: str | Path) -> None:
        """One row per run and step (one per run with the final state when no path was kept)."""
        dim = self.final.shape[1]
        axes = [f"x{i}" for i in range(dim)] if dim > 2 else ["x", "y"][:dim]
        with Path(path).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["run", "optimizer", "hyperparameters", "step", *axes, "loss", "diverged"]
            )
            for index, info in enumerate(self.runs):
                label = json.dumps({k: _json_value(v) for k, v in info.hyperparameters.items()})
                diverged = bool(self.diverged[index])
                if self.path is None:
                    rows = [(self.steps, self.final[index].tolist(), float(self.final_loss[index]))]
                else:
                    rows = [
                        (t, self.path[t, index].tolist(), float(self.loss[t, index]))
                        for t in range(self.steps + 1)
                    ]
                for step, point, loss in rows:
                    writer.writerow([index, info.optimizer, label, step, *point, loss, diverged])


def _joined(per_entry: list[Tensor], whole: Tensor | None) -> Tensor:
    """Per-step records of the entries side by side (runs on dimension 1), without copying
    them where they already are (a 100,000-run path of 1000 steps is 800 MB)."""
    if whole is not None:
        return whole
    if len(per_entry) == 1 and per_entry[0].is_contiguous():
        return per_entry[0]
    return torch.cat(per_entry, dim=1)


def _never_as_minus_one(counter: Tensor) -> Tensor:
    return torch.where(counter == NEVER, -1, counter)


def distance_to_minima(final: Tensor, surface) -> Tensor:
    """Each final point's Euclidean distance to the landscape's nearest known minimum (NaN when
    it knows none)."""
    minima = [m.location for m in surface.minima]
    if not minima:
        return torch.full((final.shape[0],), float("nan"), dtype=final.dtype)
    points = torch.tensor(minima, dtype=final.dtype).reshape(len(minima), -1)
    # Differences, not torch.cdist: for more than 25 runs cdist computes Euclidean distances
    # through a matrix product (less accurate near a minimum), and it took 8 to 16 ms for 200
    # runs and 4 minima on this 2-core machine while other work ran (its threads wait for cores).
    return torch.linalg.vector_norm(final[:, None, :] - points, dim=-1).amin(dim=1)


def _best_replicas(recorder: Recorder, runs: int, restarts: int) -> dict[str, Any]:
    """With restarts, keep for each run the replica with the lowest final loss."""
    record = {
        "final": recorder.final,
        "final_loss": recorder.final_loss,
        "diverged_at": recorder.diverged_at,
        "reached_at": recorder.reached_at,
        "path": recorder.path,
        "loss": recorder.loss,
        "grad": recorder.grad,
        "state": dict(recorder.state),
    }
    if restarts == 1:
        return record
    losses = recorder.final_loss.reshape(restarts, runs).nan_to_num(nan=math.inf)
    chosen = losses.argmin(dim=0) * runs + torch.arange(runs)
    record["chosen"] = chosen
    for name in ("final", "final_loss", "diverged_at", "reached_at"):
        record[name] = record[name][chosen]
    for name in ("path", "loss", "grad"):
        if record[name] is not None:
            record[name] = record[name][:, chosen]
    record["state"] = {name: value[:, chosen] for name, value in record["state"].items()}
    return record
