"""What the views read about requests: the voice and staff views ask here, never query rows.

A caller's lookup only makes a call better (hearing an open request, not recording twice), so a
database that fails is noted for the rest of the webhook (`database_failed`) and the
call goes on as for a first call, never waiting on the database twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g, has_request_context
from sqlalchemy.orm import undefer

from ivr.background import jobs
from ivr.db import db
from ivr.messaging import policy
from ivr.requests import history, missed
from ivr.requests.models import Call, CallbackRequest, RequestMessage
from ivr.settings import settings


def database_failed() -> None:
    """Note, for the rest of this webhook, that the database failed: lookups that only make a
    call better (this module's) are then skipped rather than make the caller wait again."""
    if has_request_context():
        g.database_failed = True


def open_request(number: str, call_sid: str, since: dt.datetime) -> CallbackRequest | None:
    """The newest request from `number` not yet called back, made after `since` (detached)."""
    if g.get("database_failed"):
        return None
    try:
        row = db.session.scalar(
            sa.select(CallbackRequest)
            .where(
                CallbackRequest.caller_number == number,
                CallbackRequest.status.in_(history.OPEN),  # the family still waits
                CallbackRequest.call_sid != call_sid,
                CallbackRequest.created_at >= since,
            )
            .order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())
            .limit(1)
        )
        if row is not None:
            db.session.expunge(row)
        db.session.commit()
        return row
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None  # the database is failing: the call goes on as a first call


def added_reference(call_sid: str) -> str | None:
    """The reference of the request this call already added its message to, if it did."""
    if g.get("database_failed"):
        return None
    try:
        return db.session.scalar(
            sa.select(CallbackRequest.reference)
            .join(RequestMessage)
            .where(RequestMessage.call_sid == call_sid, RequestMessage.recording_sid.is_not(None))
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None


def recorded_reference(call_sid: str) -> str | None:
    """The reference of this call's request when its message is already recorded."""
    try:
        return db.session.scalar(
            sa.select(CallbackRequest.reference).where(
                CallbackRequest.call_sid == call_sid, CallbackRequest.recording_sid.is_not(None)
            )
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None  # the database is failing: recording again is the safe side


def calling_number(call_sid: str) -> str | None:
    """The number the call came from, as noted when it chose its language."""
    try:
        return db.session.scalar(sa.select(Call.from_number).filter_by(call_sid=call_sid))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return None


def family_verdict(row: CallbackRequest) -> policy.Verdict:
    """The number policy's verdict on the number to call the family on: the one they asked to be
    called on, or else the one they called from, whichever the policy allows first
    (`messaging/policy.py`); when neither is allowed, the verdict on the first given, so staff
    read why."""
    verdicts = [policy.for_calls(n) for n in (row.callback_number, row.caller_number) if n]
    allowed = [v for v in verdicts if v.allowed]
    return (allowed or verdicts or [policy.for_calls(None)])[0]


def family_number(row: CallbackRequest) -> str | None:
    """The number the hotline may call the family on, or None: never one the policy refuses."""
    verdict = family_verdict(row)
    return verdict.number if verdict.allowed else None


def valid_number(number: str | None) -> str | None:
    """`number` in E.164 when the policy lets the hotline call it (a missed call's number)."""
    verdict = policy.for_calls(number)
    return verdict.number if verdict.allowed else None


def country(number: str | None) -> str:
    """The country of a valid number, for staff pages ("Mexico"); '' otherwise."""
    verdict = policy.for_calls(number)
    return verdict.country_name if verdict.number else ""


def attempt_target(attempt: history.RequestEvent) -> tuple[str | None, str, str | None]:
    """(number to call, language, reference or None for a missed call) of an attempt."""
    if attempt.request_id is not None:
        row = db.session.get(CallbackRequest, attempt.request_id)
        if row is not None:
            return family_number(row), row.language, row.reference
    elif attempt.call_id is not None:
        call = db.session.get(Call, attempt.call_id)
        if call is not None:
            return valid_number(call.from_number), call.language, None
    return None, settings().default_language, None


def call_back_target(attempt_id: int) -> tuple[str | None, str, str | None]:
    """`attempt_target` of a call-back attempt by its id, for the staff leg's webhooks; commits
    (no connection held while Twilio waits for the answer)."""
    event = db.session.get(history.RequestEvent, attempt_id)
    if event is None or event.kind != "call":
        found: tuple[str | None, str, str | None] = (
            None,
            settings().default_language,
            None,
        )
    else:
        found = attempt_target(event)
    db.session.commit()
    return found


def copy_failure(kind: jobs.JobKind, recording_sid: str | None) -> str | None:
    """Why the copy of a recording failed last (its job's last error), or None while it has not
    failed (queued, running, or not queued yet)."""
    if not recording_sid:
        return None
    key = kind.job_key(recording_sid=recording_sid)
    return db.session.scalar(sa.select(jobs.Job.last_error).where(jobs.Job.key == key))


def copy_job(kind: jobs.JobKind, recording_sid: str | None) -> jobs.Job | None:
    """The job copying a recording from Twilio (its status, attempts, last error); None while
    none was queued."""
    if not recording_sid:
        return None
    key = kind.job_key(recording_sid=recording_sid)
    return db.session.scalar(sa.select(jobs.Job).where(jobs.Job.key == key))


def request(request_id: int, *, with_audio: bool = False) -> CallbackRequest | None:
    """One request by id, for a staff page; its audio (deferred) only when it is to be played."""
    options = [undefer(CallbackRequest.audio)] if with_audio else []
    return db.session.get(CallbackRequest, request_id, options=options)


def message_of(request_id: int, message_id: int) -> RequestMessage | None:
    """A message added to request `request_id`, with its audio; None if it is another's."""
    row = db.session.get(RequestMessage, message_id, options=[undefer(RequestMessage.audio)])
    return row if row is not None and row.request_id == request_id else None


def reference_of(request_id: int) -> str | None:
    return db.session.scalar(
        sa.select(CallbackRequest.reference).where(CallbackRequest.id == request_id)
    )


def call(call_id: int) -> Call | None:
    """A call by id (a missed call staff call back)."""
    return db.session.get(Call, call_id)


@dataclass
class MissedCalls:
    """The missed-calls page: open ones (counted), done ones (folded away), and each one's
    history by call id."""

    open: list[missed.Missed]
    done: list[missed.Missed]
    summaries: dict[int, history.Summary]


def missed_calls() -> MissedCalls:
    rows = missed.missed_calls()
    summaries = history.summaries([m.call.id for m in rows], by="call")
    return MissedCalls(
        open=[m for m in rows if not summaries[m.call.id].done],
        done=[m for m in rows if summaries[m.call.id].done],
        summaries=summaries,
    )
