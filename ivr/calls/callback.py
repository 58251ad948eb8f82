"""Leave a callback request: record a message, confirm a number, an optional A-number, a reference.

The request is stored as soon as the recording exists, keyed by CallSid, and every later step
updates it, so a caller who hangs up at any point still leaves what they gave. If the database
fails, what they left goes to the journal and the caller is still looked after.
"""

from __future__ import annotations

import phonenumbers
from flask import Blueprint, Response, current_app, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from .. import callbacks
from ..prompts import Line
from ..twiml import prompts, speak, twiml
from .common import ask, fails
from .connect import caller_id, office_open

bp = Blueprint("callback", __name__, url_prefix="/<any(en, es):lang>/callback")


def call_sid() -> str:
    return request.form.get("CallSid", "")


def redirect(endpoint: str, **values: object):
    response = VoiceResponse()
    response.redirect(url_for(endpoint, **values))
    return twiml(response)


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
        return redirect("voice.topics.help", lang=lang)
    lines = [prompts().line(lang, "record_nothing")] if failed else []
    response = VoiceResponse()
    speak(response, lines + [prompts().line(lang, "record_intro")])
    response.record(
        action=url_for("voice.callback.recorded", lang=lang, fails=failed),
        max_length=current_app.config["RECORDING_MAX_SECONDS"],
        finish_on_key="#",
        play_beep=True,
        timeout=10,
        trim="trim-silence",
        recording_status_callback=url_for(
            "voice.callback.recording_status", lang=lang, caller=request.form.get("From", "")
        ),
        recording_status_callback_event="completed",
    )
    # Reached only when Twilio heard nothing and recorded nothing.
    response.redirect(url_for("voice.callback.start", lang=lang, fails=failed + 1))
    return twiml(response)


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
        return redirect("voice.callback.start", lang=lang, fails=fails() + 1)
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
    """Twilio's recording status callback: may come late, twice, or before the action."""
    form = request.form
    fields = recording_fields(lang)
    if form.get("RecordingStatus") != "completed" or not fields["recording_duration"]:
        return Response(status=204)  # nothing was said: no request to store
    row = callbacks.save_or_journal(
        call_sid(), caller_number=request.args.get("caller", ""), step="recorded", **fields
    )
    if row is not None:
        callbacks.fetch_recording(row)
    return Response(status=204)


def storage_failed(lang: str):
    """The database failed: reassure, then the firm when it is open, else a goodbye."""
    response = VoiceResponse()
    speak(response, [prompts().line(lang, "save_failed")])
    if office_open():
        response.redirect(url_for("voice.connect.start", lang=lang))
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


@bp.route("/number", methods=["GET", "POST"])
def number(lang: str):
    ref = request.args.get("ref", "")
    return ask(number_lines(lang), "voice.callback.number_choice", num_digits=0, keep=False,
               lang=lang, ref=ref, fails=fails())


def typed_number(digits: str) -> str | None:
    """A number typed on the keypad, as E.164 when valid (011 starts an international number)."""
    text = "+" + digits[3:] if digits.startswith("011") else digits
    try:
        parsed = phonenumbers.parse(text, "US")
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
    chosen = own if digits == "1" and own else typed_number(digits) if len(digits) > 1 else None
    if chosen is None:
        failed = fails() + 1
        if failed < current_app.config["MAX_FAILURES"]:
            lines = [prompts().line(lang, "number_invalid")] if digits else []
            return ask(lines + number_lines(lang), "voice.callback.number_choice",
                       num_digits=0, keep=False, lang=lang, ref=ref, fails=failed)
        current_app.logger.info("no valid callback number for call %s", call_sid())
    callbacks.save_or_journal(call_sid(), callback_number=chosen, step="number")
    return redirect("voice.callback.a_number", lang=lang, ref=ref)


def a_number_gather(lang: str, lines: list[Line], ref: str, failed: int) -> Response:
    # An empty answer (just #) means "skip", so Twilio must post it rather than fall through.
    return ask(lines + [prompts().line(lang, "anumber_ask")], "voice.callback.a_number_choice",
               num_digits=0, post_empty=True, keep=False, lang=lang, ref=ref, fails=failed)


@bp.route("/a-number", methods=["GET", "POST"])
def a_number(lang: str):
    return a_number_gather(lang, [], request.args.get("ref", ""), fails())


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
    a_number = valid_a_number(digits)
    if digits and a_number is None:
        failed = fails() + 1
        if failed < current_app.config["MAX_FAILURES"]:
            invalid = [prompts().line(lang, "anumber_invalid")]
            return a_number_gather(lang, invalid, ref, failed)
    callbacks.save_or_journal(call_sid(), a_number=a_number, step="complete")
    return redirect("voice.callback.confirmation", lang=lang, ref=ref)


@bp.route("/confirmation", methods=["GET", "POST"])
def confirmation(lang: str):
    """Read the reference back twice, digit by digit, and say when to expect a call."""
    p = prompts()
    ref = request.args.get("ref", "")
    reference = [p.line(lang, "reference_number"), *p.digits(lang, ref)]
    response = VoiceResponse()
    speak(response, [p.line(lang, "confirmation"), *reference])
    speak(response, reference)
    speak(response, [p.line(lang, "expect_call"), p.line(lang, "goodbye")])
    response.hangup()
    return twiml(response)
