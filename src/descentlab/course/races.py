"""The race service: concurrent race requests run together as shared stacked races.

The lab advances N runs of one optimizer with one call per step, so 200 runs cost little more than
one. A request here is small (1 to 4 optimizers, one start), so the service gathers the requests
that arrive while a batch is computing, groups them by (landscape, steps), and for each optimizer
key of a group calls ``lab.race`` once with every run's hyperparameters as per-run lists paired
one to one with per-run starts. Results are split back per request; each run's JSON is cached by
(landscape, start, steps, racer), so a slider that changes one racer recomputes that racer only,
and whole answers are cached by request.

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
from .schedule_settings import ScheduleSetting, as_dict, lr_factors
from .schedule_settings import build as build_schedule

#: Paths and losses are sent with this many significant digits (drawing needs far fewer).
SIGNIFICANT_DIGITS = 7


@dataclass(frozen=True)
class Racer:
    key: str
    hyperparameters: tuple[tuple[str, float], ...]  # sorted by name
    schedule: ScheduleSetting | None = None  # the lr schedule; None: a constant lr


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
        if racer.schedule is not None:
            try:
                build_schedule(racer.schedule)
            except (TypeError, ValueError) as error:
                raise ValueError(f"optimizers[{position}].schedule: {error}") from None
    return surface


@dataclass(frozen=True)
class RunKey:
    """One racer of one request: a run's trajectory depends on nothing else, so runs are cached
    one by one (a slider that moves one racer's lr recomputes that racer only)."""

    landscape: str
    start: tuple[float, ...]
    steps: int
    racer: Racer


def run_keys(request: RaceRequest) -> list[RunKey]:
    return [RunKey(request.landscape, request.start, request.steps, r) for r in request.racers]


def compute_runs(keys: list[RunKey]) -> dict[RunKey, dict[str, Any] | Exception]:
    """Every run, with one ``lab.race`` per (landscape, steps, optimizer key, schedule) holding
    all of its runs: per-run hyperparameters as lists paired one to one with per-run starts. A
    schedule is one per ``lab.race`` call, so runs with different schedules race apart."""
    results: dict[RunKey, dict[str, Any] | Exception] = {}
    groups: dict[tuple[str, int, str, ScheduleSetting | None], list[RunKey]] = defaultdict(list)
    for key in dict.fromkeys(keys):
        groups[(key.landscape, key.steps, key.racer.key, key.racer.schedule)].append(key)
    for (landscape_text, steps, optimizer, schedule), members in groups.items():
        try:
            surface = resolve_landscape(landscape_text)
            result = _race_one_key(surface, optimizer, members, steps, schedule)
        except (ValueError, TypeError) as error:
            results.update(dict.fromkeys(members, error))
            continue
        rows = _Rows(result)
        for run, key in enumerate(members):
            results[key] = rows.run(run, key.racer)
    return results


def run_batch(requests: list[RaceRequest]) -> list[dict[str, Any] | Exception]:
    """Answer many requests with one ``lab.race`` per (landscape, steps, optimizer key)."""
    answers: list[dict[str, Any] | Exception] = []
    valid = []
    for request in requests:
        try:
            valid.append((request, check_request(request)))
        except ValueError as error:
            valid.append((request, error))
    runs = compute_runs(
        [
            key
            for request, checked in valid
            if not isinstance(checked, Exception)
            for key in run_keys(request)
        ]
    )
    for request, checked in valid:
        if isinstance(checked, Exception):
            answers.append(checked)
            continue
        parts = [runs[key] for key in run_keys(request)]
        failure = next((part for part in parts if isinstance(part, Exception)), None)
        answers.append(failure or _answer_dict(request, checked, parts))
    return answers


def _answer_dict(request: RaceRequest, surface, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "landscape": _landscape_dict(surface, request.landscape),
        "steps": request.steps,
        "runs": runs,
    }


def _race_one_key(
    surface, key: str, members: list[RunKey], steps: int, schedule: ScheduleSetting | None = None
):
    """One stacked race of every run of optimizer ``key`` under one lr schedule: per-run
    hyperparameters and starts."""
    spec = optim.spec(key)
    names = sorted({name for member in members for name, _ in member.racer.hyperparameters})
    defaults = {h.name: h.default for h in spec.hyperparameters}
    columns: dict[str, Any] = {}
    for name in names:
        column = [
            dict(member.racer.hyperparameters).get(name, defaults.get(name)) for member in members
        ]
        # The same value for all runs stays a number (the fast path); else one value per run.
        columns[name] = column[0] if len(set(column)) == 1 else column
    # Lists of one value per run pair with the starts one to one; shared numbers are crossed
    # with the starts, which again gives one run per start.
    starts = [list(member.start) for member in members]
    return lab.race(
        surface,
        [(key, columns)],
        starts,
        steps,
        record="path",
        schedule=None if schedule is None else build_schedule(schedule),
    )


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
        scheduled = {}
        if racer.schedule is not None:
            scheduled = {
                "schedule": as_dict(racer.schedule),
                "lr_factor": lr_factors(racer.schedule, result.steps),
            }
        return {
            "optimizer": info.optimizer,
            # Per-run values come back as float32 (0.45 -> 0.4499999881): report what was asked.
            "hyperparameters": {**numeric, **dict(racer.hyperparameters)},
            "path": path if self.path_finite[run] else [_finite(point) for point in path],
            "loss": loss if self.loss_finite[run] else _finite(loss),
            "final_loss": _finite([float(result.final_loss[run])])[0],
            "diverged": bool(result.diverged[run]),
            "diverged_at": int(result.diverged_at[run]),
            **scheduled,
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

    Two caches: whole answers by request (a lesson's own race, asked by every visitor), and each
    run's JSON by :class:`RunKey` (a slider move recomputes only the racer it changed). Answers
    are JSON bytes, encoded in the worker thread: 200 answers of 4 x 301 points are seconds of
    encoding that would otherwise stall the event loop.
    """

    def __init__(
        self, cache_size: int = 1024, run_cache_size: int = 8192, max_batch_runs: int = 2000
    ) -> None:
        self.cache_size = cache_size
        self.run_cache_size = run_cache_size
        self.max_batch_runs = max_batch_runs
        self._cache: OrderedDict[RaceRequest, bytes] = OrderedDict()
        self._runs: OrderedDict[RunKey, bytes] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pending: list[tuple[RaceRequest, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.batches = 0  # how many lab batches ran (for tests and the benchmark)
        self.runs_computed = 0  # how many runs the lab computed (the rest came from the cache)

    def cached(self, request: RaceRequest) -> bytes | None:
        with self._cache_lock:
            answer = self._cache.get(request)
            if answer is not None:
                self._cache.move_to_end(request)
            return answer

    def _remember(self, cache: OrderedDict, key: Any, value: bytes, size: int) -> None:
        with self._cache_lock:
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > size:
                cache.popitem(last=False)

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
        answer = self.answer_batch([request])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def answer_batch(self, requests: list[RaceRequest]) -> list[bytes | ValueError]:
        """JSON answers (or a ValueError naming the problem), computing only uncached runs."""
        answers: list[bytes | ValueError] = []
        checked = []
        for request in requests:
            try:
                checked.append(check_request(request))
            except ValueError as error:
                checked.append(_plain(error))
        known: dict[RunKey, bytes | Exception] = {}
        with self._cache_lock:
            for request, surface in zip(requests, checked, strict=True):
                if not isinstance(surface, Exception):
                    for key in run_keys(request):
                        if key in self._runs:
                            known[key] = self._runs[key]
        missing = [
            key
            for request, surface in zip(requests, checked, strict=True)
            if not isinstance(surface, Exception)
            for key in run_keys(request)
            if key not in known
        ]
        for key, run in compute_runs(missing).items():
            if isinstance(run, Exception):
                known[key] = _plain(run)
            else:
                known[key] = json.dumps(run, allow_nan=False).encode()
                self._remember(self._runs, key, known[key], self.run_cache_size)
                self.runs_computed += 1
        for request, surface in zip(requests, checked, strict=True):
            if isinstance(surface, Exception):
                answers.append(surface)
                continue
            parts = [known[key] for key in run_keys(request)]
            failure = next((part for part in parts if isinstance(part, Exception)), None)
            if failure is not None:
                answers.append(failure)
                continue
            head = json.dumps(_landscape_dict(surface, request.landscape)).encode()
            answer = b'{"landscape":%s,"steps":%d,"runs":[%s]}' % (
                head,
                request.steps,
                b",".join(parts),
            )
            self._remember(self._cache, request, answer, self.cache_size)
            answers.append(answer)
        return answers

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
                answers = await asyncio.to_thread(self.answer_batch, unique)
            except Exception as error:  # never leave a request waiting forever
                answers = [RuntimeError(f"the race worker failed: {error}")] * len(unique)
            self.batches += 1
            by_request = dict(zip(unique, answers, strict=True))
            for request, future in batch:
                if future.done():
                    continue
                answer = by_request[request]
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)


def _plain(error: Exception) -> ValueError:
    """A ValueError with the first line of the message (an expression's carets stay out)."""
    text = str(error)
    return ValueError(text.splitlines()[0] if text else type(error).__name__)
