"""Turn an unexpected error during a call into TwiML, so no caller hears Twilio's
"an application error has occurred" and nobody is dropped because of our bug."""

from __future__ import annotations

from flask import Response, current_app, request, url_for
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from ivr.calls.twiml import prompts, speak, twiml
from ivr.settings import settings
from ivr.voice.connect import dial_firm, office_open

# Webhooks that no caller listens to: the firm's whisper leg, and Twilio's status callbacks.
FIRM_LEG = ("voice.connect.whisper", "voice.connect.accept")
STATUS = ("voice.callback.recording_status", "voice.closing.sms_status")


def caller_language() -> str:
    lang = (request.view_args or {}).get("lang")
    return lang if lang in ("en", "es") else settings().default_language


def answer_errors(error: Exception):
    """Apologise in the caller's language, then the firm; when the office is closed, the
    callback request (or, if that is what fails, an apology and a goodbye)."""
    if isinstance(error, HTTPException):
        return error
    current_app.logger.exception(
        "error during call %s at %s", request.form.get("CallSid"), request.endpoint
    )
    if request.endpoint in STATUS:
        return Response(status=204)
    response = VoiceResponse()
    if request.endpoint in FIRM_LEG:
        response.hangup()  # the firm's leg: the caller's own Dial action takes over
        return twiml(response)
    lang = caller_language()
    try:
        closed = not office_open()
    except Exception:
        closed = False
    in_callback = (request.endpoint or "").startswith(("voice.callback.", "voice.details."))
    lines = ["error"] + (["error_goodbye"] if closed and in_callback else [])
    try:
        speak(response, [prompts().line(lang, name) for name in lines])
    except Exception:  # the apology is a courtesy; what follows is what matters
        current_app.logger.exception("could not speak the error prompts")
    if not closed:
        # The same Dial as Call Now, whisper included; nobody answering ends in a callback offer.
        dial_firm(response, lang, final=True)
    elif not in_callback:  # "the office is closed", then the offer of a callback request
        response.redirect(url_for("voice.connect.start", lang=lang, final="1"))
    else:  # the callback request itself is failing, and nobody is at the office
        response.hangup()
    return twiml(response)
