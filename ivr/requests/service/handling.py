"""What staff do with a request, and what each action sets off: one function per action.

Each function writes the request's rows (its history is append-only: `history.py`), queues what
the action calls for (a call-back's job) and commits, so a view only calls it and says what
happened. Status moves are conditional (`history.move_status`): two staff saving at once never
silently undo each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from ivr.accounts import audit
from ivr.db import db, utcnow
from ivr.requests import erasure, history, recordings
from ivr.requests.models import CallbackRequest, RequestMessage

LISTEN_GAP = dt.timedelta(minutes=30)  # one "listened" per person per half hour, not per range
# What erasing a request clears (`retention.py` says when): every personal field and the audio.
ERASED = dict(
    caller_number="",
    callback_number=None,
    a_number=None,
    recording_url=None,
    audio=None,
    audio_type=None,
    sms_error=None,  # Twilio's words on a text that failed may repeat the number
)

ERASE_REASONS = {"delete": "", "purge": "its retention period was over"}


@dataclass
class Saved:
    """What a save of a request's card did, for the page to say."""

    meanwhile: list[history.RequestEvent]  # what colleagues did since the card was loaded
    said: list[str] = field(default_factory=list)  # "note added", "status handled"
    refused: bool = False  # the status had moved meanwhile: the wanted one was not applied


def save_card(
    row: CallbackRequest, actor: str, *, note: str, seen_status: str, wanted: str, seen: int
) -> Saved:
    """Add a note and/or change the status, without undoing what a colleague did since event
    `seen`; saving is also staff's word that they have seen the request's added messages."""
    saved = Saved([e for e in history.events(row.id, after=seen) if e.actor != actor])
    if note:
        history.add(row.id, "note", actor, text=note)
        saved.said.append("note added")
    if wanted != seen_status:
        if history.move_status(row.id, seen_status, wanted, actor):
            saved.said.append(f"status {history.STATUS_LABELS[wanted].lower()}")
        else:
            saved.refused = True
    db.session.execute(
        sa.update(RequestMessage)
        .where(RequestMessage.request_id == row.id)
        .values(is_new=False)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if saved.refused:
        db.session.refresh(row)  # the status it has now, for the page to say
    return saved


NOTE_MAX = 4000


def note_missed(call_id: int, actor: str, text: str) -> bool:
    """Add a note to a missed call (append-only, as a request's notes). Commits; False when the
    text is empty."""
    text = text.strip()[:NOTE_MAX]
    if not text:
        return False
    history.add(None, "note", actor, call_id=call_id, text=text)
    db.session.commit()
    return True


def mark_missed(call_id: int, actor: str, *, done: bool) -> bool:
    """Mark a missed call done (folded away, not counted) or open again. Commits; False when it
    already was, so a second press from a stale page adds no line to the history."""
    summary = history.summaries([call_id], by="call")[call_id]
    if summary.done == done:
        return False
    history.add(None, "done" if done else "reopen", actor, call_id=call_id)
    db.session.commit()
    return True


def claim(request_id: int, username: str) -> str | None:
    """Take the request unless a colleague has; who has it now. Commits."""
    holder = history.claim(request_id, username)
    db.session.commit()
    return holder


def release(request_id: int, username: str) -> bool:
    """Let go of a request one holds (never a colleague's); False if it was not theirs.
    Commits."""
    gone = history.release(request_id, username)
    db.session.commit()
    return gone


def retry_copy(row: CallbackRequest, username: str) -> bool:
    """Staff's Retry copy: queue the copy of the request's recording from Twilio again, a failed
    one too (what `ivr callbacks copy-recordings` does for all). False when there is nothing to
    copy (copied meanwhile, erased). Commits."""
    if row.audio_type or not row.recording_url:
        return False
    recordings.queue_copy(row.id, row.recording_sid, retry_failed=True)
    history.add(row.id, "copy", username)
    db.session.commit()
    return True


def note_listen(
    request_id: int, username: str, *, text: str = "", window: dt.timedelta = LISTEN_GAP
) -> None:
    """Record who listened: the first fetch of any byte range per person and recording (`text`
    names an added message) within `window` (a player fetches many ranges, from anywhere)."""
    recent = db.session.scalar(
        sa.select(history.RequestEvent.id)
        .where(
            history.RequestEvent.request_id == request_id,
            history.RequestEvent.kind == "listen",
            history.RequestEvent.actor == username,
            history.RequestEvent.text == text,
            history.RequestEvent.created_at > utcnow() - window,
        )
        .limit(1)
    )
    if recent is None:
        history.add(request_id, "listen", username, text=text)
        db.session.commit()


def note_export(request_ids: list[int], username: str) -> None:
    """Record on each request's history that it went out in a CSV. Commits."""
    for request_id in request_ids:
        history.add(request_id, "export", username)
    db.session.commit()


def erase(request_ids: list[int], actor: str, action: str = "delete") -> int:
    """Erase the personal data and recordings of these requests now, queue the deletion of
    Twilio's copies, and audit each one (an admin's "delete", or the retention purge). Commits.
    Returns how many requests were erased."""
    if not request_ids:
        return 0
    rows = db.session.execute(
        sa.select(
            CallbackRequest.id,
            CallbackRequest.reference,
            CallbackRequest.recording_sid,
            CallbackRequest.status,
        ).where(CallbackRequest.id.in_(request_ids))
    ).all()
    db.session.execute(
        sa.update(CallbackRequest)
        .where(CallbackRequest.id.in_(request_ids))
        .values(**ERASED)
        .execution_options(synchronize_session=False)
    )
    # Staff notes are in the request's history: their words go, the fact of a note stays.
    db.session.execute(
        sa.update(history.RequestEvent)
        .where(
            history.RequestEvent.request_id.in_(request_ids), history.RequestEvent.kind == "note"
        )
        .values(text="")
        .execution_options(synchronize_session=False)
    )
    # Everything beyond the row: the calls' numbers, Twilio's words, jobs, the text at Twilio,
    # and the tombstones that keep it erased (`erasure.py`); before the messages go.
    call_sids = erasure.scrub(list(request_ids))
    # Messages added by calling again are recordings too: deleted with it.
    added = db.session.scalars(
        sa.select(RequestMessage.recording_sid).where(
            RequestMessage.request_id.in_(request_ids), RequestMessage.recording_sid.is_not(None)
        )
    ).all()
    db.session.execute(
        sa.delete(RequestMessage)
        .where(RequestMessage.request_id.in_(request_ids))
        .execution_options(synchronize_session=False)
    )
    for sid in added:
        recordings.DELETE_RECORDING.enqueue(recording_sid=sid)
    for row in rows:
        if row.recording_sid:
            # A no-op if Twilio's copy was deleted after ours was made (the same job key).
            recordings.DELETE_RECORDING.enqueue(recording_sid=row.recording_sid)
        audit.record(action, actor, request_id=row.id, reference=row.reference)
        # The request's own history says so too, and a family nobody can call back any more
        # (no number left) no longer counts as waiting: the request is closed.
        by = None if actor == audit.SYSTEM else actor
        history.add(row.id, "erase", by, text=ERASE_REASONS.get(action, ""))
        if row.status in history.OPEN:
            history.move_status(row.id, row.status, "handled", by, text="personal data deleted")
    db.session.commit()
    db.session.expire_all()
    erasure.after_commit(call_sids)  # this machine's fallback file, SQLite's WAL
    return len(rows)
