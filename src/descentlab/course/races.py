"""The race service: concurrent race requests run together as shared stacked races.

The lab advances N runs of one optimizer with one call per step, so 200 runs cost little more than
one. A request here is small (1 to 4 optimizers, one start), so the service gathers the requests
that arrive while a batch is computing, groups them by (landscape, steps), and for each optimizer
key of a group calls ``lab.race`` once with every run's hyperparameters as per-run lists paired
one to one with per-run starts. Results are split back per request and kept in an LRU cache.

Compute runs in one worker thread (``asyncio.to_thread``), never on the event loop, so pages and
the API stay responsive while races run.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from .. import lab, optim
from .content import resolve_landscape

#: Paths and losses are sent with this many significant digits (drawing needs far fewer).
SIGNIFICANT_DIGITS = 7


@dataclass(frozen=True)
class Racer:
    key: str
    hyperparameters: tuple[tuple[str, float], ...]  # sorted by name


@dataclass(frozen=True)
class RaceRequest:
    """One widget's race: hashable, so it is also the cache key."""

    landscape: str
    start: tuple[float, ...]
    steps: int
    racers: tuple[Racer, ...]


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def check_request(request: RaceRequest):
    """The request's landscape, or ValueError naming what is wrong (optimizer, hyperparameter,
    start); a request that passes races without poisoning the batch it joins."""
    surface = resolve_landscape(request.landscape)
    if len(request.start) != surface.dim:
        raise ValueError(
            f"start: the landscape is {surface.dim}-D, the start has {len(request.start)} numbers"
        )
    for axis, value in enumerate(request.start):
        if not math.isfinite(value):
            raise ValueError(f"start[{axis}] must be a finite number")
    for position, racer in enumerate(request.racers):
        spec = optim.spec(racer.key)
        known = {h.name: h for h in spec.hyperparameters}
        for name, value in racer.hyperparameters:
            hyper = known.get(name)
            if hyper is None or isinstance(hyper.default, bool) or hyper.scale == "choice":
                numeric = [
                    h
                    for h in known
                    if isinstance(known[h].default, int | float)
                    and not isinstance(known[h].default, bool)
                    and known[h].scale != "choice"
                ]
                raise ValueError(
                    f"optimizers[{position}]: {racer.key} has no numeric hyperparameter "
                    f"{name!r}; it has: {', '.join(numeric)}"
                )
            if not math.isfinite(value):
                raise ValueError(f"optimizers[{position}].{name} must be a finite number")
    return surface


def run_batch(requests: list[RaceRequest]) -> list[dict[str, Any] | Exception]:
    """Answer many requests with one ``lab.race`` per (landscape, steps, optimizer key)."""
    answers: list[dict[str, Any] | Exception] = [None] * len(requests)  # type: ignore[list-item]
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        try:
            check_request(request)
        except ValueError as error:
            answers[index] = error
            continue
        groups[(request.landscape, request.steps)].append(index)
    for (landscape_text, steps), members in groups.items():
        try:
            surface = resolve_landscape(landscape_text)
        except ValueError as error:
            for index in members:
                answers[index] = error
            continue
        # Every run of the group, per optimizer key: (request index, racer position, racer).
        by_key: dict[str, list[tuple[int, int, Racer]]] = defaultdict(list)
        for index in members:
            for position, racer in enumerate(requests[index].racers):
                by_key[racer.key].append((index, position, racer))
        runs: dict[int, list[Any]] = {
            index: [None] * len(requests[index].racers) for index in members
        }
        failed: dict[int, Exception] = {}
        for key, items in by_key.items():
            try:
                result = _race_one_key(surface, key, items, requests, steps)
            except (ValueError, TypeError) as error:
                for index, _, _ in items:
                    failed[index] = error
                continue
            rows = _Rows(result)
            for run, (index, position, racer) in enumerate(items):
                runs[index][position] = rows.run(run, racer)
        for index in members:
            if index in failed:
                answers[index] = failed[index]
            else:
                answers[index] = {
                    "landscape": _landscape_dict(surface, landscape_text),
                    "steps": steps,
                    "runs": runs[index],
                }
    return answers


def _race_one_key(surface, key, items, requests, steps):
    """One stacked race of every run of optimizer ``key``: per-run hyperparameters and starts."""
    spec = optim.spec(key)
    names = sorted({name for _, _, racer in items for name, _ in racer.hyperparameters})
    defaults = {h.name: h.default for h in spec.hyperparameters}
    columns: dict[str, list[float]] = {}
    for name in names:
        column = []
        for _, _, racer in items:
            given = dict(racer.hyperparameters)
            column.append(given.get(name, defaults.get(name)))
        # The same value for all runs stays a number (the fast path); else one value per run.
        columns[name] = column[0] if len(set(column)) == 1 else column
    # Lists of one value per run pair with the starts one to one; shared numbers are crossed
    # with the starts, which again gives one run per start.
    starts = [list(requests[index].start) for index, _, _ in items]
    return lab.race(surface, [(key, columns)], starts, steps, record="path")


def _significant(values: torch.Tensor, digits: int = SIGNIFICANT_DIGITS) -> torch.Tensor:
    """Round to ``digits`` significant digits, as float64 whose shortest repr is that decimal.

    A float32 0.45 printed as a double is 0.44999998807907104: rounding here shortens the JSON
    about threefold, which is most of the cost of answering a batch of races. An integer divided
    by an exact power of ten is the double nearest the decimal, hence its short repr.
    """
    values = values.to(torch.float64)
    magnitude = torch.floor(torch.log10(values.abs().clamp_min(1e-300)))
    shift = (digits - 1 - magnitude).clamp(-22, 22)
    scale = torch.pow(10.0, shift.abs())
    scaled = torch.where(shift >= 0, values * scale, values / scale).round()
    rounded = torch.where(shift >= 0, scaled / scale, scaled * scale)
    return torch.where(torch.isfinite(values) & (values != 0), rounded, values)


class _Rows:
    """A race result's runs as JSON-ready dicts. Rounding and the finiteness check run once over
    the whole result; only runs holding a NaN or an infinity are converted value by value."""

    def __init__(self, result) -> None:
        self.result = result
        self.path = _significant(result.path)
        self.loss = _significant(result.loss)
        self.path_finite = torch.isfinite(result.path).all(dim=2).all(dim=0).tolist()
        self.loss_finite = torch.isfinite(result.loss).all(dim=0).tolist()

    def run(self, run: int, racer: Racer) -> dict[str, Any]:
        result = self.result
        info = result.runs[run]
        numeric = {
            name: value
            for name, value in info.hyperparameters.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        path = self.path[:, run].tolist()
        loss = self.loss[:, run].tolist()
        return {
            "optimizer": info.optimizer,
            # Per-run values come back as float32 (0.45 -> 0.4499999881): report what was asked.
            "hyperparameters": {**numeric, **dict(racer.hyperparameters)},
            "path": path if self.path_finite[run] else [_finite(point) for point in path],
            "loss": loss if self.loss_finite[run] else _finite(loss),
            "final_loss": _finite([float(result.final_loss[run])])[0],
            "diverged": bool(result.diverged[run]),
            "diverged_at": int(result.diverged_at[run]),
        }


def _landscape_dict(surface, text: str) -> dict[str, Any]:
    minimum = surface.global_minimum
    return {
        "name": text,
        "title": surface.title,
        "latex": surface.latex,
        "dim": surface.dim,
        "domain": [list(pair) for pair in surface.domain],
        "minimum": None if minimum is None else minimum.value,
    }


class RaceService:
    """Gathers race requests, runs them in batches off the event loop, caches the answers.

    Answers are JSON bytes, encoded in the worker thread: 200 answers of 4 x 301 points are
    seconds of encoding that would otherwise stall the event loop.
    """

    def __init__(self, cache_size: int = 4096, max_batch_runs: int = 2000) -> None:
        self.cache_size = cache_size
        self.max_batch_runs = max_batch_runs
        self._cache: OrderedDict[RaceRequest, bytes] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pending: list[tuple[RaceRequest, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.batches = 0  # how many lab batches ran (for tests and the benchmark)

    def cached(self, request: RaceRequest) -> bytes | None:
        with self._cache_lock:
            answer = self._cache.get(request)
            if answer is not None:
                self._cache.move_to_end(request)
            return answer

    def _remember(self, request: RaceRequest, answer: bytes) -> None:
        with self._cache_lock:
            self._cache[request] = answer
            self._cache.move_to_end(request)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    async def race(self, request: RaceRequest) -> bytes:
        """The JSON answer to one request; raises ValueError for a race the lab rejects."""
        answer = self.cached(request)
        if answer is not None:
            return answer
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def race_now(self, request: RaceRequest) -> bytes:
        """Synchronous, for start-up warming (caller's thread)."""
        answer = self.cached(request)
        if answer is None:
            answer = encode_batch([request])[0]
            if isinstance(answer, Exception):
                raise answer
            self._remember(request, answer)
        return answer

    async def _drain(self) -> None:
        while self._pending:
            batch, runs = [], 0
            while self._pending and (not batch or runs < self.max_batch_runs):
                item = self._pending.pop(0)
                batch.append(item)
                runs += len(item[0].racers)
            # Identical requests in one batch are computed once.
            unique = list(dict.fromkeys(request for request, _ in batch))
            try:
                answers = await asyncio.to_thread(encode_batch, unique)
            except Exception as error:  # never leave a request waiting forever
                answers = [error] * len(unique)
            self.batches += 1
            by_request = dict(zip(unique, answers, strict=True))
            for request, answer in by_request.items():
                if not isinstance(answer, Exception):
                    self._remember(request, answer)
            for request, future in batch:
                if future.done():
                    continue
                answer = by_request[request]
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)


def encode_batch(requests: list[RaceRequest]) -> list[bytes | Exception]:
    """:func:`run_batch`, each answer encoded as JSON bytes."""
    return [
        answer if isinstance(answer, Exception) else json.dumps(answer, allow_nan=False).encode()
        for answer in run_batch(requests)
    ]
