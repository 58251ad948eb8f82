"""Leave a callback request, step 1: the recorded message, stored as soon as it exists.

The request is written by the request service (`service/callers.py`), keyed by CallSid, and
every later step (`details.py`: callback number, A-number, reference) updates it, so a caller
who hangs up at any point still leaves what they gave. If the database fails, what they left is
kept by `fallback.py` and the call goes on exactly as on a good day: the reference comes from
this process's reserved stash (`references.py`), not the database.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.twiml import prompts, speak, twiml
from ivr.reports import events
from ivr.requests import lookup, references
from ivr.requests.service import callers
from ivr.settings import settings
from ivr.voice import again
from ivr.voice.common import fails, final, final_args, redirect

bp = Blueprint("callback", __name__, url_prefix="/<any(en, es):lang>/callback")


def call_sid() -> str:
    return request.form.get("CallSid", "")


@bp.route("", methods=["POST"])
def start(lang: str):
    failed = fails()
    if failed >= settings().max_failures:
        if final():  # a silent line on its last round: end it rather than cycle
            response = VoiceResponse()
            speak(response, [prompts().line(lang, "call_again"), prompts().line(lang, "goodbye")])
            response.hangup()
            return twiml(response)
        return redirect("voice.topics.help", lang=lang)
    existing = lookup.recorded_reference(call_sid())
    if existing is not None:  # one request per call: never record over the first message
        response = VoiceResponse()
        speak(response, [prompts().line(lang, "already_recorded")])
        response.redirect(url_for("voice.details.number", lang=lang, ref=existing))
        return twiml(response)
    added = lookup.added_reference(call_sid())
    if added is not None:  # this call already added its one message to an open request
        response = VoiceResponse()
        speak(response, [prompts().line(lang, "already_recorded")])
        response.redirect(url_for("voice.again.added", lang=lang, ref=added))
        return twiml(response)
    # A caller with an open request adds to it (`again.py`) rather than starting another.
    target = again.open_request(request.form.get("From", ""), call_sid())
    adding: dict[str, Any] = (
        {"add": target.id, "ref": target.reference} if target is not None else {}
    )
    events.record("callback-started", lang)
    lines = [prompts().line(lang, "record_nothing")] if failed else []
    response = VoiceResponse()
    speak(response, lines + [prompts().line(lang, "add_intro" if adding else "record_intro")])
    response.record(
        action=url_for(
            "voice.callback.recorded", lang=lang, fails=failed, **adding, **final_args()
        ),
        max_length=settings().recording_max_seconds,
        finish_on_key="#",
        play_beep=True,
        timeout=10,
        trim="trim-silence",
        recording_status_callback=url_for("voice.callback.recording_status", lang=lang, **adding),
        recording_status_callback_event="completed",
    )
    # Reached only when Twilio heard nothing and recorded nothing.
    response.redirect(url_for("voice.callback.start", lang=lang, fails=failed + 1, **final_args()))
    return twiml(response)


def recording_fields(lang: str) -> dict[str, Any]:
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
    adding = request.args.get("add", type=int)
    if adding:  # a message added to the caller's open request
        callers.add_message(call_sid(), adding, request.form.get("From", ""), **fields)
        events.record("added", lang)
        if hung_up:
            return twiml(VoiceResponse())
        return redirect("voice.again.added", lang=lang, ref=request.args.get("ref", ""))
    # The reference the caller hears; save() stores this one, so the row is not read again
    # after its commit (a connection lost at that moment must not cost the caller anything).
    heard = references.take(call_sid())
    callers.save_or_keep(
        call_sid(),
        reference=heard,
        caller_number=request.form.get("From", ""),
        step="recorded",
        **fields,
    )
    events.record("recorded", lang)
    if hung_up:
        return twiml(VoiceResponse())
    return redirect("voice.details.number", lang=lang, ref=heard)


@bp.post("/recording")
def recording_status(lang: str):
    """Twilio's recording status callback: may come late, twice, or before the action.

    It carries no caller number, so the one noted when the call chose its language is used (the
    `<Record>` action fills it in otherwise). The copy of the audio is a job queued with the row.
    """
    form = request.form
    fields = recording_fields(lang)
    if form.get("RecordingStatus") != "completed" or not fields["recording_duration"]:
        return Response(status=204)  # nothing was said: no request to store
    adding = request.args.get("add", type=int)
    if adding:
        callers.add_message(call_sid(), adding, lookup.calling_number(call_sid()), **fields)
        return Response(status=204)
    number = lookup.calling_number(call_sid())
    callers.save_or_keep(call_sid(), caller_number=number, step="recorded", **fields)
    return Response(status=204)
