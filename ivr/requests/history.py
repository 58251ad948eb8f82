"""Each request's history: an append-only list of what happened, by whom and when.

One note per request, overwritten by the next save, lost what colleagues said on a call. Here
nothing is ever updated or deleted: a note, a status change, a claim, a call attempt and its
outcome, a listen and an export are each a new row. The request's `status` column is only the
latest status, moved with a conditional UPDATE, so two staff saving at once cannot silently undo
each other: the second sees what changed instead.

Status follows what happened: new → trying (a call attempt did not reach the family) → reached
(a call-back was answered) → handled (staff say the matter is dealt with).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, as_utc, db, utcnow
from ivr.requests.models import CallbackRequest

STATUSES = ("new", "trying", "reached", "handled")
STATUS_LABELS = {"new": "New", "trying": "Trying", "reached": "Reached", "handled": "Handled"}
OPEN = ("new", "trying")  # the family still waits for someone to reach them
# Outcomes of a call attempt: the family's leg (from Dial's action) or the staff phone's leg.
OUTCOMES = {
    "reached": "reached",
    "no-answer": "no answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "hung up before the family answered",
    "not-connected": "not connected",
    "refused": "Twilio refused the call",
    "not-placed": "not placed: the hotline could not start the call in time",
    # Chosen by the staff member at the end of the call (on the phone or on the card): Twilio
    # reports a voicemail pickup as "completed" just like a family who answered.
    "voicemail": "left a voicemail",
    "wrong-number": "wrong number",
    "try-later": "try again later",
}
# The family's phone was called (an attempt on the card's count).
DIALLED = ("reached", "no-answer", "busy", "failed", "voicemail", "wrong-number", "try-later")
CALLING_FOR = dt.timedelta(minutes=10)


class RequestEvent(Model):
    """One thing that happened to a request. Rows are only ever added."""

    __tablename__ = "request_events"
    __table_args__ = (Index("ix_request_events_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # A request's event, or (call-backs to a missed call, see missed.py) a call's.
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE")
    )
    # No foreign key to `calls`: that table is on every caller's path and stays free of
    # dependants (a test drops it to play a failing database; nothing ever deletes a call).
    call_id: Mapped[int | None] = mapped_column(index=True)
    # note | status | claim | release | call | outcome | listen | export | copy | erase; for a
    # missed call also done | reopen (staff mark it dealt with, or not after all: the latest counts)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(80))  # None: the hotline itself
    text: Mapped[str] = mapped_column(Text, default="")
    status_from: Mapped[str | None] = mapped_column(String(16))
    status_to: Mapped[str | None] = mapped_column(String(16))
    # An outcome row names its call attempt; unique, so a repeated webhook records one outcome.
    attempt_id: Mapped[int | None] = mapped_column(unique=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RequestClaim(Model):
    """Who said "I'll take it": at most one person per request."""

    __tablename__ = "request_claims"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(80))
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def add(request_id: int | None, kind: str, actor: str | None, **fields) -> RequestEvent:
    """Append an event in the current transaction (not committed)."""
    event = RequestEvent(request_id=request_id, kind=kind, actor=actor, **fields)
    db.session.add(event)
    db.session.flush()
    return event


def move_status(request_id: int, seen: str, to: str, actor: str | None, text: str = "") -> bool:
    """Set the status to `to` only if it is still `seen`; record the change. False if someone
    (or a call's outcome) changed it first: nothing is overwritten."""
    if seen == to:
        return True
    moved = cast(
        CursorResult[Any],
        db.session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.id == request_id, CallbackRequest.status == seen)
            # The retention clock (retention.py) runs from the moment a family was reached or the
            # request handled, and stops if it is reopened.
            .values(
                status=to,
                updated_at=utcnow(),
                handled_at=utcnow() if to in ("reached", "handled") else None,
            )
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if moved:
        add(request_id, "status", actor, status_from=seen, status_to=to, text=text)
    return bool(moved)


def events(request_id: int, after: int = 0) -> list[RequestEvent]:
    return list(
        db.session.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == request_id, RequestEvent.id > after)
            .order_by(RequestEvent.id)
        )
    )


def last_id(request_id: int) -> int:
    return db.session.execute(
        sa.select(sa.func.coalesce(sa.func.max(RequestEvent.id), 0)).where(
            RequestEvent.request_id == request_id
        )
    ).scalar_one()


@dataclass
class Summary:
    """What a card shows about a request's history, read for a page of requests at once."""

    events: list[RequestEvent]
    claimed_by: str | None
    attempts: int  # calls that rang the family's phone
    calling: bool  # a call-back is under way (queued, no outcome yet)
    last_id: int
    done: bool = False  # a missed call marked done (and not reopened since)

    @property
    def notes(self) -> list[RequestEvent]:
        return [e for e in self.events if e.kind == "note"]


def summaries(request_ids: list[int], by: str = "request") -> dict[int, Summary]:
    """The history of each request in `request_ids` (or of each missed call, by="call"), in
    two queries."""
    found = {i: Summary([], None, 0, False, 0) for i in request_ids}
    if not request_ids:
        return found
    column = RequestEvent.call_id if by == "call" else RequestEvent.request_id
    rows = db.session.scalars(
        sa.select(RequestEvent).where(column.in_(request_ids)).order_by(RequestEvent.id)
    )
    # An attempt without an outcome is "calling" for a while only: a job that failed for good
    # (Twilio down for its retries) must not grey out the button for ever.
    recent = utcnow() - CALLING_FOR
    attempts: dict[int, set[int]] = {i: set() for i in request_ids}
    answered: dict[int, set[int | None]] = {i: set() for i in request_ids}
    for event in rows:
        key = event.call_id if by == "call" else event.request_id
        assert key is not None  # the rows were selected by this column
        summary = found[key]
        summary.events.append(event)
        summary.last_id = event.id
        if event.kind == "call" and as_utc(event.created_at) > recent:
            attempts[key].add(event.id)
        elif event.kind in ("done", "reopen"):
            summary.done = event.kind == "done"
        elif event.kind == "outcome":
            answered[key].add(event.attempt_id)
            if event.outcome in DIALLED:
                summary.attempts += 1
    for request_id, summary in found.items():
        summary.calling = bool(attempts[request_id] - answered[request_id])
    if by == "call":
        return found
    for claim in db.session.scalars(
        sa.select(RequestClaim).where(RequestClaim.request_id.in_(request_ids))
    ):
        found[claim.request_id].claimed_by = claim.username
    return found


def describe(event: RequestEvent) -> str:
    """One line for the history list (who and when are shown beside it)."""
    if event.kind == "note":
        return event.text
    if event.kind == "status":
        reason = f" ({event.text})" if event.text else ""
        return (
            f"status {STATUS_LABELS.get(event.status_from or '', event.status_from)} → "
            f"{STATUS_LABELS.get(event.status_to or '', event.status_to)}{reason}"
        )
    if event.kind == "claim":
        return "took it"
    if event.kind == "release":
        return "let it go"
    if event.kind == "call":
        return f"call-back through the hotline {event.text}".strip()
    if event.kind == "outcome":
        seconds = f", {event.duration // 60}:{event.duration % 60:02d}" if event.duration else ""
        extra = f" ({event.text})" if event.text else ""
        return f"call-back: {OUTCOMES.get(event.outcome or '', event.outcome)}{seconds}{extra}"
    if event.kind == "listen":
        return "listened to the message"
    if event.kind == "export":
        return "exported it to CSV"
    if event.kind == "copy":
        return "asked to copy the recording from Twilio again"
    if event.kind == "erase":
        return f"deleted the personal data and recording{f' ({event.text})' if event.text else ''}"
    if event.kind == "done":
        return "marked it done"
    if event.kind == "reopen":
        return "opened it again"
    return event.kind


def claim(request_id: int, username: str) -> str | None:
    """Take the request unless a colleague already has; return who has it now (None if they
    let it go in between)."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    taken = db.session.scalar(
        insert(RequestClaim)
        .values(request_id=request_id, username=username, claimed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(RequestClaim.username)
    )
    if taken:
        add(request_id, "claim", username)
        return username
    return db.session.scalar(
        sa.select(RequestClaim.username).where(RequestClaim.request_id == request_id)
    )


def release(request_id: int, username: str) -> bool:
    """Let go of a request one holds (never a colleague's)."""
    gone = cast(
        CursorResult[Any],
        db.session.execute(
            sa.delete(RequestClaim)
            .where(RequestClaim.request_id == request_id, RequestClaim.username == username)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if gone:
        add(request_id, "release", username)
    return bool(gone)
