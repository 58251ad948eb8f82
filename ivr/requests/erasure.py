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
