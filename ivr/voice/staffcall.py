"""A call-back through the hotline: the staff member's leg, then the family's, both signed.

Twilio rings the staff member's phone (queued and placed by `requests/service/calling.py`); they
hear which request it is ("Call-back for reference 123 456, in Spanish. Press 1 to connect") in
STAFF_LANGUAGE. Pressing 1 dials the family with CALLBACK_FROM_NUMBER as caller ID: the number
they were told to expect. Requiring a key keeps the staff phone's voicemail from calling the
family. Each step is noted for the card's live state (the staff phone answered, the family's
phone rings, the family answered). When the family's leg ends unanswered (no answer, busy,
failed, hung up first) the Dial's action records that; when it was answered, Twilio cannot tell
a person from a voicemail greeting, so the staff member is asked how it went (1 spoke with the
family, 2 left a voicemail, 3 wrong number, 4 try again later) and, with no key, the card asks.
The staff leg's status callback records a call that never got as far as the family. Nothing is
recorded (`record="do-not-record"`): see the README.
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
# DialCallStatus of a family's leg that was never answered → the outcome staff see. "completed"
# (and "answered", sent with answerOnBridge) means someone or something picked up: the staff
# member says which.
DIAL_OUTCOMES = {
    "no-answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "canceled",
}
PICKED_UP = ("completed", "answered")
# The staff member's key after the call → their answer (`calling.CHOICES`).
CHOICE_KEYS = dict(zip("1234", calling.CHOICES, strict=True))


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
    calling.progress(attempt, "answered")
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
    if not calling.live(attempt):  # its hold ended: a colleague may be calling the family now
        return goodbye("staffcall_released")
    calling.progress(attempt, "dialling")
    response = VoiceResponse()
    dial = response.dial(
        caller_id=settings().callback_from_number,
        timeout=FAMILY_RING_SECONDS,
        action=url_for("voice.staffcall.done", attempt=attempt),
        record="do-not-record",
    )
    # Twilio tells `family` when the family's phone answers: the card then says "connected".
    dial.number(
        number,
        status_callback_event="answered",
        status_callback=url_for("voice.staffcall.family", attempt=attempt),
        status_callback_method="POST",
    )
    return twiml(response)


@bp.post("/<int:attempt>/family")
def family(attempt: int):
    """The family's leg answered (its status callback): the card shows "connected"."""
    if request.form.get("CallStatus") == "in-progress":
        calling.progress(attempt, "connected")
    return Response(status=204)


@bp.post("/<int:attempt>/done")
def done(attempt: int):
    """Dial's action: the family's leg ended. Unanswered: record how, and say so. Answered:
    ask the staff member how it went (unless they said so on the card already)."""
    status = request.form.get("DialCallStatus", "")
    if status in PICKED_UP:
        duration = request.form.get("DialCallDuration", type=int)
        if not calling.family_leg_ended(attempt, duration):
            return goodbye("staffcall_ended")
        return ask(attempt)
    result = DIAL_OUTCOMES.get(status, "failed")
    calling.outcome(attempt, result, text="" if status in DIAL_OUTCOMES else status[:40])
    return goodbye("staffcall_not_reached")


def ask(attempt: int) -> Response:
    """How did it go? 1 to 4; with no key, the card asks instead."""
    response = VoiceResponse()
    staff = settings().staff_language
    with response.gather(
        num_digits=1, timeout=8, action=url_for("voice.staffcall.wrapup", attempt=attempt)
    ) as gather:
        speak(gather, [prompts().line(staff, "staffcall_outcome_ask")])
    speak(response, [prompts().line(staff, "staffcall_outcome_on_page")])
    response.hangup()
    return twiml(response)


@bp.post("/<int:attempt>/wrapup")
def wrapup(attempt: int):
    """The staff member's answer: recorded once (a repeated webhook records nothing)."""
    choice = CHOICE_KEYS.get(request.form.get("Digits", ""))
    if choice is None:
        return ask(attempt)
    calling.answer_by_phone(attempt, choice)
    return goodbye("staffcall_ended")


@bp.post("/<int:attempt>/status")
def staff_status(attempt: int):
    """The staff leg ended. If it never reached the family (not answered, no 1 pressed), say so
    on the request; after a Dial the outcome is there, or the card asks, and this records
    nothing."""
    call_status = request.form.get("CallStatus", "")[:40]
    calling.staff_leg_ended(attempt, call_status)
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
