"""A call-back through the hotline: the staff member's leg, then the family's, both signed.

Twilio rings the staff member's phone (queued and placed by `requests/service/calling.py`); they
hear which request it is ("Call-back for reference 123 456, in Spanish. Press 1 to connect") in
STAFF_LANGUAGE. Pressing 1 dials the family with CALLBACK_FROM_NUMBER as caller ID: the number
they were told to expect. Requiring a key keeps the staff phone's voicemail from calling the
family. The Dial's action records the outcome on the request's history; the staff
leg's status callback records a call that never got as far as the family. Nothing is recorded
(`record="do-not-record"`): see the README.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.twiml import prompts, speak, twiml
from ivr.db import db
from ivr.requests import lookup
from ivr.requests.service import calling
from ivr.settings import settings

bp = Blueprint("staffcall", __name__, url_prefix="/staffcall")

FAMILY_RING_SECONDS = 30
# DialCallStatus → the outcome staff see ("answered": what Twilio sends with answerOnBridge).
DIAL_OUTCOMES = {
    "completed": "reached",
    "answered": "reached",
    "no-answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "canceled",
}


def goodbye(name: str) -> Response:
    response = VoiceResponse()
    speak(response, [prompts().line(settings().staff_language, name)])
    response.hangup()
    return twiml(response)


@bp.post("/<int:attempt>")
def answer(attempt: int):
    """Heard by the staff member who picks up: which request, in which language, press 1."""
    number, language, reference = lookup.call_back_target(attempt)
    response = VoiceResponse()
    if number is None:
        response.hangup()
        return twiml(response)
    staff = settings().staff_language
    p = prompts()
    if reference:
        lines = [p.line(staff, "staffcall_intro"), *p.digits(staff, reference, (3, 3))]
    else:
        lines = [p.line(staff, "staffcall_missed")]
    lines.append(p.line(staff, f"staffcall_lang_{language}"))
    with response.gather(
        num_digits=1, timeout=8, action=url_for("voice.staffcall.connect", attempt=attempt)
    ) as gather:
        speak(gather, lines)
    speak(response, [p.line(staff, "staffcall_no_key")])
    response.hangup()
    return twiml(response)


@bp.post("/<int:attempt>/connect")
def connect(attempt: int):
    """1 dials the family from the hotline's number; anything else ends the call."""
    number = lookup.call_back_target(attempt)[0]
    if request.form.get("Digits") != "1" or number is None:
        return goodbye("staffcall_no_key")
    response = VoiceResponse()
    dial = response.dial(
        caller_id=settings().callback_from_number,
        timeout=FAMILY_RING_SECONDS,
        action=url_for("voice.staffcall.done", attempt=attempt),
        record="do-not-record",
    )
    dial.number(number)
    return twiml(response)


@bp.post("/<int:attempt>/done")
def done(attempt: int):
    """Dial's action: the family's leg ended. Record how, then tell the staff member."""
    status = request.form.get("DialCallStatus", "")
    result = DIAL_OUTCOMES.get(status, "failed")
    duration = request.form.get("DialCallDuration", type=int)
    calling.outcome(
        attempt,
        result,
        duration=duration if result == "reached" else None,
        text="" if status in DIAL_OUTCOMES else status[:40],
    )
    return goodbye("staffcall_ended" if result == "reached" else "staffcall_not_reached")


@bp.post("/<int:attempt>/status")
def staff_status(attempt: int):
    """The staff leg ended. If it never reached the family (not answered, no 1 pressed), say so
    on the request; after a Dial the outcome is already there and this records nothing."""
    call_status = request.form.get("CallStatus", "")[:40]
    calling.outcome(attempt, "not-connected", text=f"staff phone: {call_status}")
    return Response(status=204)


@bp.errorhandler(Exception)
def staff_leg_error(error: Exception):
    """Nobody on this call is a family: an error ends it quietly, never rings the firm."""
    from werkzeug.exceptions import HTTPException

    if isinstance(error, HTTPException):
        return error
    current_app.logger.exception("error on call-back attempt leg %s", request.path)
    db.session.rollback()
    response = VoiceResponse()
    response.hangup()
    return twiml(response)
