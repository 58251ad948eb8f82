"""Calling again: a caller with an open request hears it, and a new message joins it.

Many families call again the next day, anxious, and leave a second message. So a caller whose
number has an open request (not yet called back) from the last 14 days hears, after choosing a
language, "We have your message from Tuesday, reference 123 456. We will call you back.", and
every menu of the call offers "to add to your message, press 8" (the menus' `adding` state,
`common.adding`). What they record then is stored as a
`RequestMessage` on that request, flagged new for staff, instead of an unrelated request. One
call still makes one recording: the row is keyed by the CallSid, like a request.

Caller ID is not identity: anyone can set it (security.md M2), and for an immigration family
that a number called this firm is itself sensitive. So the number is recognised only when the
carrier fully attested it (STIR/SHAKEN: Twilio's `StirVerstat` is `TN-Validation-Passed-A`);
any other call hears nothing of an earlier request and leaves a new one. And before a message
joins an open request, the caller types that request's reference (`reference`): one retry, then
the message becomes a new request ("we will take your message as a new one"). Nothing about a
request, its day or its reference, is said to a caller not verified one of these two ways.

Only a real caller ID is looked up (never 'Anonymous'). If the database fails, the call goes on
as for a first call: the lookup finds nothing, or the added message is kept by the fallback as a
request of its own, which staff see beside the first. The message is stored by the request
service (`service/callers.add_message`), which also queues its copy and its alerts.
"""

from __future__ import annotations

import datetime as dt
import hmac

from flask import Blueprint, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.calendar import now, office
from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts, speak, twiml
from ivr.requests.models import CallbackRequest
from ivr.settings import DAYS
from ivr.voice import closing
from ivr.voice.common import OPEN_DAYS, ask, open_request

__all__ = ["OPEN_DAYS", "open_request"]  # kept here for the journey's readers (callback.py)

bp = Blueprint("again", __name__, url_prefix="/<any(en, es):lang>/again")

TRIES = 2  # typing the reference: one retry, then the message is a new request


def when_lines(lang: str, created_at: dt.datetime) -> list[Line]:
    """ "We have your message from Tuesday" (today, yesterday, a weekday, or over a week ago),
    counted in the office's days."""
    p = prompts()
    calendar = office()
    day = calendar.local(created_at).date()
    ago = (calendar.local(now()).date() - day).days
    if ago <= 0:
        return [p.line(lang, "again_from_today")]
    if ago == 1:
        return [p.line(lang, "again_from_yesterday")]
    if ago < 7:
        return [p.line(lang, "again_from_day"), p.line(lang, f"words/day_{DAYS[day.weekday()]}")]
    return [p.line(lang, "again_from_older")]


def announcement(lang: str, row: CallbackRequest) -> list[Line]:
    p = prompts()
    return [
        *when_lines(lang, row.created_at),
        p.line(lang, "reference_number"),
        *p.digits(lang, row.reference, (3, 3)),
        p.line(lang, "again_call_back"),
    ]


@bp.post("/added")
def added(lang: str):
    """The ending for a message added to an open request: its reference, and the same
    questions as a first request (urgency, the reference by text)."""
    return twiml(closing.ending(lang, [prompts().line(lang, "added")]))


def ask_reference(lang: str, lines: list[Line], tries: int):
    return ask(
        [*lines, prompts().line(lang, "reference_ask")],
        "voice.again.reference_check",
        num_digits=0,
        post_empty=True,
        lang=lang,
        tries=tries,
    )


@bp.post("/reference")
def reference(lang: str):
    """Before a message joins the caller's open request: "please enter your reference number"."""
    return ask_reference(lang, [], 0)


@bp.post("/reference/check")
def reference_check(lang: str):
    """The reference typed right: record the message onto that request. Wrong: once more, then
    the message is taken as a new request. Nothing is said of the request itself."""
    typed = request.form.get("Digits", "")
    tries = request.args.get("tries", 0, type=int) + 1
    target = open_request(request.form.get("From", ""), request.form.get("CallSid", ""))
    if target is not None and typed and hmac.compare_digest(typed, target.reference):
        response = VoiceResponse()
        response.redirect(
            url_for("voice.callback.start", lang=lang, add=target.id, ref=target.reference)
        )
        return twiml(response)
    if target is not None and tries < TRIES:
        return ask_reference(lang, [prompts().line(lang, "reference_wrong")], tries)
    response = VoiceResponse()
    if target is not None:
        speak(response, [prompts().line(lang, "reference_new")])
    response.redirect(url_for("voice.callback.start", lang=lang, new="1"))
    return twiml(response)
