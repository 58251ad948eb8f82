"""Background work off the caller's path: a durable job queue in the app's own database.

Why a table and not huey, RQ, dramatiq or procrastinate: a job must never be lost between storing
the row that needs it and queueing it, so it is queued in the *same transaction* (a recording
stored with its copy job, a request with its staff alerts). Only a queue in the app's database can
do that, on both the embedded default (SQLite) and PostgreSQL; RQ and dramatiq need Redis or
RabbitMQ, procrastinate and pgqueuer are PostgreSQL-only, huey's SQLite and SQL stores are
separate connections. The shape is procrastinate's (docs/background.md):
- A job's status is a `JobStatus`, and it moves only along `TRANSITIONS`, each move a conditional
  UPDATE that names the status (and attempt) it leaves: an illegal move raises
  `IllegalTransition`; a move from a state the job is no longer in changes nothing.
- Each kind of job is declared once, as a `JobKind` (handler, key, retries, at most once or not,
  time limit, how late it may still run) beside the code it runs, and call sites queue it with
  `KIND.enqueue(**fields)`, never spelling a kind or key. The composition root (`create_app`)
  hands every kind to `init_app`; nothing registers itself by being imported.

How it holds up:
- Claim: one short transaction takes the oldest due job (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
  SQLite has one writer at a time) and leases it for JOB_LEASE_SECONDS, which also caps every
  kind's time limit. No database connection is held while the job talks to Twilio or SMTP.
- A process killed mid-job (kill -9, a crashed dyno) leaves its lease to expire; the job is then
  taken again. Jobs whose effect a person would notice twice (an SMS, a phone call) are `once`:
  such a job found abandoned mid-attempt is not retried but marked failed with the reason,
  because the message may already have gone (at most once); everything else is at least once
  and written to be idempotent.
- Time limit: each attempt runs in a thread of its own; one still running at its kind's
  `time_limit` is abandoned (left to end on its own, its result ignored) and the job is retried or
  failed by its rules, so a call that never returns costs one thread, never a worker slot.
- Not done late: a kind with `stale_after` (a staff call-back, a text to a family) found due longer
  ago than that is dropped, and its `on_stale` says so where staff look.
- Failures are retried with exponential back-off (JOB_BACKOFF_SECONDS, doubled, capped at
  JOB_BACKOFF_MAX_SECONDS so work resumes within minutes of an outage ending) up to the kind's
  `max_attempts`; each failure is one log line with the reason. `Permanent` ends a job at once.
- Concurrency is bounded: JOB_CONCURRENCY threads per worker process, nothing per request.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy import CursorResult, DateTime, Index, String, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.db import Model, db, utcnow
from ivr.edge import logmask
from ivr.settings import settings

log = logging.getLogger("ivr.background.jobs")

EXTENSION = "ivr.background.jobs"


class JobStatus(enum.StrEnum):
    pending = "pending"  # waiting for its run_at
    running = "running"  # leased by a worker until locked_until
    done = "done"
    failed = "failed"  # given up: the reason is in last_error


# Every legal move. running → running is a claim of a job whose lease expired (its worker died);
# failed → pending only by hand (`ivr requests copy --retry-failed`), never by a loop.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.pending: frozenset({JobStatus.running}),
    JobStatus.running: frozenset(
        {JobStatus.running, JobStatus.done, JobStatus.failed, JobStatus.pending}
    ),
    JobStatus.failed: frozenset({JobStatus.pending}),
    JobStatus.done: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move that `TRANSITIONS` does not allow (a bug in the caller, not a race)."""


class _Status(sa.types.TypeDecorator):
    """A JobStatus in a VARCHAR(16) column (the table predates the enum; no migration needed)."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else JobStatus(value).value

    def process_result_value(self, value: Any, dialect: Any) -> JobStatus | None:
        return None if value is None else JobStatus(value)


class Job(Model):
    """One piece of background work. `key` makes queueing idempotent: one job per thing."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[JobStatus] = mapped_column(_Status(), default=JobStatus.pending)
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
class JobKind:
    """One kind of job, declared once beside its handler.

    `key` builds the job's unique key from the fields given to `enqueue` (so the same thing is
    queued once however often it is asked for); `payload` names the fields the handler gets.
    `once`: at most once (a person would notice it twice), so an attempt cut short is not retried.
    `time_limit`: seconds an attempt may run before it is abandoned. `stale_after`: seconds after
    queueing past which the job is dropped rather than done late; `on_stale(payload)` says so.
    """

    name: str
    handler: Callable[[dict[str, Any]], None]
    key: Callable[..., str]
    payload: tuple[str, ...] = ()
    max_attempts: int = 8
    once: bool = False
    time_limit: float = 60.0
    stale_after: float | None = None
    on_stale: Callable[[dict[str, Any]], None] | None = None

    def enqueue(self, *, delay: float = 0, session: Session | None = None, **fields: Any) -> None:
        """Queue this job in the current transaction (committed with it, or not at all).

        A job with the same key already queued, done or failed is left as it is, so callers may
        queue freely on every duplicate webhook.
        """
        payload = {name: fields[name] for name in self.payload}
        enqueue(self, self.key(**fields), payload, delay=delay, session=session)

    def job_key(self, **fields: Any) -> str:
        return self.key(**fields)[:255]


def enqueue(
    kind: JobKind,
    key: str,
    payload: Mapping[str, Any],
    *,
    delay: float = 0,
    session: Session | None = None,
) -> None:
    session = session or db.session
    now = utcnow()
    values = dict(
        kind=kind.name,
        key=key[:255],
        payload=json.dumps(dict(payload), sort_keys=True),
        status=JobStatus.pending.value,
        attempts=0,
        max_attempts=kind.max_attempts,
        run_at=now + dt.timedelta(seconds=delay),
        created_at=now,
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"]))


@dataclass
class Registry:
    """The declared kinds and the worker's chores, handed over by the composition root."""

    kinds: dict[str, JobKind]
    every_minute: tuple[Callable[[], Any], ...] = ()  # housekeeping, in an app context
    at_start: tuple[Callable[[Flask], Any], ...] = ()  # when a worker starts in a process

    @classmethod
    def of(
        cls,
        kinds: Iterable[JobKind],
        every_minute: Iterable[Callable[[], Any]] = (),
        at_start: Iterable[Callable[[Flask], Any]] = (),
    ) -> Registry:
        table: dict[str, JobKind] = {}
        for kind in kinds:
            if kind.name in table:
                raise ValueError(f"job kind {kind.name!r} is declared twice")
            table[kind.name] = kind
        return cls(table, tuple(every_minute), tuple(at_start))


def init_app(
    app: Flask,
    kinds: Iterable[JobKind],
    *,
    every_minute: Iterable[Callable[[], Any]] = (),
    at_start: Iterable[Callable[[Flask], Any]] = (),
) -> Registry:
    """Register the app's job kinds (and the worker's chores) explicitly, once."""
    registry = Registry.of(kinds, every_minute, at_start)
    app.extensions[EXTENSION] = registry
    return registry


def registry(app: Flask | None = None) -> Registry:
    return (app or current_app).extensions[EXTENSION]


def backoff(attempts: int, first: float = 15, cap: float = 120) -> dt.timedelta:
    """first, 2×, 4× … up to `cap` seconds, with jitter so retries do not march together."""
    delay = first * 2 ** max(0, attempts - 1) * random.uniform(0.8, 1.2)
    return dt.timedelta(seconds=min(delay, cap))


@dataclass(frozen=True)
class Claimed:
    """A job this worker holds: `attempt` is also the token its every later move is checked by."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    abandoned: bool  # it was running when its lease expired: its worker died mid-attempt
    created_at: dt.datetime = field(compare=False)


def move(
    job_id: int,
    source: JobStatus,
    target: JobStatus,
    *,
    attempt: int | None = None,
    last_error: str | None = None,
    run_at: dt.datetime | None = None,
    session: Session | None = None,
) -> bool:
    """Move one job from `source` to `target` (at `attempt`, when given); commit.

    Raises IllegalTransition for a move `TRANSITIONS` forbids. Returns False when the job was not
    in `source` (or at `attempt`) any more: an attempt given up at its time limit that returns
    late, for instance, changes nothing.
    """
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(f"job {job_id}: {source} → {target} is not allowed")
    session = session or db.session
    # Twilio's error texts quote the number they refused: never kept in a job row (issue 22).
    last_error = logmask.mask(last_error) if last_error else last_error
    values: dict[str, Any] = {"status": target.value, "last_error": last_error}
    if target in (JobStatus.done, JobStatus.failed):
        values.update(finished_at=utcnow(), locked_until=None)
    elif target is JobStatus.pending:
        values.update(run_at=run_at or utcnow(), locked_until=None, finished_at=None)
        if source is JobStatus.failed:
            values.update(attempts=0)
    else:
        raise IllegalTransition(f"job {job_id}: {target} is entered only by claim()")
    condition = [Job.id == job_id, Job.status == source.value]
    if attempt is not None:
        condition.append(Job.attempts == attempt)
    result = session.execute(
        sa.update(Job)
        .where(*condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return cast(CursorResult, result).rowcount == 1


def claim(lease: float) -> Claimed | None:
    """Take the oldest due job for this process (pending → running, or running → running when
    its lease expired). Commits at once, so no transaction stays open."""
    session = db.session
    now = utcnow()
    due = sa.or_(
        sa.and_(Job.status == JobStatus.pending.value, Job.run_at <= now),
        sa.and_(Job.status == JobStatus.running.value, Job.locked_until < now),
    )
    for _ in range(5):
        row = session.execute(
            sa.select(
                Job.id,
                Job.kind,
                Job.payload,
                Job.status,
                Job.attempts,
                Job.max_attempts,
                Job.created_at,
            )
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
                status=JobStatus.running.value,
                attempts=row.attempts + 1,
                locked_until=now + dt.timedelta(seconds=lease),
            )
            .execution_options(synchronize_session=False)
        )
        taken = cast(CursorResult, result).rowcount
        session.commit()
        if taken:
            created = row.created_at
            if created.tzinfo is None:  # SQLite gives naive datetimes back
                created = created.replace(tzinfo=dt.UTC)
            return Claimed(
                row.id,
                row.kind,
                json.loads(row.payload or "{}"),
                row.attempts + 1,
                row.max_attempts,
                row.status == JobStatus.running,
                created,
            )
    return None


def reason(exc: BaseException) -> str:
    """One line that says why: the exception's type and first line, without a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class TimeLimitExceeded(Exception):
    """The attempt was still running at its kind's time limit: abandoned."""


# Attempt threads given up at their time limit and still running (each blocked in some call).
ABANDONED: set[threading.Thread] = set()
_abandoned_lock = threading.Lock()


def abandoned_alive() -> int:
    with _abandoned_lock:
        for thread in [t for t in ABANDONED if not t.is_alive()]:
            ABANDONED.discard(thread)
        return len(ABANDONED)


def time_limit(app: Flask, kind: JobKind) -> float:
    """The kind's time limit, never past the lease: a worker gives an attempt up before another
    worker could take the job again (the default lease, 120 s, is above every kind's limit)."""
    return min(kind.time_limit, settings(app).job_lease_seconds)


def attempt(app: Flask, kind: JobKind, job: Claimed) -> BaseException | None:
    """Run one attempt in a thread of its own and wait at most its time limit. Returns None on
    success, or the exception (TimeLimitExceeded when the thread was abandoned)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with app.app_context():
                kind.handler(job.payload)
            outcome.append(None)
        except BaseException as exc:  # handed to the worker thread, which records it
            outcome.append(exc)

    thread = threading.Thread(target=run, name=f"ivr-job-{job.id}-{job.attempt}", daemon=True)
    thread.start()
    limit = time_limit(app, kind)
    thread.join(limit)
    if thread.is_alive() or not outcome:
        with _abandoned_lock:
            ABANDONED.add(thread)
        return TimeLimitExceeded(f"still running after its time limit of {limit:g} s")
    return outcome[0]


def execute(app: Flask, job: Claimed) -> None:
    """Run a claimed job by its kind's rules and record how it ended (in an app context)."""
    kind = registry(app).kinds.get(job.kind)
    if kind is None:
        log.error("job %s: no handler for kind %r; failed", job.id, job.kind)
        fail(job, f"no handler for {job.kind}")
        return
    if job.abandoned and kind.once:
        why = (
            "a process died during an attempt; not retried, as the person may already have "
            "received it"
        )
        log.error("job %s %s %s: %s", job.id, job.kind, job.payload, why)
        fail(job, why)
        return
    late = (utcnow() - job.created_at).total_seconds()
    if kind.stale_after is not None and late > kind.stale_after:
        why = f"not started within {kind.stale_after:g} s of being queued: dropped, not done late"
        log.error("job %s %s %s: %s (%d s late)", job.id, job.kind, job.payload, why, late)
        if kind.on_stale is not None:
            kind.on_stale(job.payload)
        fail(job, why)
        return
    error = attempt(app, kind, job)
    if error is None:
        move(job.id, JobStatus.running, JobStatus.done, attempt=job.attempt)
        return
    if not isinstance(error, Exception):
        # SystemExit, KeyboardInterrupt: the process is going down mid-attempt. Nothing is
        # recorded; the lease runs out and the job is taken again by its rules (`once` or not).
        raise error
    why = reason(error)
    if isinstance(error, TimeLimitExceeded):
        why += f" (abandoned; {abandoned_alive()} abandoned attempt(s) still running)"
        if kind.once:
            why += "; not retried, as the person may already have received it"
    final = (
        isinstance(error, Permanent)
        or job.attempt >= job.max_attempts
        or (isinstance(error, TimeLimitExceeded) and kind.once)
    )
    if final:
        log.error(
            "job %s %s %s failed for good after %d attempt(s): %s",
            job.id,
            job.kind,
            job.payload,
            job.attempt,
            why,
        )
        fail(job, why)
        return
    config = settings(app)
    wait = backoff(job.attempt, config.job_backoff_seconds, config.job_backoff_max_seconds)
    log.warning(
        "job %s %s %s attempt %d of %d failed: %s; next try in %d s",
        job.id,
        job.kind,
        job.payload,
        job.attempt,
        job.max_attempts,
        why,
        wait.total_seconds(),
    )
    move(
        job.id,
        JobStatus.running,
        JobStatus.pending,
        attempt=job.attempt,
        last_error=why,
        run_at=utcnow() + wait,
    )


def fail(job: Claimed, why: str) -> None:
    move(job.id, JobStatus.running, JobStatus.failed, attempt=job.attempt, last_error=why[:1000])


def run_one(lease: float) -> bool:
    """Claim and run one due job; return False when none was due. Needs an app context."""
    job = claim(lease)
    if job is None:
        return False
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db.session.commit()  # hold no connection while the attempt runs
    execute(app, job)
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
            thread = threading.Thread(target=self._loop, name=f"ivr-worker-{number}", daemon=True)
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
