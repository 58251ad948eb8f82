"""Calling again: a caller with an open request hears it, and a new message joins it.

Many families call again the next day, anxious, and leave a second message. So a caller whose
number has an open request (not yet called back) from the last 14 days hears, after choosing a
language, "We have your message from Tuesday, reference 123 456. We will call you back.", and
the menu offers "to add to your message, press 8". What they record then is stored as a
`RequestMessage` on that request, flagged new for staff, instead of an unrelated request. One
call still makes one recording: the row is keyed by the CallSid, like a request.

Only a real caller ID is looked up (never 'Anonymous'). If the database fails, the call goes on
as for a first call: the lookup finds nothing, or the added message is kept by the fallback as a
request of its own (`store.save_or_keep`), which staff see beside the first.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Blueprint, current_app, g
from sqlalchemy.exc import IntegrityError

from ivr.background import jobs
from ivr.calls.calendar import now, office
from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts, twiml
from ivr.db import db
from ivr.requests import added as added_alerts
from ivr.requests import erasure, recordings, references, store
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.settings import DAYS
from ivr.voice import closing
from ivr.voice.connect import caller_id

bp = Blueprint("again", __name__, url_prefix="/<any(en, es):lang>/again")

OPEN_DAYS = 14


def open_request(number: str, call_sid: str) -> CallbackRequest | None:
    """The newest request from `number` not yet called back, from the last 14 days."""
    if not caller_id(number) or g.get("database_failed"):
        return None
    try:
        row = db.session.scalar(
            sa.select(CallbackRequest)
            .where(
                CallbackRequest.caller_number == number,
                CallbackRequest.status.in_(("new", "trying")),  # the family still waits
                CallbackRequest.call_sid != call_sid,
                CallbackRequest.created_at >= now() - dt.timedelta(days=OPEN_DAYS),
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
        store.database_failed()
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
        store.database_failed()
        return None


def when_lines(lang: str, created_at: dt.datetime) -> list[Line]:
    """ "We have your message from Tuesday" (today, yesterday, a weekday, or over a week ago),
    counted in the office's days."""
    p = prompts()
    calendar = office()
    day = calendar.local(created_at).date()
    ago = (calendar.local(now()).date() - day).days
    if ago <= 0:
        return [p.line(lang, "again_from_today")]
    if ago == 1:
        return [p.line(lang, "again_from_yesterday")]
    if ago < 7:
        return [p.line(lang, "again_from_day"), p.line(lang, f"words/day_{DAYS[day.weekday()]}")]
    return [p.line(lang, "again_from_older")]


def announcement(lang: str, row: CallbackRequest) -> list[Line]:
    p = prompts()
    return [
        *when_lines(lang, row.created_at),
        p.line(lang, "again_reference"),
        *p.digits(lang, row.reference, (3, 3)),
        p.line(lang, "again_call_back"),
    ]


def with_add_option(lang: str, lines: list[Line]) -> list[Line]:
    """The menu, with "to add to your message, press 8" for "to leave a message, press 8"."""
    add = prompts().line(lang, "option_add")
    return [add if line.source == "option_callback" else line for line in lines]


def save(
    call_sid: str, request_id: int, caller_number: str | None, language: str, **fields
) -> None:
    """Store the message on request `request_id`, once per call (the `<Record>` action and the
    status callback may both bring it, in any order, more than once); queue its copy."""
    try:
        parent_erased = db.session.scalar(
            sa.select(CallbackRequest.erased_at).where(CallbackRequest.id == request_id)
        )
        if erasure.is_erased(call_sid) or parent_erased is not None:
            db.session.rollback()  # erased: a late callback adds nothing back
            return
        for attempt in range(3):
            row = db.session.scalar(sa.select(RequestMessage).filter_by(call_sid=call_sid))
            if row is None:
                row = RequestMessage(call_sid=call_sid, request_id=request_id)
                db.session.add(row)
            if row.recording_sid not in (None, fields["recording_sid"]):
                current_app.logger.warning(
                    "call %s: second recording %s kept at Twilio only",
                    call_sid,
                    fields["recording_sid"],
                )
                db.session.rollback()
                return
            new_recording = row.recording_sid is None
            for name, value in fields.items():
                setattr(row, name, value)
            try:
                db.session.flush()
                if new_recording and not row.audio_type:
                    recordings.COPY_MESSAGE.enqueue(
                        message_id=row.id, recording_sid=row.recording_sid
                    )
                if new_recording:
                    added_alerts.queue(request_id, row.id)
                db.session.commit()
                return
            except IntegrityError:
                db.session.rollback()  # the other callback stored it first: update that one
                if attempt == 2:
                    raise
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error(
            "call %s: could not add the message to request %s (%s); kept as a request of its own",
            call_sid,
            request_id,
            jobs.reason(exc),
        )
        store.save_or_keep(
            call_sid,
            reference=references.take(call_sid),
            caller_number=caller_number,
            step="recorded",
            language=language,
            **fields,
        )


@bp.post("/added")
def added(lang: str):
    """The ending for a message added to an open request: its reference, and the same
    questions as a first request (urgency, the reference by text)."""
    return twiml(closing.ending(lang, [prompts().line(lang, "added")]))
