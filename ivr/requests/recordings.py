"""Copy each callback recording from Twilio into the database, then delete it at Twilio: jobs.

Staff must be able to play a message whatever Twilio keeps, so the audio is copied with the
account's credentials (Twilio may enforce HTTP auth on media URLs). Both steps are jobs (see
`jobs.py`): queued with the request, run by the worker, retried with back-off, and never holding a
database connection while Twilio answers (or does not).
"""

from __future__ import annotations

import requests
import sqlalchemy as sa
from twilio.base.exceptions import TwilioRestException

from ivr.background import jobs
from ivr.db import db
from ivr.messaging.twilio_api import client
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.settings import settings

TWILIO_API = "https://api.twilio.com/"
TIMEOUT = (5, 30)  # seconds to connect, and between bytes of the answer


def credentials() -> tuple[str, str]:
    config = settings()
    if not config.twilio_account_sid:
        raise jobs.Permanent("TWILIO_ACCOUNT_SID is not set: recordings cannot be copied")
    return config.twilio_account_sid, config.twilio_auth_token


def download(url: str) -> bytes:
    """The recording's MP3 from Twilio; raise Permanent for answers a retry will not change."""
    if not url.startswith(TWILIO_API):
        # Never send the account's credentials anywhere but Twilio's API.
        raise jobs.Permanent(f"refusing recording URL {url}")
    reply = requests.get(url + ".mp3", auth=credentials(), timeout=TIMEOUT)
    if reply.status_code in (401, 403):
        raise jobs.Permanent(f"Twilio refused the credentials ({reply.status_code})")
    # 404: a recording is sometimes not ready the moment its callback arrives; retried.
    reply.raise_for_status()
    return reply.content


def copy(model: type[CallbackRequest] | type[RequestMessage], row_id: int) -> None:
    """Copy one recording (a request's, or a message added to it) into its row, then queue the
    deletion of Twilio's copy. Holds no database connection while Twilio answers."""
    row = db.session.execute(
        sa.select(model.recording_url, model.recording_sid, model.audio_type).where(
            model.id == row_id
        )
    ).first()
    db.session.commit()
    if row is None or row.audio_type or not row.recording_url:
        return  # deleted, already copied (a duplicate job), or nothing to copy
    audio = download(row.recording_url)
    db.session.execute(
        sa.update(model)
        # Not if the row was erased meanwhile (retention.erase clears recording_url).
        .where(model.id == row_id, model.audio_type.is_(None), model.recording_url.is_not(None))
        .values(audio=audio, audio_type="audio/mpeg")
        .execution_options(synchronize_session=False)
    )
    if not settings().keep_recordings_at_twilio:
        jobs.enqueue(
            "delete-recording",
            f"delete-recording:{row.recording_sid}",
            {"recording_sid": row.recording_sid},
        )
    db.session.commit()


@jobs.handler("copy-recording")
def copy_recording(payload: dict) -> None:
    copy(CallbackRequest, payload["request_id"])


@jobs.handler("copy-message")
def copy_message(payload: dict) -> None:
    """A message added to an open request (`voice/again.py`)."""
    copy(RequestMessage, payload["message_id"])


@jobs.handler("delete-recording")
def delete_recording(payload: dict) -> None:
    """Delete Twilio's copy once ours is stored; a recording already gone is fine."""
    try:
        client().recordings(payload["recording_sid"]).delete()
    except TwilioRestException as exc:
        if exc.status == 404:
            return
        if exc.status < 500 and exc.status != 429:
            raise jobs.Permanent(f"Twilio {exc.status} {exc.code}: {exc.msg}") from None
        raise


def queue_missing() -> int:
    """Queue a copy for every request whose recording is not copied and has no copy job yet
    (rows from before the queue existed); a failed job is queued again. Return how many."""
    rows = db.session.execute(
        sa.select(CallbackRequest.id, CallbackRequest.recording_sid).where(
            CallbackRequest.audio_type.is_(None), CallbackRequest.recording_url.is_not(None)
        )
    ).all()
    for request_id, sid in rows:
        key = f"copy-recording:{sid}"
        db.session.execute(
            sa.update(jobs.Job)
            .where(jobs.Job.key == key, jobs.Job.status == "failed")
            .values(status="pending", attempts=0, run_at=sa.func.now(), finished_at=None)
            .execution_options(synchronize_session=False)
        )
        jobs.enqueue("copy-recording", key, {"request_id": request_id})
    db.session.commit()
    return len(rows)
