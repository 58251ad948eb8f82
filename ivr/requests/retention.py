"""Retention: a request's personal data is kept only RETENTION_DAYS after it is handled.

The recordings hold families naming a detained relative and where they are held; once staff have
called back (or handled the request otherwise) the firm's case file is the record, and the hotline
need not keep them. After RETENTION_DAYS from `handled_at`, the audio and every personal field
(numbers, A-number, the words of staff notes, Twilio's recording URL) are erased, and Twilio is
asked to delete its copy if it still has one. The row itself stays, with its reference,
language, dates, status and duration, so the staff chart and counts do not change. Calls lose
their calling number after the same number of days from the call.

Runs once a day as a job queued by the worker's housekeeping (key `retention:YYYY-MM-DD`, so
several worker processes queue it once) and by hand as `ivr retention run [--dry-run]`. An admin
can erase a request at once from its page (`service/handling.erase`, action "delete"), which
the purge uses too. Each erased request is an audit entry; the audit log itself is never purged
(it holds no caller's data).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from ivr.accounts import audit
from ivr.background import jobs
from ivr.db import db, utcnow
from ivr.requests.models import Call, CallbackRequest
from ivr.requests.service import handling
from ivr.settings import settings

# Statuses after which the clock runs (`history.py`).
REACHED = ("reached", "handled")


def days() -> dt.timedelta:
    return dt.timedelta(days=settings().retention_days)


def holds_personal_data() -> sa.ColumnElement[bool]:
    r = CallbackRequest
    return sa.or_(
        r.caller_number != "",
        r.callback_number.is_not(None),
        r.a_number.is_not(None),
        r.recording_url.is_not(None),
        r.audio_type.is_not(None),
    )


def purge_date(row: CallbackRequest) -> dt.datetime | None:
    """When `row`'s personal data goes, or None while it is not handled (kept until then)."""
    if row.status not in REACHED or row.handled_at is None:
        return None
    handled = row.handled_at if row.handled_at.tzinfo else row.handled_at.replace(tzinfo=dt.UTC)
    return handled + days()


def is_erased(row: CallbackRequest) -> bool:
    return not (
        row.caller_number
        or row.callback_number
        or row.a_number
        or row.recording_url
        or row.audio_type
    )


@dataclass
class Plan:
    """What a purge at `now` erases: requests by (id, reference), and how many calls' numbers."""

    requests: list[tuple[int, str]] = field(default_factory=list)
    calls: int = 0


def plan(now: dt.datetime | None = None) -> Plan:
    cutoff = (now or utcnow()) - days()
    r = CallbackRequest
    rows = db.session.execute(
        sa.select(r.id, r.reference)
        .where(r.status.in_(REACHED), r.handled_at < cutoff, holds_personal_data())
        .order_by(r.id)
    ).all()
    calls = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Call)
        .where(Call.created_at < cutoff, Call.from_number != "")
    )
    return Plan([(row.id, row.reference) for row in rows], calls or 0)


def run(now: dt.datetime | None = None, *, dry_run: bool = False) -> Plan:
    """Purge everything past its retention (or, with `dry_run`, only say what)."""
    todo = plan(now)
    if dry_run:
        return todo
    for start in range(0, len(todo.requests), 500):  # bounded IN lists
        handling.erase(
            [rid for rid, _ in todo.requests[start : start + 500]], audit.SYSTEM, "purge"
        )
    cutoff = (now or utcnow()) - days()
    db.session.execute(
        sa.update(Call)
        .where(Call.created_at < cutoff, Call.from_number != "")
        .values(from_number="")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return todo


def retention_job(_payload: dict) -> None:
    done = run()
    current_app.logger.info(
        "retention: purged %d request(s) and %d call number(s)", len(done.requests), done.calls
    )


def queue_daily() -> None:
    """Queue today's purge (once per day however many workers ask); the caller commits."""
    RETENTION.enqueue(day=utcnow().date().isoformat())


RETENTION = jobs.JobKind(
    "retention",
    retention_job,
    key=lambda day: f"retention:{day}",
    max_attempts=8,
    time_limit=110,  # the database only, in batches of 500 requests
)
