"""Copy each callback recording from Twilio into the database, then delete it at Twilio: jobs.

Staff must be able to play a message whatever Twilio keeps, so the audio is copied with the
account's credentials (Twilio may enforce HTTP auth on media URLs) through the app's one Twilio
gateway (`messaging/gateway.py`: its timeouts and its error rules). Both steps are jobs (see
`jobs.py`): queued with the request, run by the worker, retried with back-off, and never holding a
database connection while Twilio answers (or does not).

A copy that failed for good stays failed: the dashboard says the recording is not copied, the log
said why once, and `ivr requests copy --retry-failed` queues such copies again when someone has
fixed the cause. Housekeeping queues only copies that were never queued.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db
from ivr.messaging.gateway import gateway
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.settings import settings


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
    audio = gateway().download_recording(row.recording_url)
    db.session.execute(
        sa.update(model)
        # Not if the row was erased meanwhile (service/handling.erase clears recording_url).
        .where(model.id == row_id, model.audio_type.is_(None), model.recording_url.is_not(None))
        .values(audio=audio, audio_type="audio/mpeg")
        .execution_options(synchronize_session=False)
    )
    if not settings().keep_recordings_at_twilio:
        DELETE_RECORDING.enqueue(recording_sid=row.recording_sid)
    db.session.commit()


def copy_recording(payload: dict[str, Any]) -> None:
    copy(CallbackRequest, payload["request_id"])


def copy_message(payload: dict[str, Any]) -> None:
    """A message added to an open request (`voice/again.py`)."""
    copy(RequestMessage, payload["message_id"])


def delete_recording(payload: dict[str, Any]) -> None:
    """Delete Twilio's copy once ours is stored; a recording already gone is fine."""
    gateway().delete_recording(payload["recording_sid"])


# At least once (copying twice changes nothing), retried through about ten minutes of outage;
# after that `ivr requests copy-recordings` retries by hand.
COPY_RECORDING = jobs.JobKind(
    "copy-recording",
    copy_recording,
    key=lambda recording_sid, **_: f"copy-recording:{recording_sid}",
    payload=("request_id",),
    max_attempts=8,
    time_limit=100,  # a two-minute MP3 over a slow link
)
COPY_MESSAGE = jobs.JobKind(
    "copy-message",
    copy_message,
    key=lambda recording_sid, **_: f"copy-message:{recording_sid}",
    payload=("message_id",),
    max_attempts=8,
    time_limit=100,
)
DELETE_RECORDING = jobs.JobKind(
    "delete-recording",
    delete_recording,
    key=lambda recording_sid: f"delete-recording:{recording_sid}",
    payload=("recording_sid",),
    max_attempts=8,
    time_limit=60,
)


def queue_missing(*, retry_failed: bool = False) -> int:
    """Queue a copy for every request whose recording is not copied and has no copy job yet (rows
    from before the queue existed); with `retry_failed` (by hand only), failed copies are queued
    again too. Return how many requests lack their copy."""
    rows = db.session.execute(
        sa.select(CallbackRequest.id, CallbackRequest.recording_sid).where(
            CallbackRequest.audio_type.is_(None), CallbackRequest.recording_url.is_not(None)
        )
    ).all()
    for request_id, sid in rows:
        queue_copy(request_id, sid, retry_failed=retry_failed)
    db.session.commit()
    return len(rows)


def queue_copy(request_id: int, recording_sid: str | None, *, retry_failed: bool = False) -> None:
    """Queue the copy of one request's recording (in the current transaction); with
    `retry_failed`, a copy that failed for good is queued again, its attempts from zero (by hand
    only: `ivr callbacks copy-recordings`, or staff's Retry copy)."""
    if retry_failed:
        failed = db.session.scalar(
            sa.select(jobs.Job.id).where(
                jobs.Job.key == COPY_RECORDING.job_key(recording_sid=recording_sid),
                jobs.Job.status == jobs.JobStatus.failed,
            )
        )
        if failed is not None:
            jobs.move(failed, jobs.JobStatus.failed, jobs.JobStatus.pending)
    COPY_RECORDING.enqueue(request_id=request_id, recording_sid=recording_sid)
