"""Erase means erase, once and for good: what makes an erased request stay erased, and the copies
of its personal data outside its own row.

Twilio calls back late and twice, the fallback file and the log drain hold steps the database
did not take, and jobs run after the fact. Blanking the request's row is not enough when any of
those can write the caller's number or recording back. So an erase leaves tombstones: every
CallSid the request was made of (its call, the calls that added messages to it, staff's
call-backs to it) goes into `erased_calls`, and every writer of a caller's data (the request
service, the fallback replay, the jobs) looks there first and drops what would fill it again.
A tombstone holds a CallSid and a time, nothing personal: it is kept for good.

Beyond the row itself, an erase takes: the numbers on the calls' rows, Twilio's error texts in
the request's history and its jobs, the added messages, the text's status and error, the
fallback file's entries for those calls, and Twilio's copies: recordings are deleted, and the
text sent to the family is redacted (its body set to "") and deleted by a job (`redact-message`).
On SQLite, `secure_delete` zeroes what was erased in the file and a WAL checkpoint follows
(`db.checkpoint`); on PostgreSQL dead rows, WAL and backups keep old values for a while (README,
"Data protection").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.background import jobs
from ivr.db import Model, db, utcnow
from ivr.messaging.gateway import gateway


class ErasedCall(Model):
    """A call whose caller's data was erased: nothing about it may be stored again."""

    __tablename__ = "erased_calls"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def is_erased(call_sid: str | None) -> bool:
    if not call_sid:
        return False
    return (
        db.session.scalar(sa.select(ErasedCall.call_sid).where(ErasedCall.call_sid == call_sid))
        is not None
    )


def erased_among(call_sids: Iterable[str]) -> set[str]:
    sids = {sid for sid in call_sids if sid}
    if not sids:
        return set()
    return set(
        db.session.scalars(sa.select(ErasedCall.call_sid).where(ErasedCall.call_sid.in_(sids)))
    )


def tombstone(call_sids: Iterable[str]) -> None:
    """Mark these calls erased (in the current transaction); already marked ones stay."""
    new = {sid for sid in call_sids if sid} - erased_among(call_sids)
    db.session.add_all(ErasedCall(call_sid=sid) for sid in sorted(new))
    db.session.flush()


def redact_message(payload: dict[str, Any]) -> None:
    gateway().redact_message(payload["message_sid"])


# Retried through a long outage: Twilio keeps the body until this runs.
REDACT_MESSAGE = jobs.JobKind(
    "redact-message",
    redact_message,
    key=lambda message_sid: f"redact-message:{message_sid}",
    payload=("message_sid",),
    max_attempts=12,
    time_limit=60,
)


def scrub(request_ids: list[int]) -> set[str]:
    """Everything beyond the request's own fields, in the current transaction (the caller blanks
    those, audits and commits, then calls `after_commit`). Returns the calls' SIDs, tombstoned."""
    from ivr.requests.history import RequestEvent
    from ivr.requests.models import Call, CallbackRequest, RequestMessage

    requests = db.session.execute(
        sa.select(CallbackRequest.id, CallbackRequest.call_sid, CallbackRequest.sms_sid).where(
            CallbackRequest.id.in_(request_ids)
        )
    ).all()
    sids = {row.call_sid for row in requests}
    sids |= set(
        db.session.scalars(
            sa.select(RequestMessage.call_sid).where(RequestMessage.request_id.in_(request_ids))
        )
    )
    # Calls staff placed to these requests (the missed-call kind carries a call row too).
    attempts = db.session.execute(
        sa.select(RequestEvent.id, RequestEvent.call_id).where(
            RequestEvent.request_id.in_(request_ids), RequestEvent.kind == "call"
        )
    ).all()
    call_ids = {a.call_id for a in attempts if a.call_id}
    if call_ids:
        sids |= set(db.session.scalars(sa.select(Call.call_sid).where(Call.id.in_(call_ids))))
    # The calls' numbers, now (not RETENTION_DAYS after the call).
    db.session.execute(
        sa.update(Call)
        .where(Call.call_sid.in_(sids))
        .values(from_number="")
        .execution_options(synchronize_session=False)
    )
    # Twilio's words in the history (a call-back's error quotes the number it refused).
    db.session.execute(
        sa.update(RequestEvent)
        .where(
            RequestEvent.request_id.in_(request_ids),
            RequestEvent.kind.in_(("note", "call", "outcome")),
        )
        .values(text="")
        .execution_options(synchronize_session=False)
    )
    # Job rows: payloads hold ids only; their error texts go.
    attempt_ids = {a.id for a in attempts}
    message_ids = set(
        db.session.scalars(
            sa.select(RequestMessage.id).where(RequestMessage.request_id.in_(request_ids))
        )
    )
    related = []
    for job in db.session.scalars(sa.select(jobs.Job).where(jobs.Job.last_error.is_not(None))):
        data = job.data
        if (
            data.get("request_id") in request_ids
            or data.get("attempt_id") in attempt_ids
            or data.get("message_id") in message_ids
        ):
            related.append(job.id)
    if related:
        db.session.execute(
            sa.update(jobs.Job)
            .where(jobs.Job.id.in_(related))
            .values(last_error=None)
            .execution_options(synchronize_session=False)
        )
    # The text sent to the family: Twilio keeps its body until told otherwise.
    for row in requests:
        if row.sms_sid:
            REDACT_MESSAGE.enqueue(message_sid=row.sms_sid)
    db.session.execute(
        sa.update(CallbackRequest)
        .where(CallbackRequest.id.in_(request_ids))
        .values(erased_at=utcnow(), sms_status=None, sms_error=None, sms_sid=None)
        .execution_options(synchronize_session=False)
    )
    tombstone(sids)
    return sids


def after_commit(call_sids: set[str]) -> None:
    """Outside the database: this machine's fallback file, and SQLite's WAL."""
    from flask import current_app

    from ivr.db import checkpoint
    from ivr.requests import fallback

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    fallback.forget(app, call_sids)
    checkpoint()
