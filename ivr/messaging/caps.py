"""Limits on what the hotline sends, kept in the database so every process sees the same count.

The review (security.md H1) had one number get a text on each of six calls, and 14 calls send 28
messages. So:

- a number gets at most one reference text in 24 hours (`texted_recently`): asked again, the
  caller hears it was sent and the reference is read to them again;
- all reference texts together stop at TEXTS_PER_DAY in an office day (`texts_left_today`):
  past it the offer is not made, and the alert recipients are told once that day (the job key
  carries the date);
- staff alerts stop at ALERTS_PER_HOUR per recipient in a clock hour (`take_alert`): the ones
  past the cap are counted and one digest at the end of the hour says how many ("7 new
  requests").

Each text or alert leaves a `SendMark`: what it was and a keyed hash of the number (HMAC with
SECRET_KEY), never the number itself, so this table holds no personal data for retention to
erase (security.md M6). Marks older than two days are deleted as new ones are added.

Counting and marking are two statements, not a lock: with several workers at once a cap may be
passed by the number of jobs running together (JOB_CONCURRENCY), which is what a cap on cost
needs, and no webhook waits on a lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import sqlalchemy as sa
from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.calls.calendar import now, today
from ivr.db import Model, db
from ivr.settings import settings

KEEP = dt.timedelta(days=2)  # longer than any window counted here
TEXT_WINDOW = dt.timedelta(hours=24)
TEXT = "text"  # a reference text queued to a caller
ALERT = "alert"  # a staff alert sent
HELD = "held"  # a staff alert held back for the hour's digest


class SendMark(Model):
    """One text or alert the hotline sent (or held back), for the limits above."""

    __tablename__ = "send_limits"
    __table_args__ = (Index("ix_send_limits_kind_subject_at", "kind", "subject", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))  # keyed hash of the number or recipient
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


def subject(value: str) -> str:
    """A number or recipient as the table keeps it: the same for the same value, useless to
    anyone without SECRET_KEY."""
    key = str(settings().secret_key).encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:40]


def mark(kind: str, value: str, at: dt.datetime | None = None) -> None:
    """Add a mark in the current transaction (not committed), and drop the old ones."""
    moment = (at or now()).astimezone(dt.UTC)
    db.session.execute(
        sa.delete(SendMark)
        .where(SendMark.created_at < moment - KEEP)
        .execution_options(synchronize_session=False)
    )
    db.session.add(SendMark(kind=kind, subject=subject(value), created_at=moment))


def count(kind: str, since: dt.datetime, value: str | None = None) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(SendMark)
        .where(SendMark.kind == kind, SendMark.created_at >= since)
    )
    if value is not None:
        query = query.where(SendMark.subject == subject(value))
    return db.session.scalar(query) or 0


# Reference texts ------------------------------------------------------------------------------
def texted_recently(number: str) -> bool:
    """Whether `number` was sent (queued) a reference text in the last 24 hours."""
    return count(TEXT, now() - TEXT_WINDOW, number) > 0


def office_day_start() -> dt.datetime:
    """Midnight today in the office's time zone, in UTC (SQLite compares the stored text): the
    day TEXTS_PER_DAY counts."""
    tz = settings().office_timezone
    local = now().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(dt.UTC)


def office_date() -> dt.date:
    return today()


def texts_left_today() -> int:
    return max(0, settings().texts_per_day - count(TEXT, office_day_start()))


# Staff alerts ---------------------------------------------------------------------------------
def hour_start(moment: dt.datetime | None = None) -> dt.datetime:
    return (moment or now()).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def take_alert(recipient: str) -> bool:
    """Count one alert to `recipient` this hour: True when it is within ALERTS_PER_HOUR (send
    it), False when it is held for the digest. Adds its mark; the caller commits."""
    start = hour_start()
    within = count(ALERT, start, recipient) < settings().alerts_per_hour
    mark(ALERT if within else HELD, recipient)
    return within


def held(recipient: str, start: dt.datetime) -> int:
    """How many alerts to `recipient` were held back in the hour from `start`."""
    end = start + dt.timedelta(hours=1)
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SendMark)
            .where(
                SendMark.kind == HELD,
                SendMark.subject == subject(recipient),
                SendMark.created_at >= start,
                SendMark.created_at < end,
            )
        )
        or 0
    )
