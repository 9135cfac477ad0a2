"""The race service: concurrent race requests run together as shared stacked races.

The lab advances N runs of one optimizer with one call per step, so 200 runs cost little more than
one. A request here is small (1 to 4 optimizers, one start), so the service gathers the requests
that arrive while a batch is computing and races all of them with the same number of steps as
one race, whatever their landscapes (``lab.race_assorted``: each landscape evaluates its own
runs): one entry per (optimizer key, lr schedule), each under its own schedule, with every run's
hyperparameters as per-run lists paired one to one with the entry's own starts. A step of a
small race costs its number of tensor operations, so one race over four landscapes answers a
batch in less time than four races (``benchmarks/assorted_race.py`` times both).
Results are split back per request; each run's JSON is cached by (landscape, start, steps,
racer), so a slider that changes one racer recomputes that racer only, and whole answers are
cached by request.

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

import orjson
import torch

from .. import lab, optim
from .content import resolve_landscape
from .schedule_settings import ScheduleSetting, as_dict, lr_factors
from .schedule_settings import build as build_schedule


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


def compute_runs(keys: list[RunKey]) -> dict[RunKey, bytes | Exception]:
    """Every run, in one race per (steps, dimension) on all of its landscapes at once
    (``lab.race_assorted``): one entry per (optimizer key, schedule), with per-run
    hyperparameters as lists paired one to one with the entry's own starts, and each entry under
    its own schedule. Each step then updates every entry once and evaluates each landscape once,
    whatever the number of landscapes. Should the lab refuse such a race, its landscapes race
    apart, so that one bad landscape or entry fails its own runs only."""
    results: dict[RunKey, bytes | Exception] = {}
    surfaces: dict[str, Any] = {}
    groups: dict[tuple[int, int], list[RunKey]] = defaultdict(list)
    for key in dict.fromkeys(keys):
        if key.landscape not in surfaces:
            try:
                surfaces[key.landscape] = resolve_landscape(key.landscape)
            except ValueError as error:
                results[key] = error
                continue
        surface = surfaces[key.landscape]
        groups[(key.steps, surface.dim)].append(key)
    for (steps, _), members in groups.items():
        texts = list(dict.fromkeys(key.landscape for key in members))
        by_entry = _by_entry(members)
        ordered = [key for runs in by_entry.values() for key in runs]
        try:
            shares = lab.race_assorted(
                [surfaces[text] for text in texts],
                [_entry(optimizer, runs) for (optimizer, _), runs in by_entry.items()],
                [texts.index(key.landscape) for key in ordered],
                steps=steps,
                record="path",
                schedule=_schedules(by_entry),
            )
        except (ValueError, TypeError):
            for text in texts:
                results.update(
                    _compute_on(surfaces[text], steps, [k for k in members if k.landscape == text])
                )
            continue
        for text, share in zip(texts, shares, strict=True):
            rows = _Rows(share)
            for run, key in enumerate(k for k in ordered if k.landscape == text):
                results[key] = rows.run(run, key.racer)
    return results


def _by_entry(members: list[RunKey]) -> dict[tuple[str, ScheduleSetting | None], list[RunKey]]:
    by_entry: dict[tuple[str, ScheduleSetting | None], list[RunKey]] = defaultdict(list)
    for key in members:
        by_entry[(key.racer.key, key.racer.schedule)].append(key)
    return by_entry


def _schedules(by_entry: dict[tuple[str, ScheduleSetting | None], list[RunKey]]) -> list:
    return [None if schedule is None else build_schedule(schedule) for _, schedule in by_entry]


def _compute_on(surface, steps: int, members: list[RunKey]) -> dict[RunKey, bytes | Exception]:
    """The runs of one landscape in one ``lab.race``; when the lab refuses it, one race per
    entry, so that one entry's error stays with its own runs."""
    results: dict[RunKey, bytes | Exception] = {}
    by_entry = _by_entry(members)
    try:
        result = lab.race(
            surface,
            [_entry(optimizer, runs) for (optimizer, _), runs in by_entry.items()],
            steps=steps,
            record="path",
            schedule=_schedules(by_entry),
        )
    except (ValueError, TypeError) as error:
        if len(by_entry) == 1:
            return dict.fromkeys(members, error)
        for runs in by_entry.values():
            results.update(_compute_on(surface, steps, runs))
        return results
    rows = _Rows(result)
    ordered = [key for runs in by_entry.values() for key in runs]
    for run, key in enumerate(ordered):
        results[key] = rows.run(run, key.racer)
    return results


def run_batch(requests: list[RaceRequest]) -> list[dict[str, Any] | Exception]:
    """Answer many requests afresh (no cache), decoded: the reference the service is tested on."""
    answers = RaceService(cache_size=0, run_cache_size=0).answer_batch(requests)
    return [a if isinstance(a, Exception) else orjson.loads(a) for a in answers]


def _entry(key: str, members: list[RunKey]) -> tuple[str, dict[str, Any], list[list[float]]]:
    """The lab entry of every run of optimizer ``key``: (key, hyperparameters, its own starts)."""
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
    return key, columns, [list(member.start) for member in members]


class _Rows:
    """A race result's runs as JSON bytes, one run at a time.

    Paths and losses go out as float32 arrays through orjson, which writes each number's
    shortest float32 repr (0.45, not 0.44999998807907104) and null for NaN and infinities: the
    browser gets the lab's values exactly, in about a third of the characters of a float64 repr,
    some 30 times faster than ``json.dumps`` of Python lists (measured on a batch of 200 answers).
    """

    def __init__(self, result) -> None:
        self.result = result
        # (R, T+1, D) and (R, T+1): each run's rows contiguous, as orjson needs them.
        self.path = result.path.to(torch.float32).transpose(0, 1).contiguous().numpy()
        self.loss = result.loss.to(torch.float32).t().contiguous().numpy()
        self.final_loss = result.final_loss.tolist()
        self.diverged_at = result.diverged_at.tolist()

    def run(self, run: int, racer: Racer) -> bytes:
        info = self.result.runs[run]
        numeric = {
            name: value
            for name, value in info.hyperparameters.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        scheduled = {}
        if racer.schedule is not None:
            scheduled = {
                "schedule": as_dict(racer.schedule),
                "lr_factor": lr_factors(racer.schedule, self.result.steps),
            }
        answer = {
            "optimizer": info.optimizer,
            # Per-run values come back as float32 (0.45 -> 0.4499999881): report what was asked.
            "hyperparameters": {**numeric, **dict(racer.hyperparameters)},
            "path": self.path[run],
            "loss": self.loss[run],
            "final_loss": self.final_loss[run],
            "diverged": self.diverged_at[run] >= 0,
            "diverged_at": self.diverged_at[run],
            **scheduled,
        }
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def landscape_dict(surface, text: str) -> dict[str, Any]:
    """A landscape as the API shows it, under the name or expression the request gave."""
    minimum = surface.global_minimum
    return {
        "name": text,
        "title": surface.title,
        "latex": surface.latex,
        "dim": surface.dim,
        "domain": [list(pair) for pair in surface.domain],
        "minimum": None if minimum is None else minimum.value,
    }


#: How long a batch waits at most for a burst of requests to arrive, and the pause between looks.
GATHER_WINDOW = 0.02
GATHER_PAUSE = 0.001


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
                known[key] = run
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
            head = json.dumps(landscape_dict(surface, request.landscape)).encode()
            answer = b'{"landscape":%s,"steps":%d,"runs":[%s]}' % (
                head,
                request.steps,
                b",".join(parts),
            )
            self._remember(self._cache, request, answer, self.cache_size)
            answers.append(answer)
        return answers

    async def _let_the_burst_arrive(self) -> None:
        """Wait while requests keep arriving, a millisecond at a time, for at most
        ``GATHER_WINDOW`` seconds.

        Requests come in bursts: when a batch's answers go out, every waiting client sends its
        next request within a few milliseconds. Started on the first of them, a batch would hold
        only the few parsed by then, and the rest would wait a whole batch for the next: a batch
        costs about the same whatever it holds, so that wastes most of a batch. A lone request
        waits one millisecond.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_WINDOW
        seen = -1
        while len(self._pending) != seen and loop.time() < deadline:
            seen = len(self._pending)
            await asyncio.sleep(GATHER_PAUSE)

    async def _drain(self) -> None:
        while self._pending:
            await self._let_the_burst_arrive()
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
