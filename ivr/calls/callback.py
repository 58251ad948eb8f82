"""Leave a callback request: record a message, confirm a number, an optional A-number, a reference.

The request is stored as soon as the recording exists, keyed by CallSid, and every later step
updates it, so a caller who hangs up at any point still leaves what they gave. If the database
fails, what they left goes to the journal and the caller is still looked after.
"""

from __future__ import annotations

import phonenumbers
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from .. import callbacks
from ..db import db
from ..models import Call, CallbackRequest
from ..prompts import Line
from ..twiml import prompts, speak, twiml
from .common import ask, fails, final, final_args, redirect
from .connect import caller_id, office_open

bp = Blueprint("callback", __name__, url_prefix="/<any(en, es):lang>/callback")

# Seconds Twilio waits after the last key at the number step. "Press 1" cannot end the Gather by
# itself (a typed number may start with 1), so keep the wait after it short; a pause this long
# between the digits of a number is rare.
NUMBER_TIMEOUT = 4


def call_sid() -> str:
    return request.form.get("CallSid", "")


def spoken_number(number: str) -> str:
    """The digits a caller would dial: national for US numbers, with country code otherwise."""
    parsed = phonenumbers.parse(number, None)
    if parsed.country_code == 1:
        return str(parsed.national_number)
    return f"{parsed.country_code}{parsed.national_number}"


@bp.route("", methods=["GET", "POST"])
def start(lang: str):
    failed = fails()
    if failed >= current_app.config["MAX_FAILURES"]:
        if final():  # a silent line on its last round: end it rather than cycle
            response = VoiceResponse()
            speak(response, [prompts().line(lang, "call_again"), prompts().line(lang, "goodbye")])
            response.hangup()
            return twiml(response)
        return redirect("voice.topics.help", lang=lang)
    existing = recorded_request()
    if existing is not None:  # one request per call: never record over the first message
        response = VoiceResponse()
        speak(response, [prompts().line(lang, "already_recorded")])
        response.redirect(url_for("voice.callback.number", lang=lang, ref=existing))
        return twiml(response)
    lines = [prompts().line(lang, "record_nothing")] if failed else []
    response = VoiceResponse()
    speak(response, lines + [prompts().line(lang, "record_intro")])
    response.record(
        action=url_for("voice.callback.recorded", lang=lang, fails=failed, **final_args()),
        max_length=current_app.config["RECORDING_MAX_SECONDS"],
        finish_on_key="#",
        play_beep=True,
        timeout=10,
        trim="trim-silence",
        recording_status_callback=url_for("voice.callback.recording_status", lang=lang),
        recording_status_callback_event="completed",
    )
    # Reached only when Twilio heard nothing and recorded nothing.
    response.redirect(url_for("voice.callback.start", lang=lang, fails=failed + 1, **final_args()))
    return twiml(response)


def recorded_request() -> str | None:
    """The reference of this call's request when its message is already recorded."""
    try:
        return db.session.scalar(
            sa.select(CallbackRequest.reference).where(
                CallbackRequest.call_sid == call_sid(), CallbackRequest.recording_sid.is_not(None)
            )
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return None  # the database is failing: recording again is the safe side


def recording_fields(lang: str) -> dict[str, object]:
    form = request.form
    return {
        "language": lang,
        "recording_sid": form.get("RecordingSid") or None,
        "recording_url": form.get("RecordingUrl") or None,
        "recording_duration": form.get("RecordingDuration", 0, type=int),
    }


@bp.post("/recorded")
def recorded(lang: str):
    """The `<Record>` action: Twilio requests it even when the caller hung up after recording."""
    fields = recording_fields(lang)
    hung_up = request.form.get("Digits") == "hangup"
    if not fields["recording_url"] or not fields["recording_duration"]:
        if hung_up:
            return twiml(VoiceResponse())
        return redirect("voice.callback.start", lang=lang, fails=fails() + 1, **final_args())
    row = callbacks.save_or_journal(
        call_sid(), caller_number=request.form.get("From", ""), step="recorded", **fields
    )
    if hung_up:
        return twiml(VoiceResponse())
    if row is None:
        return storage_failed(lang)
    return redirect("voice.callback.number", lang=lang, ref=row.reference)


@bp.post("/recording")
def recording_status(lang: str):
    """Twilio's recording status callback: may come late, twice, or before the action.

    It carries no caller number, so the one noted when the call chose its language is used (the
    `<Record>` action fills it in otherwise). The copy of the audio is made off this request.
    """
    form = request.form
    fields = recording_fields(lang)
    if form.get("RecordingStatus") != "completed" or not fields["recording_duration"]:
        return Response(status=204)  # nothing was said: no request to store
    row = callbacks.save_or_journal(
        call_sid(), caller_number=calling_number(), step="recorded", **fields
    )
    if row is not None:
        callbacks.copy_later(current_app._get_current_object(), row.id)
    return Response(status=204)


def calling_number() -> str | None:
    try:
        return db.session.scalar(sa.select(Call.from_number).filter_by(call_sid=call_sid()))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return None


def storage_failed(lang: str):
    """The database failed: reassure; then the firm when open (once), else when to expect a call."""
    response = VoiceResponse()
    speak(response, [prompts().line(lang, "save_failed")])
    if office_open() and not final():
        response.redirect(url_for("voice.connect.start", lang=lang, final="1"))
    else:
        speak(response, [prompts().line(lang, "expect_call"), prompts().line(lang, "goodbye")])
        response.hangup()
    return twiml(response)


def number_lines(lang: str) -> list[Line]:
    p = prompts()
    own = caller_id(request.form.get("From", ""))
    if own:
        return [p.line(lang, "number_readback"), *p.digits(lang, spoken_number(own)),
                p.line(lang, "number_confirm")]
    return [p.line(lang, "number_ask")]


def number_timeout() -> int | None:
    """Short only when the caller just has to press 1 for the number read back to them."""
    return NUMBER_TIMEOUT if caller_id(request.form.get("From", "")) else None


@bp.route("/number", methods=["GET", "POST"])
def number(lang: str):
    ref = request.args.get("ref", "")
    return ask(number_lines(lang), "voice.callback.number_choice", num_digits=0, keep=False,
               timeout=number_timeout(), lang=lang, ref=ref, fails=fails())


def typed_number(digits: str, caller: str | None) -> str | None:
    """A number typed on the keypad, as E.164 when valid. 011 starts an international number;
    otherwise it is read as a number of the caller's own country (the U.S. when unknown)."""
    region = "US"
    if caller:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(caller, None)) or "US"
    text = "+" + digits[3:] if digits.startswith("011") else digits
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@bp.post("/number/choice")
def number_choice(lang: str):
    ref = request.args.get("ref", "")
    digits = request.form.get("Digits", "")
    own = caller_id(request.form.get("From", ""))
    chosen = own if digits == "1" and own else None
    if chosen is None and len(digits) > 1:
        chosen = typed_number(digits, own)
    if chosen is None:
        failed = fails() + 1
        if failed < current_app.config["MAX_FAILURES"]:
            lines = [prompts().line(lang, "number_invalid")] if digits else []
            return ask(lines + number_lines(lang), "voice.callback.number_choice",
                       num_digits=0, keep=False, timeout=number_timeout(), lang=lang, ref=ref,
                       fails=failed)
        current_app.logger.info("no valid callback number for call %s", call_sid())
    callbacks.save_or_journal(call_sid(), callback_number=chosen, step="number")
    reachable = {} if chosen or own else {"unreachable": "1"}
    return redirect("voice.callback.a_number", lang=lang, ref=ref, **reachable)


def reachable_args() -> dict[str, str]:
    return {"unreachable": "1"} if request.args.get("unreachable") == "1" else {}


def a_number_gather(lang: str, lines: list[Line], ref: str, failed: int, empties: int) -> Response:
    # Twilio posts an empty answer both for a lone # and for silence: the first empty answer
    # asks once more ("press pound again"), the second skips the step.
    return ask(lines + [prompts().line(lang, "anumber_ask")], "voice.callback.a_number_choice",
               num_digits=0, post_empty=True, keep=False, lang=lang, ref=ref, fails=failed,
               empties=empties, **reachable_args())


@bp.route("/a-number", methods=["GET", "POST"])
def a_number(lang: str):
    return a_number_gather(lang, [], request.args.get("ref", ""), fails(), 0)


def valid_a_number(digits: str) -> str | None:
    if digits.isdigit() and len(digits) == 8:
        return "0" + digits
    if digits.isdigit() and len(digits) == 9:
        return digits
    return None


@bp.post("/a-number/choice")
def a_number_choice(lang: str):
    ref = request.args.get("ref", "")
    digits = request.form.get("Digits", "")
    empties = request.args.get("empties", 0, type=int)
    a_number = valid_a_number(digits)
    if not digits and empties == 0:
        again = [prompts().line(lang, "anumber_again")]
        return ask(again, "voice.callback.a_number_choice", num_digits=0, post_empty=True,
                   keep=False, lang=lang, ref=ref, fails=fails(), empties=1, **reachable_args())
    if digits and a_number is None:
        failed = fails() + 1
        if failed < current_app.config["MAX_FAILURES"]:
            invalid = [prompts().line(lang, "anumber_invalid")]
            return a_number_gather(lang, invalid, ref, failed, empties)
    callbacks.save_or_journal(call_sid(), a_number=a_number, step="complete")
    return redirect("voice.callback.confirmation", lang=lang, ref=ref, **reachable_args())


@bp.route("/confirmation", methods=["GET", "POST"])
def confirmation(lang: str):
    """Read the reference back twice, digit by digit, and say when to expect a call (or, with
    no number to call, that we cannot call back)."""
    p = prompts()
    ref = request.args.get("ref", "")
    reference = [p.line(lang, "reference_number"), *p.digits(lang, ref)]
    response = VoiceResponse()
    speak(response, [p.line(lang, "confirmation"), *reference])
    speak(response, reference)
    after = "no_number" if reachable_args() else "expect_call"
    speak(response, [p.line(lang, after), p.line(lang, "goodbye")])
    response.hangup()
    return twiml(response)
