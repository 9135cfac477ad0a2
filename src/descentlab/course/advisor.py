"""The advisor: "which optimizer for my task?" as a small arena comparison run in the background.

A learner picks a built-in task and a few optimizers; :func:`descentlab.arena.compare` tunes each
with the same small budget and recommends one. Comparisons take seconds to minutes, so they run one
at a time in a worker thread; the page polls the job for its progress and, at the end, the
recommendation. The queue is bounded: past :data:`MAX_WAITING` jobs a new one is refused (the
server stays responsive for everyone else).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import optim

MAX_WAITING = 4
KEEP_FINISHED = 50
MAX_OPTIMIZERS = 4


class AdvisorBusy(RuntimeError):
    """Too many comparisons are waiting."""


def arena_module():
    """``descentlab.arena``, or None where its extra (scikit-learn ...) is not installed."""
    try:
        from .. import arena
    except ImportError:
        return None
    return arena


@dataclass
class Job:
    id: str
    task: str
    optimizers: list[str]
    status: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    error: str = ""
    notices: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "task": self.task, "optimizers": self.optimizers,
            "status": self.status, "done": self.done, "total": self.total, "error": self.error,
            "notices": self.notices, "result": self.result,
        }  # fmt: skip


def _result(comparison) -> dict[str, Any]:
    recommendation = comparison.recommendation
    return {
        "task_title": comparison.task_title,
        "metric": comparison.metric,
        "recommendation": {
            "text": recommendation.text,
            "best": recommendation.best,
            "runner_up": recommendation.runner_up,
            "lr_range": list(recommendation.lr_range) if recommendation.lr_range else None,
            "failures": [list(failure) for failure in recommendation.failures],
        },
        "summary": [
            {
                name: row.get(name)
                for name in (
                    "optimizer",
                    "title",
                    "hyperparameters",
                    "test_metric",
                    "test_metric_std",
                    "train_loss",
                    "status",
                    "reason",
                )  # fmt: skip
            }
            for row in comparison.summary
        ],
    }


class Advisor:
    """Comparison jobs by id, run one at a time in a background thread."""

    def __init__(self, budget: int = 4, seeds: int = 2) -> None:
        self.budget, self.seeds = budget, seeds
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advisor")

    def submit(self, task: str, optimizers: list[str]) -> Job:
        with self._lock:
            waiting = sum(job.status in ("queued", "running") for job in self._jobs.values())
            if waiting >= MAX_WAITING:
                raise AdvisorBusy(
                    f"{waiting} comparisons are already running or waiting; try again soon"
                )
            job = Job(uuid.uuid4().hex, task, list(optimizers))
            self._jobs[job.id] = job
            finished = [key for key, old in self._jobs.items() if old.status in ("done", "failed")]
            for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[key]
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job) -> None:
        arena = arena_module()
        job.status = "running"
        try:
            if arena is None:
                raise RuntimeError("the arena is not installed: pip install 'descentlab[arena]'")

            def progress(done: int, total: int) -> None:
                job.done, job.total = done, total

            comparison = arena.compare(
                job.task, optimizers=job.optimizers, budget=self.budget, seeds=self.seeds,
                progress=progress, notice=job.notices.append,
            )  # fmt: skip
            job.result = _result(comparison)
            job.status = "done"
        except Exception as error:  # reported to the page, never a traceback at the learner
            job.error = str(error).splitlines()[0] if str(error) else type(error).__name__
            job.status = "failed"

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------- routes


class AdvisorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=60)
    optimizers: list[str] = Field(min_length=1, max_length=MAX_OPTIMIZERS)

    @field_validator("optimizers")
    @classmethod
    def _known(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if key not in optim.names():
                raise ValueError(f"unknown optimizer {key!r}")
        if len(set(keys)) != len(keys):
            raise ValueError("an optimizer is listed twice")
        return keys


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/advisor", response_class=HTMLResponse)
    def advisor_page(request: Request):
        from .pages import render

        arena = arena_module()
        tasks = [arena.tasks.get(name) for name in arena.tasks.names()] if arena else []
        keys = [(key, optim.spec(key).title) for key in optim.names()]
        return render(
            request, "advisor.html", tasks=tasks, optimizers=keys, chosen={"adam", "sgd", "momentum"},
            max_optimizers=MAX_OPTIMIZERS, budget=request.app.state.advisor.budget,
            seeds=request.app.state.advisor.seeds,
        )  # fmt: skip

    @router.post("/api/advisor", status_code=202)
    def start(body: AdvisorIn, request: Request) -> dict[str, Any]:
        arena = arena_module()
        if arena is None:
            raise HTTPException(503, "the arena is not installed on this server")
        if body.task not in arena.tasks.names():
            raise HTTPException(
                422,
                f"task: unknown task {body.task!r}; choose from {', '.join(arena.tasks.names())}",
            )
        try:
            return request.app.state.advisor.submit(body.task, body.optimizers).as_dict()
        except AdvisorBusy as error:
            raise HTTPException(429, str(error)) from None

    @router.get("/api/advisor/{job_id}")
    def status(job_id: str, request: Request) -> dict[str, Any]:
        job = request.app.state.advisor.get(job_id)
        if job is None:
            raise HTTPException(404, f"no comparison {job_id!r}")
        return job.as_dict()

    return router
