"""The FastAPI application factory: ``create_app(Settings(...))``.

It loads and validates the content (a broken file raises :class:`ContentError` before the server
listens), opens the database, and wires the race service, the clip renderer, the JSON API, the
pages and the static files. A learner is an anonymous id in the ``learner`` cookie, set on the
first response.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser

from . import advisor, api, pages
from .clips import ClipRenderer, lesson_request
from .content import default_content_dir, load_course
from .races import RaceService
from .store import Store, is_learner_id, new_learner_id

COOKIE = "learner"
COOKIE_MAX_AGE = 365 * 24 * 3600
MAX_BODY_BYTES = 64 * 1024
STATIC = Path(__file__).parent / "static"


@dataclass
class Settings:
    """Where the course keeps things. ``database``: a SQLAlchemy URL or an SQLite file path."""

    database: str = "out/course.sqlite3"
    content_dir: Path = field(default_factory=default_content_dir)
    cache_dir: Path = Path("out/course-cache")
    #: Render every lesson's clip in a background thread at start-up (else on first request).
    render_clips_at_startup: bool = False
    #: Compute every lesson's widget race at start-up, so the first visitor gets a cached answer.
    warm_races: bool = False
    #: The advisor's comparisons: configurations tuned per optimizer, and seeds of the best.
    advisor_budget: int = 4
    advisor_seeds: int = 2


class BodySizeLimit:
    """Answer 413 to a request body over ``limit`` bytes, declared or streamed (pure ASGI)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(send)

    async def _refuse(self, send) -> None:
        response = JSONResponse(
            {"detail": f"the request body is over {self.limit} bytes"}, status_code=413
        )
        await response({"type": "http"}, None, send)


class LearnerCookie:
    """The learner's anonymous id in ``request.state.learner``: from the ``learner`` cookie, or a
    new id sent back as that cookie (HttpOnly, SameSite=Lax) on the first response.

    Pure ASGI: Starlette's ``@app.middleware("http")`` runs every request through an extra task
    and a response stream, about a millisecond a request, which was most of what 200 concurrent
    race requests cost the server beyond the races themselves."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cookies = cookie_parser(dict(scope["headers"]).get(b"cookie", b"").decode("latin-1"))
        learner = cookies.get(COOKIE)
        if is_learner_id(learner):
            scope.setdefault("state", {})["learner"] = learner
            return await self.app(scope, receive, send)
        learner = new_learner_id()
        scope.setdefault("state", {})["learner"] = learner
        carrier = Response()
        carrier.set_cookie(
            COOKIE, learner, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax"
        )  # fmt: skip
        cookie = next(header for header in carrier.raw_headers if header[0] == b"set-cookie")

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), cookie]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class _BodyTooLarge(Exception):
    pass


def _message(errors) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    course = load_course(settings.content_dir)
    store = Store(settings.database)
    races = RaceService()
    cache_dir = Path(settings.cache_dir)
    clips = ClipRenderer(cache_dir / "clips", races)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if settings.warm_races or settings.render_clips_at_startup:
            lessons = [lesson for lesson in course.lessons if lesson.front.race is not None]

            def warm() -> None:
                for lesson in lessons:
                    if stop.is_set():
                        return
                    with contextlib.suppress(ValueError):
                        if settings.render_clips_at_startup:
                            clips.clip(lesson)
                        else:
                            races.race_now(lesson_request(lesson))

            asyncio.get_running_loop().run_in_executor(None, warm)
        yield
        stop.set()
        app.state.advisor.shutdown()
        store.close()

    app = FastAPI(title="descentlab course", lifespan=lifespan, docs_url="/api/docs")
    app.state.settings = settings
    app.state.course = course
    app.state.store = store
    app.state.csrf_secret = store.secret("csrf")
    app.state.races = races
    app.state.clips = clips
    app.state.advisor = advisor.Advisor(settings.advisor_budget, settings.advisor_seeds)

    @app.exception_handler(RequestValidationError)
    async def unprocessable(request: Request, error: RequestValidationError):
        errors = error.errors()
        safe = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse({"detail": safe, "message": _message(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if request.url.path.startswith("/api/") or not isinstance(error.detail, str):
            message = error.detail if isinstance(error.detail, str) else "error"
            return JSONResponse(
                {"detail": error.detail, "message": message}, status_code=error.status_code
            )
        return pages.error_page(request, error.status_code, error.detail)

    app.include_router(api.build_router())
    app.include_router(pages.build_router())
    app.include_router(advisor.build_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(LearnerCookie)
    app.add_middleware(BodySizeLimit)
    return app
