"""Store callback requests idempotently, copy their recordings, and replay the journal.

`save` is the one way a request is written: keyed by CallSid, it creates or updates the row, so a
duplicated or out-of-order Twilio callback never makes a second request. When the database fails,
the caller's data goes to the journal (see `journal.py`) and the caller is still looked after.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import requests
import sqlalchemy as sa
from blinker import Namespace
from flask import current_app
from sqlalchemy.exc import IntegrityError

from . import journal
from .db import db
from .models import CallbackRequest

FIELDS = {
    "language", "caller_number", "callback_number", "a_number", "step", "recording_sid",
    "recording_url", "recording_duration",
}
signals = Namespace()
# Sent once per request, inside the transaction that creates it, so receivers (alerts) can add
# their own rows to the same commit: the request and its alerts are stored together or not at all.
request_created = signals.signal("callback-request-created")
# Sent inside the transaction in which the caller finishes the last step (confirmation), so
# receivers can act on a request whose callback number and A-number are now final.
request_completed = signals.signal("callback-request-completed")

TWILIO_API = "https://api.twilio.com/"
STEPS = ("recorded", "number", "complete")


def new_reference() -> str:
    return f"{secrets.randbelow(900000) + 100000}"


def save(call_sid: str, **fields: Any) -> CallbackRequest:
    """Create or update the request of `call_sid`; raise SQLAlchemyError if the database fails."""
    unknown = set(fields) - FIELDS - {"reference"}
    if unknown:
        raise TypeError(f"unknown fields {sorted(unknown)}")
    for attempt in range(5):
        row = db.session.scalar(sa.select(CallbackRequest).filter_by(call_sid=call_sid))
        if row is None:
            row = CallbackRequest(
                call_sid=call_sid,
                reference=fields.get("reference") or new_reference(),
                # A replayed journal may hold only a later step: the row still needs a language.
                language=fields.get("language") or current_app.config["DEFAULT_LANGUAGE"],
            )
            db.session.add(row)
        created = row.id is None
        completing = fields.get("step") == "complete" and row.step != "complete"
        for name, value in fields.items():
            if name == "reference" or value is None:
                continue
            if name == "step" and row.step and STEPS.index(value) < STEPS.index(row.step):
                continue  # a late, replayed or repeated step never moves a request back
            if name.startswith("recording_") and row.recording_sid and (
                fields.get("recording_sid") not in (None, row.recording_sid)
            ):
                # One request per call, and its first message stays: a second recording is
                # logged (Twilio keeps it) rather than replacing what staff will hear.
                current_app.logger.warning("call %s: second recording %s kept at Twilio only",
                                           call_sid, fields.get("recording_sid"))
                continue
            setattr(row, name, value)
        try:
            if created:
                db.session.flush()
                request_created.send(current_app._get_current_object(), request=row)
            if completing:
                db.session.flush()
                request_completed.send(current_app._get_current_object(), request=row)
            db.session.commit()
            return row
        except IntegrityError:
            # Another process inserted this CallSid (or the reference collided): try again.
            db.session.rollback()
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def save_or_journal(call_sid: str, **fields: Any) -> CallbackRequest | None:
    """Save, or journal the data and return None when the database cannot take it."""
    try:
        return save(call_sid, **fields)
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("database failed storing callback for call %s", call_sid)
        journal.write({"call_sid": call_sid, **fields})
        return None


def replay(entries) -> tuple[int, int]:
    """Store journal entries, each on its own; entries already stored change nothing.

    Return (stored, failed): one bad entry (a line cut short in a log dump) must not stop the
    others from being recovered.
    """
    stored = failed = 0
    for entry in entries:
        call_sid = entry.pop("call_sid")
        fields = {k: v for k, v in entry.items() if k in FIELDS | {"reference"}}
        try:
            save(call_sid, **fields)
            stored += 1
        except (sa.exc.SQLAlchemyError, TypeError, ValueError):
            db.session.rollback()
            current_app.logger.exception("could not replay journal entry for call %s", call_sid)
            failed += 1
    return stored, failed


_copying: set[int] = set()
_copying_lock = threading.Lock()


def copy_later(app, request_id: int) -> threading.Thread:
    """Copy a recording in a background thread: neither Twilio's status callback nor the web
    worker should wait on a media download. A copy cut short (a restart) is made on first play
    in the dashboard, or by `ivr callbacks copy-recordings`."""

    def run() -> None:
        with _copying_lock:
            if request_id in _copying:  # a duplicate status callback: one copy is enough
                return
            _copying.add(request_id)
        try:
            with app.app_context():
                row = db.session.get(CallbackRequest, request_id)
                if row is not None:
                    fetch_recording(row)
        except Exception:  # a thread's error would vanish: log it; the copy can be redone
            app.logger.exception("recording copy for request %s failed", request_id)
        finally:
            with _copying_lock:
                _copying.discard(request_id)

    thread = threading.Thread(target=run, name="ivr-recording-copy", daemon=True)
    thread.start()
    threads = app.extensions.setdefault("ivr.copy_threads", [])
    threads[:] = [t for t in threads if t.is_alive()] + [thread]
    return thread


def fetch_recording(row: CallbackRequest) -> bool:
    """Copy the recording's audio into the database with the account's credentials.

    Twilio may enforce HTTP auth on media URLs, so the app always authenticates; the browser only
    ever gets audio through the staff pages. Return True when the copy is stored.
    """
    config = current_app.config
    if row.audio_type or not row.recording_url:
        return bool(row.audio_type)
    if not row.recording_url.startswith(TWILIO_API):
        # Never send the account's credentials anywhere but Twilio's API.
        current_app.logger.error("refusing recording URL %s", row.recording_url)
        return False
    auth = (config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"])
    if not auth[0]:
        current_app.logger.warning("TWILIO_ACCOUNT_SID unset: recording %s not copied",
                                   row.recording_sid)
        return False
    try:
        reply = requests.get(row.recording_url + ".mp3", auth=auth, timeout=10)
        reply.raise_for_status()
    except requests.RequestException:
        current_app.logger.exception("could not fetch recording %s", row.recording_sid)
        return False
    row.audio = reply.content
    row.audio_type = "audio/mpeg"
    db.session.commit()
    if not config["KEEP_RECORDINGS_AT_TWILIO"]:
        try:
            requests.delete(row.recording_url + ".json", auth=auth, timeout=10).raise_for_status()
        except requests.RequestException:
            current_app.logger.warning("copied but could not delete recording %s at Twilio",
                                       row.recording_sid)
    return True
