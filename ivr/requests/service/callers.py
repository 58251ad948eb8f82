"""What a call writes, step by step, and what each write sets off.

`save` is the one way a request is written: keyed by CallSid, it creates or updates the row, so a
duplicated or out-of-order Twilio callback never makes a second request. What the write calls for
is queued in the same transaction, in `save` itself: the staff alerts of a new request
(`alerts.queue_new`), the copy of a new recording (`recordings.py`), and, once the caller
finished, the alerts made due at once (`alerts.due_now`). When the database fails, what the
caller gave is kept by `fallback.py` and the call goes on as on a good day; `replay` stores it
once the database is back (`init_app` hands it to the fallback).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from ivr.background import jobs
from ivr.db import db
from ivr.messaging import caps, policy
from ivr.requests import alerts, erasure, fallback, lookup, recordings, references, sms
from ivr.requests.models import Call, CallbackRequest, RequestMessage
from ivr.settings import settings

FIELDS = {
    "language",
    "caller_number",
    "callback_number",
    "a_number",
    "step",
    "recording_sid",
    "recording_url",
    "recording_duration",
}
STEPS = ("recorded", "number", "complete")


def init_app(app: Flask) -> None:
    """Let the fallback replay kept steps through `replay`, and alert staff directly while the
    database is down (`alerts.alert_directly`), without importing either itself."""
    fallback.init_app(app, fallback.Hooks(replay, alerts.alert_directly, database_answers))


def save(call_sid: str, *, alerted: bool = False, **fields: Any) -> CallbackRequest:
    """Create or update the request of `call_sid`, queue what the write calls for, and commit;
    raise SQLAlchemyError if the database fails.

    A `reference` given is the one the caller heard (the `<Record>` action's), so it wins over a
    reference chosen when the status callback made the row first. `alerted`: staff were already
    alerted directly while the database was down, so no alert is queued again.
    """
    unknown = set(fields) - FIELDS - {"reference"}
    if unknown:
        raise TypeError(f"unknown fields {sorted(unknown)}")
    if erasure.is_erased(call_sid):
        # Erased (retention or an admin): a late or replayed step fills nothing again.
        db.session.rollback()
        current_app.logger.info("call %s was erased: its late step is dropped", call_sid)
        erased = db.session.scalar(sa.select(CallbackRequest).filter_by(call_sid=call_sid))
        return erased or CallbackRequest(call_sid=call_sid, reference="", language="")
    for attempt in range(5):
        row = db.session.scalar(sa.select(CallbackRequest).filter_by(call_sid=call_sid))
        if row is None:
            row = CallbackRequest(
                call_sid=call_sid,
                reference=fields.get("reference") or references.take(call_sid),
                # A replayed journal may hold only a later step: the row still needs a language.
                language=fields.get("language") or settings().default_language,
            )
            db.session.add(row)
        created = row.id is None
        completing = fields.get("step") == "complete" and row.step != "complete"
        if fields.get("reference") and not created:
            row.reference = fields["reference"]
        new_recording = bool(fields.get("recording_sid")) and row.recording_sid is None
        for name, value in fields.items():
            if name == "reference" or value is None:
                continue
            if name == "step" and row.step and STEPS.index(value) < STEPS.index(row.step):
                continue  # a late, replayed or repeated step never moves a request back
            if (
                name.startswith("recording_")
                and row.recording_sid
                and (fields.get("recording_sid") not in (None, row.recording_sid))
            ):
                # One request per call, and its first message stays: a second recording is
                # logged (Twilio keeps it) rather than replacing what staff will hear.
                current_app.logger.warning(
                    "call %s: second recording %s kept at Twilio only",
                    call_sid,
                    fields.get("recording_sid"),
                )
                continue
            setattr(row, name, value)
        try:
            db.session.flush()
            # What the write sets off, in its transaction: stored together or not at all.
            if created and not alerted:
                alerts.queue_new(row)
            if new_recording and not row.audio_type:
                recordings.COPY_RECORDING.enqueue(
                    request_id=row.id, recording_sid=row.recording_sid
                )
            if completing and not alerted:
                alerts.due_now(row)
            db.session.commit()
            return row
        except IntegrityError:
            # Another process inserted this CallSid (or the reference collided): try again.
            db.session.rollback()
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def save_or_keep(call_sid: str, **fields: Any) -> CallbackRequest | None:
    """Save, or keep the step in the fallback and return None when the database cannot take it."""
    try:
        return save(call_sid, **fields)
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        fallback.keep({"call_sid": call_sid, **fields}, exc)
        return None


def mark_urgent(reference: str, call_sid: str) -> bool:
    """Mark the request urgent (a hearing within 7 days, a transfer or deportation soon) and
    re-alert staff who were already alerted; False (logged) when the database cannot take it.

    Bond-denial next steps are time-limited, so an urgent request says so in the first word of
    its staff alert and sorts first on the dashboard. The caller answers after the request is
    complete, when its alerts may already have gone: `alerts.queue_urgent` decides.
    """
    try:
        row = db.session.scalar(sa.select(CallbackRequest).filter_by(reference=reference))
        if row is None:
            db.session.rollback()
            current_app.logger.error(
                "call %s: urgent request %s not found; staff must be told", call_sid, reference
            )
            return False
        row.urgent = True
        alerts.queue_urgent(row)
        db.session.commit()
        return True
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error(
            "call %s: could not mark request %s urgent: %s", call_sid, reference, jobs.reason(exc)
        )
        return False


def add_message(
    call_sid: str, request_id: int, caller_number: str | None, language: str, **fields: Any
) -> None:
    """Store a message added by calling again on request `request_id`, once per call (the
    `<Record>` action and the status callback may both bring it, in any order, more than once);
    queue its copy and its alerts. If the database cannot take it, it is kept by the fallback as
    a request of its own, which staff see beside the first: nothing a caller said is lost."""
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
                    alerts.queue_added(request_id, row.id)
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
        save_or_keep(
            call_sid,
            reference=references.take(call_sid),
            caller_number=caller_number,
            step="recorded",
            language=language,
            **fields,
        )


def text_offer_allowed(number: str | None) -> bool:
    """Whether to offer the reference by text to the caller at `number`: texts can be sent, the
    number policy allows texting it (`messaging/policy.py`), and today's TEXTS_PER_DAY are not
    all used (then the alert recipients are told, once that day). A failing database: no offer
    (the text could not be queued anyway)."""
    if not sms.enabled() or not policy.for_texts(number).allowed:
        return False
    try:
        if caps.texts_left_today() > 0:
            db.session.commit()
            return True
        tell_text_cap_reached()
        db.session.commit()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error("could not count today's texts: %s", jobs.reason(exc))
    return False


def text_reference(reference: str, to: str, call_sid: str) -> sms.TextQueued:
    """Queue the text of `reference` to `to` (`sms.py` sends it): QUEUED; ALREADY when `to` got
    a reference text in the last 24 hours; FAILED when it cannot be (the policy refuses the
    number, today's texts are used up, no such request yet, or the database fails), so the
    caller is told to write it down instead. The text is counted (`caps.mark`) with its job.

    The job key is the request and the call: Twilio's duplicate webhooks change nothing.
    """
    if not policy.for_texts(to).allowed:
        return sms.TextQueued.FAILED
    try:
        row = db.session.scalar(sa.select(CallbackRequest).filter_by(reference=reference))
        if row is None or row.erased_at is not None:
            db.session.rollback()
            current_app.logger.warning("no request %s to text (call %s)", reference, call_sid)
            return sms.TextQueued.FAILED
        key = sms.REFERENCE_SMS.job_key(request_id=row.id, call_sid=call_sid)
        if db.session.scalar(sa.select(jobs.Job.id).filter_by(key=key)) is not None:
            db.session.rollback()
            return sms.TextQueued.QUEUED  # Twilio posted the key press twice: queued already
        if caps.texted_recently(to):
            db.session.rollback()
            return sms.TextQueued.ALREADY
        if caps.texts_left_today() <= 0:
            tell_text_cap_reached()
            db.session.commit()
            return sms.TextQueued.FAILED
        # The number is looked up when sending (`sms.recipient`): never kept in a job row.
        sms.REFERENCE_SMS.enqueue(request_id=row.id, call_sid=call_sid)
        caps.mark(caps.TEXT, to)
        if row.sms_status is None:
            row.sms_status = "queued"
        db.session.commit()
        return sms.TextQueued.QUEUED
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error(
            "could not queue the reference text for call %s: %s", call_sid, jobs.reason(exc)
        )
        return sms.TextQueued.FAILED


def tell_text_cap_reached() -> None:
    """Queue, once per office day, a notice to the alert recipients that today's texts are used
    up (in the current transaction). A day of ordinary calls does not reach it: SMS pumping
    might."""
    day = caps.office_date().isoformat()
    current_app.logger.warning("TEXTS_PER_DAY reached on %s: the text is no longer offered", day)
    for channel, recipient in alerts.recipients():
        sms.CAP_NOTICE[channel].enqueue(recipient=recipient, day=day)


def record_text_status(request_id: int, sid: str, status: str, error_code: str | None) -> None:
    """Record Twilio's status of the text `sid`; an older status or another message is
    ignored (Twilio does not promise the order of its callbacks)."""
    if status not in sms.ORDER:
        return
    row = db.session.get(CallbackRequest, request_id)
    if row is None or row.erased_at is not None or (row.sms_sid and sid != row.sms_sid):
        db.session.rollback()
        return  # another message, or a request since deleted or erased
    if row.sms_status not in sms.ORDER or sms.ORDER[status] >= sms.ORDER[row.sms_status]:
        row.sms_status = status
        row.sms_sid = sid or row.sms_sid
        if error_code:
            row.sms_error = f"Twilio {error_code}"
    db.session.commit()


def count_call(call_sid: str, language: str, from_number: str) -> None:
    """Count a call for the staff chart, in the request (a killed process loses only its own
    call); kept in the fallback when the database cannot take it."""
    try:
        insert_call(call_sid, language, from_number)
        db.session.commit()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        lookup.database_failed()
        fallback.keep(
            {
                "call_sid": call_sid,
                "kind": "call",
                "language": language,
                "from_number": from_number,
            },
            exc,
        )


def insert_call(call_sid: str, language: str, from_number: str, **extra: Any) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = sa.dialects.postgresql.insert if dialect == "postgresql" else sa.dialects.sqlite.insert
    if erasure.is_erased(call_sid):
        from_number = ""  # counted for the chart, its number erased for good
    db.session.execute(
        insert(Call)
        .values(
            call_sid=call_sid[:64],
            language=language[:2],
            from_number=(from_number or "")[:255],
            **extra,
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
    )


def database_answers() -> bool:
    try:
        db.session.execute(sa.select(1))
        db.session.commit()
        return True
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return False


def replay(entries: Iterable[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
    """Store kept entries, each on its own; entries already stored change nothing.

    Return (stored, failed, refused): one bad entry (a line cut short in a log dump) must not
    stop the others. Entries of one call are applied in order, the one that carries the
    reference the caller heard first. Raises SQLAlchemyError if the database itself is down.
    """
    entries = [dict(e) for e in entries]
    alerted = {e["call_sid"] for e in entries if e.get("alerted")}
    # Stable: a call's entries keep their order, except that the reference comes first.
    entries.sort(key=lambda e: 0 if e.get("reference") else 1)
    stored = failed = 0
    refused: list[dict[str, Any]] = []
    for entry in entries:
        call_sid = entry["call_sid"]
        if entry.get("alerted"):
            continue
        try:
            if entry.get("kind") == "call":
                created = fallback_time(entry)
                insert_call(
                    call_sid,
                    entry.get("language", ""),
                    entry.get("from_number", ""),
                    **({"created_at": created} if created else {}),
                )
                db.session.commit()
            else:
                fields = {k: v for k, v in entry.items() if k in FIELDS | {"reference"}}
                save(call_sid, alerted=call_sid in alerted, **fields)
            stored += 1
        except (sa.exc.IntegrityError, sa.exc.DataError, TypeError, ValueError) as exc:
            db.session.rollback()
            current_app.logger.error(
                "could not replay entry for call %s: %s", call_sid, jobs.reason(exc)
            )
            failed += 1
            refused.append(entry)
        except sa.exc.SQLAlchemyError:
            # Not this entry's fault (the database went down again, a table is missing until a
            # migration runs): the whole file stays as it is for the next try.
            db.session.rollback()
            raise
    return stored, failed, refused


def fallback_time(entry: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(entry["at"]) if entry.get("at") else None
    except ValueError:
        return None
