"""Comparisons as Optuna studies: every training run is one trial in an Optuna storage.

The plan of a comparison (each optimizer's tuning points, then its seed runs) is enqueued into a
study once, by whichever process creates the study. Any number of workers (this process, the
processes of ``--workers N``, or the same command started on other machines against one PostgreSQL
URL) then take waiting trials from the storage, which hands each waiting trial to exactly one of
them, train what they took as stacked models, and record each result with ``tell``. Optuna's
heartbeats mark the trials of a worker that died as failed after a grace period, and its
``RetryFailedTrialCallback`` enqueues each of them again: nothing is lost, and nothing that had
finished runs twice.

A seed trial runs the best tuning setting of its optimizer, so it waits until all of that
optimizer's tuning trials are complete; a worker holding one meanwhile takes other trials.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from .. import optim
from . import protocol
from .problem import Problem
from .results import Run
from .train import Settings, train

HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 8
#: A trial whose worker died is enqueued again at most this many times.
MAX_RETRY = 3
optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_name(problem: Problem, plan: dict[str, Any]) -> str:
    """A name that identifies the comparison: the same question reuses (resumes) its study."""
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:12]
    return f"descentlab-{problem.name}-{digest}"


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """An in-memory storage for None, else an RDB storage with heartbeats and retries."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"--storage must be a database URL such as sqlite:///runs.db, got {url!r}")
    # Optuna 4.9 renamed the retry callback; either way a stale trial is enqueued again.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if retry is not None:
                callback = {"heartbeat_stale_trial_callback": retry(max_retry=MAX_RETRY)}
            else:
                old = optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)
                callback = {"failed_trial_callback": old}
            return _first_storage(
                url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS, **callback
            )
    except Exception as error:  # driver and connection errors come in many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConnectionError(f"cannot open the storage {_hide_password(url)}: {first}") from None


#: Attempts at opening a storage whose tables another process is creating at the same moment.
SCHEMA_ATTEMPTS = 5


def _first_storage(url: str, **options: Any) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, tried again while another process creates the same tables.

    Optuna creates its tables (and PostgreSQL their types) on first use; workers started together
    on an empty database race for that, and the losers fail with a duplicate table, type or key.
    Once the winner is done, the tables exist and a new attempt opens them.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, **options)
        except (IntegrityError, ProgrammingError):
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, **options)  # the last attempt's error is the user's


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close an RDB storage's connections now.

    An engine left to the garbage collector keeps its pooled connections open until a collection
    finds it (the storage sits in reference cycles), so a process that compares again and again
    on a server would hold more connections each time; a server refuses clients past its limit.
    """
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _hide_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@")[0]:
        user = rest.split("@")[0].split(":")[0]
        return f"{scheme}://{user}:***@{rest.split('@', 1)[1]}"
    return url


def plan_items(problem: Problem, keys: list[str], budget: int, seeds: int, search: str, seed: int):
    """The comparison's trials in the order they are taken: every tuning point, then the seeds."""
    items = []
    for key in keys:
        configs = (
            protocol.tuning_grid(optim.spec(key), budget) if search == "grid" else [None] * budget
        )
        for index, config in enumerate(configs):
            items.append(
                {"optimizer": key, "phase": "tune", "index": index, "config": config, "seed": seed}
            )
    for key in keys:
        for index in range(seeds):
            items.append(
                {
                    "optimizer": key,
                    "phase": "seed",
                    "index": index,
                    "config": None,
                    "seed": seed + 1 + index,
                }
            )
    return items


def create_or_load(storage, name: str, items: list[dict[str, Any]], seed: int = 0) -> optuna.Study:
    """The study ``name``; the process that creates it enqueues the plan (exactly once)."""
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction="minimize", sampler=sampler
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        for _ in range(600):  # the creator is enqueueing the plan right now
            if study.user_attrs.get("planned"):
                return study
            time.sleep(0.1)
        raise RuntimeError(f"study {name!r} exists but its plan was never written") from None
    for item in items:
        study.enqueue_trial({}, user_attrs={"plan": item})
    study.set_user_attr("planned", len(items))
    return study


class _Heartbeat:
    """Beats for the trials this worker holds, so the storage knows it is alive."""

    def __init__(self, study: optuna.Study) -> None:
        self.storage = study._storage
        self.held: set[int] = set()
        self.adopted: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # Optuna wraps an RDB storage in a cache that beats through to it: ask the storage.
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        self.enabled = interval is not None
        self.thread = threading.Thread(target=self._beat, daemon=True)
        if self.enabled:
            self.thread.start()

    def close(self) -> None:
        """Stop beating, and wait for a beat under way so that none starts after the storage
        is closed (a beat blocked on a dead server is left behind after a few seconds)."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=GRACE_SECONDS)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            with self.lock:
                held = list(self.held)
            for trial_id in held:
                # A beat missed (a dropped connection) is retried at the next interval.
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)

    def hold(self, trial: optuna.Trial) -> None:
        with self.lock:
            self.held.add(trial._trial_id)
        if self.enabled:
            self.storage.record_heartbeat(trial._trial_id)

    def adopt_silent(self, study: optuna.Study) -> None:
        """Beat once for every running trial that is not ours and older than the grace period.

        A worker killed between taking a trial and its first beat leaves a running trial with no
        heartbeat, which Optuna never calls stale. One beat recorded for it here makes it stale one
        grace period later if its worker is dead; a live worker's own beats keep it fresh.
        """
        now = datetime.datetime.now()
        with self.lock:
            mine = set(self.held)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            old = trial.datetime_start is not None and (
                (now - trial.datetime_start).total_seconds() > GRACE_SECONDS
            )
            if old and trial._trial_id not in mine and trial._trial_id not in self.adopted:
                self.adopted.add(trial._trial_id)
                with contextlib.suppress(Exception):  # it finished meanwhile: nothing to do
                    self.storage.record_heartbeat(trial._trial_id)

    def release(self, trial: optuna.Trial) -> None:
        with self.lock:
            self.held.discard(trial._trial_id)


def _take(study: optuna.Study) -> optuna.Trial | None:
    """A waiting trial of the plan, or None when none waits.

    ``ask`` hands out the oldest waiting trial; when another worker took the last one between the
    check and the ask, ``ask`` makes a new empty trial, which is marked pruned and ignored.
    """
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        with warnings.catch_warnings():
            # Optuna's heartbeats are documented with Study.optimize; ask/tell beats through
            # _Heartbeat above, which records them with the storage's own call.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        if "plan" in trial.user_attrs:
            return trial
        study.tell(trial, state=TrialState.PRUNED)
    return None


def finished_runs(study: optuna.Study) -> list[Run]:
    """Every completed trial's run, in plan order."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ordered = sorted(trials, key=lambda t: _plan_order(t.user_attrs["plan"]))
    return [Run(**t.user_attrs["run"]) for t in ordered]


def _plan_order(item: dict[str, Any]) -> tuple[int, str, int]:
    return (0 if item["phase"] == "tune" else 1, item["optimizer"], item["index"])


def _tuning_done(study: optuna.Study, key: str, budget: int) -> list[Run] | None:
    runs = [
        Run(**t.user_attrs["run"])
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs["plan"]["optimizer"] == key and t.user_attrs["plan"]["phase"] == "tune"
    ]
    return runs if len(runs) >= budget else None


def _propose(trial: optuna.Trial, key: str, search: str, config: dict[str, float] | None):
    """The configuration of a tuning trial: the plan's grid point, or one TPE proposes."""
    if search == "grid":
        return dict(config or {})
    proposed: dict[str, float] = {}
    for hyper in protocol.tuned(optim.spec(key)):
        name = f"{key}.{hyper.name}"
        if hyper.scale == "log":
            proposed[hyper.name] = trial.suggest_float(name, hyper.low, hyper.high, log=True)
        elif hyper.scale == "linear":
            proposed[hyper.name] = trial.suggest_float(name, hyper.low, hyper.high)
        elif hyper.scale == "log1m":
            gap = trial.suggest_float(f"{name}.1m", 1 - hyper.high, 1 - hyper.low, log=True)
            proposed[hyper.name] = 1 - gap
        elif hyper.scale == "choice":
            proposed[hyper.name] = trial.suggest_categorical(name, list(hyper.choices))
    return proposed


def work(
    study: optuna.Study,
    problem: Problem,
    settings: Settings,
    budget: int,
    search: str,
    *,
    batch: int,
    on_done: Callable[[int], None] | None = None,
    notice: Callable[[str], None] = print,
) -> None:
    """Take and train waiting trials until the plan is complete (see the module docstring)."""
    heartbeat = _Heartbeat(study)
    held: list[optuna.Trial] = []  # seed trials whose optimizer is still being tuned
    said: set[str] = set()
    try:
        while True:
            if heartbeat.enabled:
                heartbeat.adopt_silent(study)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    fail_stale_trials(study)  # the trials of dead workers, enqueued again
            taken = []
            while len(taken) < batch:
                trial = _take(study)
                if trial is None:
                    break
                heartbeat.hold(trial)
                taken.append(trial)
            ready, held = _ready(study, held + taken, budget)
            for group in _groups(ready):
                _train_group(
                    study, problem, settings, search, budget, group, heartbeat, notice, said
                )
                if on_done:
                    on_done(len(group))
            if not ready:
                if not held and _complete(study):
                    return
                time.sleep(0.3)
    finally:
        heartbeat.close()


def _complete(study: optuna.Study) -> bool:
    planned = study.user_attrs.get("planned", 0)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return len(done) >= planned


def _ready(study, trials, budget):
    ready, waiting = [], []
    tuned: dict[str, bool] = {}
    for trial in trials:
        item = trial.user_attrs["plan"]
        if item["phase"] == "tune":
            ready.append(trial)
            continue
        key = item["optimizer"]
        if key not in tuned:
            tuned[key] = _tuning_done(study, key, budget) is not None
        (ready if tuned[key] else waiting).append(trial)
    return ready, waiting


def _groups(trials):
    groups: dict[tuple[str, str], list] = {}
    for trial in trials:
        item = trial.user_attrs["plan"]
        groups.setdefault((item["optimizer"], item["phase"]), []).append(trial)
    return list(groups.values())


def _train_group(study, problem, settings, search, budget, trials, heartbeat, notice, said):
    first = trials[0].user_attrs["plan"]
    key, phase = first["optimizer"], first["phase"]
    if phase == "tune":
        configs = [_propose(t, key, search, t.user_attrs["plan"]["config"]) for t in trials]
    else:
        chosen = protocol.choose(_tuning_done(study, key, budget) or [])
        config = dict(chosen.hyperparameters) if chosen else {"lr": _default_lr(key)}
        configs = [config for _ in trials]
    seeds = [t.user_attrs["plan"]["seed"] for t in trials]
    try:
        runs, notices = train(
            problem, key, configs, seeds, _settings_for(key, settings), phase=phase
        )
    except Exception:
        for trial in trials:
            heartbeat.release(trial)
            study.tell(trial, state=TrialState.FAIL)
        raise
    for message in notices:
        if message not in said:
            said.add(message)
            notice(message)
    for trial, run in zip(trials, runs, strict=True):
        trial.set_user_attr("run", asdict(run))
        score = run.selection_score
        study.tell(trial, score if math.isfinite(score) else 1e300)
        heartbeat.release(trial)


def _default_lr(key: str) -> float:
    return float(optim.spec(key).hyperparameter("lr").default)


def _settings_for(key: str, settings: Settings) -> Settings:
    """Methods designed for exact gradients (Rprop, Quickprop) train on the whole batch."""
    if optim.spec(key).full_batch and settings.batch_size is not None:
        return Settings(**{**asdict(settings), "batch_size": None})
    return settings
