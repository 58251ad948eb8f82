"""Store callback requests idempotently, queue their recording copies, replay the fallback.

`save` is the one way a request is written: keyed by CallSid, it creates or updates the row, so a
duplicated or out-of-order Twilio callback never makes a second request. A new recording's copy
job is queued in the same transaction (see `jobs.py`, `recordings.py`). When the database fails,
what the caller gave is kept by `fallback.py` and the call goes on as on a good day.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from blinker import Namespace
from flask import current_app, g, has_request_context
from sqlalchemy.exc import IntegrityError

from ivr.background import jobs
from ivr.db import db
from ivr.requests import erasure, fallback, recordings, references
from ivr.requests.models import Call, CallbackRequest

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
signals = Namespace()
# Sent once per request, inside the transaction that creates it, so receivers (alerts) can add
# their own rows to the same commit: the request and its alerts are stored together or not at all.
request_created = signals.signal("callback-request-created")
# Sent inside the transaction in which the caller finishes the last step (confirmation), so
# receivers can act on a request whose callback number and A-number are now final.
request_completed = signals.signal("callback-request-completed")

STEPS = ("recorded", "number", "complete")


def save(call_sid: str, *, alerted: bool = False, **fields: Any) -> CallbackRequest:
    """Create or update the request of `call_sid`; raise SQLAlchemyError if the database fails.

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
                language=fields.get("language") or current_app.config["DEFAULT_LANGUAGE"],
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
            if created and not alerted:
                request_created.send(current_app._get_current_object(), request=row)  # type: ignore[attr-defined]
            if new_recording and not row.audio_type:
                recordings.COPY_RECORDING.enqueue(
                    request_id=row.id, recording_sid=row.recording_sid
                )
            if completing and not alerted:
                request_completed.send(current_app._get_current_object(), request=row)  # type: ignore[attr-defined]
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


def count_call(call_sid: str, language: str, from_number: str) -> None:
    """Count a call for the staff chart, in the request (a killed process loses only its own
    call); kept in the fallback when the database cannot take it."""
    try:
        insert_call(call_sid, language, from_number)
        db.session.commit()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        database_failed()
        fallback.keep(
            {
                "call_sid": call_sid,
                "kind": "call",
                "language": language,
                "from_number": from_number,
            },
            exc,
        )


def database_failed() -> None:
    """Note, for the rest of this webhook, that the database failed: lookups that only make a
    call better (`voice/again.py`) are then skipped rather than make the caller wait again."""
    if has_request_context():
        g.database_failed = True


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


def fallback_time(entry: dict[str, Any]):
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(entry["at"]) if entry.get("at") else None
    except ValueError:
        return None
