"""Background work off the caller's path: a durable job queue in the app's own database.

Why a table and not huey, RQ, dramatiq or procrastinate: a job must never be lost between storing
the row that needs it and queueing it, so it is queued in the *same transaction* (a recording
stored with its copy job, a request with its staff alerts). Only a queue in the app's database can
do that, on both the embedded default (SQLite) and PostgreSQL; RQ and dramatiq need Redis or
RabbitMQ, procrastinate is PostgreSQL-only, huey's SQLite and SQL stores are separate connections.

How it holds up:
- Claim: one short transaction takes the oldest due job (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
  SQLite has one writer at a time) and leases it for JOB_LEASE_SECONDS. No database connection is
  held while the job talks to Twilio or SMTP.
- A process killed mid-job (kill -9, a crashed dyno) leaves its lease to expire; the job is then
  taken again. Jobs whose effect a person would notice twice (an SMS, a phone call) are `once`:
  such a job found abandoned mid-attempt is not retried but marked failed with the reason,
  because the message may already have gone (at most once); everything else is at least once
  and written to be idempotent.
- Failures are retried with exponential back-off up to `max_attempts`; each failure is one log
  line with the reason. `Permanent` ends a job at once (an error that will not change).
- Concurrency is bounded: JOB_CONCURRENCY threads per worker process, nothing per request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import CursorResult, DateTime, Index, String, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.db import Model, db, utcnow
from ivr.settings import settings

log = logging.getLogger("ivr.background.jobs")

BACKOFF_SECONDS = 15  # first retry; doubled each time, capped at MAX_BACKOFF
MAX_BACKOFF = dt.timedelta(hours=1)


class Job(Model):
    """One piece of background work. `key` makes queueing idempotent: one job per thing."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    # pending → running → done | failed; running with an expired lease was abandoned.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    run_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload or "{}")


class Permanent(Exception):
    """A failure that retrying will not change (a 404, an opted-out number): fail the job now."""


@dataclass(frozen=True)
class Handler:
    func: Callable[[dict[str, Any]], None]
    once: bool
    max_attempts: int


HANDLERS: dict[str, Handler] = {}


def handler(kind: str, *, once: bool = False, max_attempts: int = 8):
    """Register `func(payload)` to run jobs of `kind` (inside an app context)."""

    def register(func: Callable[[dict[str, Any]], None]):
        HANDLERS[kind] = Handler(func, once, max_attempts)
        return func

    return register


def enqueue(
    kind: str,
    key: str,
    payload: dict[str, Any] | None = None,
    *,
    delay: float = 0,
    session: Session | None = None,
) -> None:
    """Queue a job in the current transaction (committed with it, or not at all).

    A job with the same key already queued, done or failed is left as it is, so callers may
    queue freely on every duplicate webhook.
    """
    session = session or db.session
    values = dict(
        kind=kind,
        key=key[:255],
        payload=json.dumps(payload or {}, sort_keys=True),
        status="pending",
        attempts=0,
        max_attempts=HANDLERS[kind].max_attempts if kind in HANDLERS else 8,
        run_at=utcnow() + dt.timedelta(seconds=delay),
        created_at=utcnow(),
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"]))


def backoff(attempts: int) -> dt.timedelta:
    """15 s, 30 s, 1 min, 2 min … up to an hour, with jitter so retries do not march together."""
    delay = dt.timedelta(seconds=BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    return min(delay, MAX_BACKOFF) * random.uniform(0.8, 1.2)


def claim(lease: float) -> tuple[int, str, dict[str, Any], int, int, bool] | None:
    """Take the oldest due job for this process; return (id, kind, payload, attempt,
    max_attempts, abandoned) or None. Commits at once, so no transaction stays open."""
    session = db.session
    now = utcnow()
    due = sa.or_(
        sa.and_(Job.status == "pending", Job.run_at <= now),
        sa.and_(Job.status == "running", Job.locked_until < now),
    )
    for _ in range(5):
        row = session.execute(
            sa.select(Job.id, Job.kind, Job.payload, Job.status, Job.attempts, Job.max_attempts)
            .where(due)
            .order_by(Job.run_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            session.commit()
            return None
        # Conditional: on SQLite another process may have taken it since the SELECT.
        result = session.execute(
            sa.update(Job)
            .where(Job.id == row.id, Job.status == row.status, Job.attempts == row.attempts)
            .values(
                status="running",
                attempts=row.attempts + 1,
                locked_until=now + dt.timedelta(seconds=lease),
            )
            .execution_options(synchronize_session=False)
        )
        taken = cast(CursorResult, result).rowcount
        session.commit()
        if taken:
            return (
                row.id,
                row.kind,
                json.loads(row.payload or "{}"),
                row.attempts + 1,
                row.max_attempts,
                row.status == "running",
            )
    return None


def _finish(job_id: int, **values: Any) -> None:
    db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def reason(exc: BaseException) -> str:
    """One line that says why: the exception's type and first line, without a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def run_one(lease: float) -> bool:
    """Claim and run one due job; return False when none was due. Needs an app context."""
    claimed = claim(lease)
    if claimed is None:
        return False
    job_id, kind, payload, attempt, limit, abandoned = claimed
    spec = HANDLERS.get(kind)
    if spec is None:
        log.error("job %s: no handler for kind %r; failed", job_id, kind)
        _finish(job_id, status="failed", last_error=f"no handler for {kind}", finished_at=utcnow())
        return True
    if abandoned and spec.once:
        why = (
            "a process died during an attempt; not retried, as the person may already have "
            "received it"
        )
        log.error("job %s %s %s: %s", job_id, kind, payload, why)
        _finish(job_id, status="failed", last_error=why, finished_at=utcnow())
        return True
    try:
        spec.func(payload)
    except Exception as exc:  # every failure is recorded and retried, or given up, in one line
        db.session.rollback()
        why = reason(exc)
        if isinstance(exc, Permanent) or attempt >= limit:
            log.error(
                "job %s %s %s failed for good after %d attempt(s): %s",
                job_id,
                kind,
                payload,
                attempt,
                why,
            )
            _finish(job_id, status="failed", last_error=why, finished_at=utcnow())
        else:
            wait = backoff(attempt)
            log.warning(
                "job %s %s %s attempt %d of %d failed: %s; next try in %d s",
                job_id,
                kind,
                payload,
                attempt,
                limit,
                why,
                wait.total_seconds(),
            )
            _finish(
                job_id, status="pending", last_error=why, run_at=utcnow() + wait, locked_until=None
            )
        return True
    _finish(job_id, status="done", last_error=None, finished_at=utcnow(), locked_until=None)
    return True


def run_pending(app: Flask, limit: int = 1000) -> int:
    """Run every job that is due now, one after another (tests, `ivr worker --once`)."""
    count = 0
    while count < limit:
        with app.app_context():
            if not run_one(settings(app).job_lease_seconds):
                return count
        count += 1
    return count


class Worker:
    """JOB_CONCURRENCY threads that each claim and run jobs, polling every `poll` seconds."""

    def __init__(self, app: Flask, concurrency: int | None = None, poll: float = 1.0) -> None:
        self.app = app
        self.concurrency = concurrency or settings(app).job_concurrency
        self.poll = poll
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"ivr-job-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self, timeout: float | None = None) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def _loop(self) -> None:
        lease = settings(self.app).job_lease_seconds
        while not self.stop.is_set():
            try:
                with self.app.app_context():
                    ran = run_one(lease)
            except sa.exc.SQLAlchemyError as exc:  # the database is down: wait and try again
                log.warning("job queue unreachable: %s", reason(exc))
                ran = False
            except Exception:  # a bug in the loop itself must not end the worker
                log.exception("job loop error")
                ran = False
            if not ran:
                self.stop.wait(self.poll)
