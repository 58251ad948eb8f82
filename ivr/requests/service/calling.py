"""Call a family back through the hotline's own number, from the dashboard's "Call back" button.

A family often does not answer an unknown mobile, and a staff member's own number should not be
given away. So the button queues a job; the worker asks Twilio to ring the staff member's phone
(their profile's number), and `voice/staffcall.py` whispers which request it is, waits for 1, and
dials the family with CALLBACK_FROM_NUMBER as caller ID (the number callers are told the call-back
comes from; best the hotline's own), so they see a number they know. The outcome comes
back from `<Dial>`'s action and lands on the request's history.

This module is the request service's part for call-backs: `start_call` records the attempt and
queues its job, `place_call` is the job, and `outcome` records how it ended. The job is `once`:
a worker that dies mid-request to Twilio must not ring a phone twice. The page
never talks to Twilio itself (it shares the web processes with the callers' webhooks). These calls
are not recorded: a lawyer's call with a client's family is privileged, and recording it would
need every party's consent (README, "Call-backs are not recorded").

Only numbers the number policy lets the hotline call are dialled (`messaging/policy.py`:
CALLBACK_COUNTRIES, never premium-rate or satellite numbers): checked when the button is drawn,
when the job is placed and when the family's leg is dialled (`lookup.family_number`). The request
card says why a number cannot be called, and its country (security.md M1: a typed +882 number
was dialled).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.db import db
from ivr.edge import logmask
from ivr.messaging import policy
from ivr.messaging.gateway import MaybeSent, Refused, Unreachable, gateway
from ivr.requests import history, lookup
from ivr.requests.lookup import attempt_target
from ivr.requests.models import Call, CallbackRequest
from ivr.settings import settings

RING_STAFF_SECONDS = 25  # the staff phone rings this long before its voicemail could answer


def number_label(row: CallbackRequest) -> str:
    """Which number a call-back dials, in words: history is kept for good, numbers are not."""
    return "the callback number" if row.callback_number else "the calling number"


def unavailable(row: CallbackRequest, user: StaffUser) -> str | None:
    """Why the Call back button cannot work for this request and person, or None."""
    return unavailable_because(lookup.family_verdict(row), user)


def unavailable_for(number: str | None, user: StaffUser) -> str | None:
    return unavailable_because(policy.for_calls(number), user)


def unavailable_because(verdict: policy.Verdict, user: StaffUser) -> str | None:
    config = settings()
    if not (config.callback_from_number and config.twilio_account_sid and config.public_url):
        return "Call back needs CALLBACK_FROM_NUMBER, TWILIO_ACCOUNT_SID and PUBLIC_URL set."
    if verdict.refusal is policy.Refusal.INVALID:
        return "No number to call."
    if not verdict.allowed:
        return f"The hotline will not call it: {verdict.why}"
    if not user.phone:
        return "Add your phone number on your profile to call back."
    return None


def public_url(endpoint: str, **values: Any) -> str:
    path = current_app.url_map.bind("").build(endpoint, values)
    return settings().public_url.rstrip("/") + path


def start_call(row: CallbackRequest, user: StaffUser) -> history.RequestEvent:
    """Record a call-back attempt, take the request, and queue the call (`place_call` places
    it from the worker; a page never talks to Twilio). Commits."""
    # Which number, not the number: history is kept for good, numbers are not (issue 22).
    attempt = history.add(row.id, "call", user.username, text=f"to {number_label(row)}")
    history.claim(row.id, user.username)  # calling takes it, unless a colleague already has
    STAFF_CALL.enqueue(attempt_id=attempt.id)
    db.session.commit()
    return attempt


def start_missed_call(call: Call, user: StaffUser) -> history.RequestEvent:
    """The same for a missed call (no request): the number it came from. Commits."""
    attempt = history.add(
        None,
        "call",
        user.username,
        call_id=call.id,
        text="to the calling number",
    )
    STAFF_CALL.enqueue(attempt_id=attempt.id)
    db.session.commit()
    return attempt


def outcome(
    attempt_id: int,
    result: str,
    *,
    duration: int | None = None,
    text: str = "",
    actor: str | None = None,
) -> bool:
    """Record how a call-back attempt ended (once: a repeated webhook records nothing) and move
    the request's status on. Commits. False when this attempt already had its outcome."""
    attempt = db.session.get(history.RequestEvent, attempt_id)
    if attempt is None or attempt.kind != "call":
        return False
    try:
        history.add(
            attempt.request_id,
            "outcome",
            actor or attempt.actor,
            call_id=attempt.call_id,
            attempt_id=attempt_id,
            outcome=result,
            duration=duration,
            text=logmask.mask(text),  # Twilio's errors quote numbers: never kept in history
        )
        if attempt.request_id is None:  # a missed call has no status
            db.session.commit()
            return True
        status = db.session.scalar(
            sa.select(CallbackRequest.status).where(CallbackRequest.id == attempt.request_id)
        )
        if result == "reached" and status in history.OPEN:
            history.move_status(attempt.request_id, status, "reached", None, "call-back answered")
        elif result in history.DIALLED and status == "new":
            history.move_status(
                attempt.request_id, status, "trying", None, "call-back not answered"
            )
        db.session.commit()
        return True
    except sa.exc.IntegrityError:  # the same outcome arrived twice at once
        db.session.rollback()
        return False


def place_call(payload: dict[str, Any]) -> None:
    attempt = db.session.get(history.RequestEvent, payload["attempt_id"])
    if attempt is None:
        db.session.commit()
        return
    number = attempt_target(attempt)[0]
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=attempt.actor))
    staff_phone = user.phone if user else None
    attempt_id = attempt.id
    db.session.commit()  # hold no connection while Twilio answers
    if not staff_phone or number is None:
        outcome(attempt_id, "not-connected", text="no staff phone or family number")
        raise jobs.Permanent("no staff phone or family number")
    config = settings()
    try:
        call = gateway().place_call(
            to=staff_phone,
            from_=config.callback_from_number,
            url=public_url("voice.staffcall.answer", attempt=attempt_id),
            status_callback=public_url("voice.staffcall.staff_status", attempt=attempt_id),
            timeout=RING_STAFF_SECONDS,
            record=False,
        )
    except Unreachable:
        raise  # Twilio did not take it: try again (unless it has become too late)
    except Refused as exc:
        outcome(attempt_id, "refused", text=exc.short[:200])
        raise
    except MaybeSent:
        outcome(attempt_id, "not-connected", text="no answer from Twilio")
        raise
    current_app.logger.info("call-back attempt %s: staff leg %s", attempt_id, call.sid)


def not_placed_late(payload: dict[str, Any]) -> None:
    """A call-back the worker could not start within START_WITHIN of the press is not placed
    later (the staff member has moved on; a phone ringing an hour later is a surprise): the
    request's history says so."""
    outcome(
        payload["attempt_id"],
        "not-placed",
        text=f"not started within {START_WITHIN // 60} minutes of the press; press Call back again",
    )


START_WITHIN = 120  # seconds after the press past which a call-back is dropped, not placed late

# At most once: a worker that dies mid-request to Twilio must not ring a phone twice.
STAFF_CALL = jobs.JobKind(
    "staff-call",
    place_call,
    key=lambda attempt_id: f"staff-call:{attempt_id}",
    payload=("attempt_id",),
    once=True,
    max_attempts=3,
    time_limit=60,
    stale_after=START_WITHIN,
    on_stale=not_placed_late,
)
