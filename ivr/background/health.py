"""Is background work keeping up? A worker heartbeat, the check, and one log line per incident.

A stalled worker is silent: nothing fails, alerts and call-backs just stop going out (issue 19:
with the worker down, a staff call-back waited two hours and nothing said so). So:

- **Each worker process beats** (`beat`, every HEARTBEAT_SECONDS from a thread of its own): one row
  per process in `worker_heartbeats`, its last `beat_at`. With WORKER_IN_WEB the web processes
  beat. Rows of processes gone for a day are removed.
- **The web processes check** (`check`, on `/healthz/worker` and on every staff page): background
  work is *delayed* when the oldest due job has waited past WORKER_STALL_SECONDS, or when the
  newest heartbeat is older than that (a worker that ran and stopped). No heartbeat ever and
  nothing overdue is not an incident: nothing is delayed, and a test or a fresh set-up is quiet.
  The check runs where staff and the uptime monitor look, not in the worker, because a stalled
  worker cannot report itself.
- **One log line per incident, whatever the number of checks or processes.** The incident is a
  row of `worker_incidents`; its `open_slot` column is 1 while it lasts and NULL after, under a
  unique index, so of several processes seeing the same stall only the one whose INSERT succeeds
  logs "delayed", and only the one whose UPDATE closes it logs "caught up". The row also keeps
  the incident's start, which the dashboard's banner shows ("delayed since 10:42").
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import CursorResult, DateTime, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.background.jobs import Job, JobStatus
from ivr.db import Model, as_utc, db, utcnow
from ivr.settings import settings

log = logging.getLogger("ivr.background.health")
HEARTBEAT_SECONDS = 15
FORGET_HEARTBEATS = dt.timedelta(days=1)


class WorkerHeartbeat(Model):
    """The last moment a worker process (`host:pid`) was alive and polling for jobs."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(120), primary_key=True)
    beat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WorkerIncident(Model):
    """A stretch of time when background work was delayed; `open_slot` is 1 while it lasts."""

    __tablename__ = "worker_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    open_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cause: Mapped[str] = mapped_column(String(200), default="")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def beat(worker: str | None = None) -> None:
    """Record that this worker process is alive (an upsert of its one row), and forget rows of
    processes silent for a day. Commits."""
    now = utcnow()
    name = worker or worker_name()
    session = db.session
    updated = session.execute(
        sa.update(WorkerHeartbeat).where(WorkerHeartbeat.worker == name).values(beat_at=now)
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        session.add(WorkerHeartbeat(worker=name, beat_at=now))
    session.execute(
        sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_HEARTBEATS)
    )
    session.commit()


@dataclass(frozen=True)
class Health:
    """What the check found: `delayed_since` is set while an incident lasts."""

    delayed_since: dt.datetime | None
    oldest_due: dt.datetime | None
    last_beat: dt.datetime | None
    cause: str

    @property
    def delayed(self) -> bool:
        return self.delayed_since is not None


def measure(session: Session, now: dt.datetime) -> Health:
    """Read the queue and the heartbeats (no writes)."""
    limit = dt.timedelta(seconds=settings().worker_stall_seconds)
    waiting_since = sa.case(
        (Job.status == JobStatus.running.value, Job.locked_until), else_=Job.run_at
    )
    due = sa.or_(
        sa.and_(Job.status == JobStatus.pending.value, Job.run_at <= now),
        sa.and_(Job.status == JobStatus.running.value, Job.locked_until < now),
    )
    oldest = session.scalar(sa.select(sa.func.min(waiting_since)).where(due))
    last = session.scalar(sa.select(sa.func.max(WorkerHeartbeat.beat_at)))
    oldest = as_utc(oldest) if oldest is not None else None
    last = as_utc(last) if last is not None else None
    causes, since = [], []
    if oldest is not None and now - oldest > limit:
        causes.append(f"the oldest due job has waited {minutes(now - oldest)}")
        since.append(oldest)
    if last is not None and now - last > limit:
        causes.append(f"no worker heartbeat for {minutes(now - last)}")
        since.append(last)
    return Health(min(since) if since else None, oldest, last, "; ".join(causes))


def minutes(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def check() -> Health:
    """Measure, and open or close the incident row; log once when it opens and once when it
    closes (whichever process wins the row). Returns the open incident's start as
    `delayed_since`. A session of its own: a page's check never commits what its view left."""
    with Session(db.engine) as session:
        return _check(session, utcnow())


def _check(session: Session, now: dt.datetime) -> Health:
    health = measure(session, now)
    try:
        incident = session.scalars(
            sa.select(WorkerIncident).where(WorkerIncident.open_slot == 1)
        ).first()
        if health.delayed and incident is None:
            assert health.delayed_since is not None
            session.add(
                WorkerIncident(
                    open_slot=1,
                    since=health.delayed_since,
                    started_at=now,
                    cause=health.cause[:200],
                )
            )
            session.commit()
            log.warning(
                "background work delayed since %s UTC: %s (alerts, texts, copies and "
                "call-backs wait until a worker runs)",
                health.delayed_since.strftime("%Y-%m-%d %H:%M"),
                health.cause,
            )
        elif health.delayed:
            assert incident is not None
            health = Health(
                as_utc(incident.since), health.oldest_due, health.last_beat, health.cause
            )
            session.commit()
        elif incident is not None:
            closed = session.execute(
                sa.update(WorkerIncident)
                .where(WorkerIncident.id == incident.id, WorkerIncident.open_slot == 1)
                .values(open_slot=None, ended_at=now)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if isinstance(closed, CursorResult) and closed.rowcount == 1:
                log.warning(
                    "background work caught up: delayed from %s to %s UTC",
                    as_utc(incident.since).strftime("%Y-%m-%d %H:%M"),
                    now.strftime("%H:%M"),
                )
        else:
            session.commit()
    except sa.exc.IntegrityError:  # another process opened the incident first: it logged
        session.rollback()
        return _check(session, now)
    return health
