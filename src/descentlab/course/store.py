"""Learners' progress in a database (SQLAlchemy 2): an SQLite file by default, PostgreSQL by URL.

A learner is an anonymous id kept in a cookie; nothing else identifies them. Every query takes that
id, so a learner sees and resets only their own rows. An attempt is committed before its score is
returned, so a score a learner has seen is never lost.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

LEARNER_ID_LENGTH = 32


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Learner(Base):
    __tablename__ = "learners"
    id: Mapped[str] = mapped_column(String(LEARNER_ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class LessonDone(Base):
    __tablename__ = "lessons_done"
    __table_args__ = (UniqueConstraint("learner_id", "lesson"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[str] = mapped_column(
        ForeignKey("learners.id", ondelete="CASCADE"), index=True
    )
    lesson: Mapped[str] = mapped_column(String(100))
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class QuizAttempt(Base):
    __tablename__ = "quiz_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[str] = mapped_column(
        ForeignKey("learners.id", ondelete="CASCADE"), index=True
    )
    quiz: Mapped[str] = mapped_column(String(100))
    score: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    answers: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ServerSecret(Base):
    """A random key the server keeps across restarts (and shares between processes on one
    database), e.g. the key that signs each learner's form token."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class QuizRecord:
    quiz: str
    attempts: int
    best: int
    total: int
    last: int


@dataclass(frozen=True)
class Progress:
    lessons_done: list[str]
    quizzes: dict[str, QuizRecord]


def new_learner_id() -> str:
    return uuid.uuid4().hex


def is_learner_id(text: str | None) -> bool:
    if not text or len(text) != LEARNER_ID_LENGTH:
        return False
    try:
        return uuid.UUID(hex=text).hex == text
    except ValueError:
        return False


def database_url(value: str | Path) -> str:
    """A SQLAlchemy URL, or a file path taken as an SQLite file."""
    text = str(value)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class Store:
    """The course's database: create with a URL; every method runs in its own transaction."""

    def __init__(self, url: str | Path) -> None:
        self.url = database_url(url)
        options = {}
        if self.url.startswith("sqlite"):
            # One file shared by the server's threads; SQLite serializes the writes.
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(self.url, pool_pre_ping=True, **options)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def secret(self, name: str) -> str:
        """The server's secret ``name`` (64 hex digits), made on first use and kept."""
        with self._session() as session:
            row = session.get(ServerSecret, name)
            if row is not None:
                return row.value
        try:
            with self._session.begin() as session:
                session.add(ServerSecret(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        with self._session() as session:
            return session.get(ServerSecret, name).value

    def _ensure_learner(self, session: Session, learner_id: str) -> None:
        if session.get(Learner, learner_id) is None:
            session.add(Learner(id=learner_id))
            session.flush()

    def mark_lesson_done(self, learner_id: str, lesson: str) -> None:
        with self._session.begin() as session:
            self._ensure_learner(session, learner_id)
            exists = session.scalar(
                select(LessonDone.id).where(
                    LessonDone.learner_id == learner_id, LessonDone.lesson == lesson
                )
            )
            if exists is None:
                session.add(LessonDone(learner_id=learner_id, lesson=lesson))

    def record_attempt(
        self, learner_id: str, quiz: str, score: int, total: int, answers: dict
    ) -> int:
        """Store one quiz attempt (committed on return); its id."""
        with self._session.begin() as session:
            self._ensure_learner(session, learner_id)
            attempt = QuizAttempt(
                learner_id=learner_id, quiz=quiz, score=score, total=total, answers=answers
            )
            session.add(attempt)
            session.flush()
            return attempt.id

    def progress(self, learner_id: str) -> Progress:
        with self._session() as session:
            done = session.scalars(
                select(LessonDone.lesson)
                .where(LessonDone.learner_id == learner_id)
                .order_by(LessonDone.done_at, LessonDone.id)
            ).all()
            rows = session.execute(
                select(
                    QuizAttempt.quiz,
                    func.count(QuizAttempt.id),
                    func.max(QuizAttempt.score),
                    func.max(QuizAttempt.total),
                    func.max(QuizAttempt.id),
                )
                .where(QuizAttempt.learner_id == learner_id)
                .group_by(QuizAttempt.quiz)
            ).all()
            quizzes = {}
            for quiz, attempts, best, total, last_id in rows:
                last = session.get(QuizAttempt, last_id)
                quizzes[quiz] = QuizRecord(quiz, attempts, best, total, last.score)
        return Progress(list(done), quizzes)

    def reset(self, learner_id: str) -> None:
        """Delete this learner's progress and attempts (and nobody else's)."""
        with self._session.begin() as session:
            session.execute(delete(QuizAttempt).where(QuizAttempt.learner_id == learner_id))
            session.execute(delete(LessonDone).where(LessonDone.learner_id == learner_id))
            session.execute(delete(Learner).where(Learner.id == learner_id))
