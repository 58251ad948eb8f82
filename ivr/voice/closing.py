"""The end of a callback request: urgency, the reference twice, star to hear it again, the text.

One TwiML document holds the whole ending, so a caller who presses nothing hears it straight
through without a round trip: "If a judge denied bond in the last 30 days ... press 1", the
reference read twice, "to get this reference by text message, press 1", when to expect a call,
goodbye. Each `<Gather>` posts only when a key is pressed, and its action answers with the rest
of the ending. The request is found by its reference (carried in the signed URL), so the ending
is the same for a first message and for one added to an open request (`again.py`). Twilio's
delivery status of the text comes back here too (`sms_status`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.hours import promise_lines
from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts, speak, twiml
from ivr.reports import events
from ivr.requests import sms
from ivr.requests.service import callers
from ivr.settings import settings
from ivr.voice.common import attested
from ivr.voice.connect import caller_id
from ivr.voice.menus import Menu, Option, State

bp = Blueprint("closing", __name__, url_prefix="/<any(en, es):lang>/closing")

URGENT = "1"  # "press 1" on the urgency question
TEXT_ME = "1"  # "press 1" on the text-message offer
REPEAT = "*"  # "press star" to hear the reference again


def carried() -> dict[str, Any]:
    """What the ending carries from step to step: the reference and whether we can call back."""
    values = {"ref": request.args.get("ref", "")}
    if request.args.get("unreachable") == "1":
        values["unreachable"] = "1"
    return values


def reference_lines(lang: str, ref: str) -> list[Line]:
    p = prompts()
    return [p.line(lang, "reference_number"), *p.digits(lang, ref, (3, 3))]


def reference_twice(lang: str, ref: str) -> list[Line]:
    """The reference in groups, then "Again:" and the groups once more: written down at the
    first reading, checked at the second."""
    p = prompts()
    return [
        *reference_lines(lang, ref),
        p.line(lang, "reference_again"),
        *p.digits(lang, ref, (3, 3)),
    ]


def reference_question(response: VoiceResponse, lang: str) -> None:
    """After the reference: "to hear it again, press star", and the text offer when it is
    made. The call goes on to goodbye only after this question has had its wait, so a caller
    without a caller ID or a text still has the chance to hear the reference again."""
    texting = offers_text()
    gather(
        response,
        AFTER_REFERENCE.lines(lang, text=texting),
        "voice.closing.text" if texting else "voice.closing.reference",
        lang,
    )


def offers_text() -> bool:
    """The text is offered only to a real number the call came from that the number policy lets
    the hotline text, while today's texts last (`callers.text_offer_allowed`); otherwise it is
    simply not offered."""
    own = caller_id(request.form.get("From", ""))
    return own is not None and callers.text_offer_allowed(own)


def gather(response: VoiceResponse, lines: list[Line], endpoint: str, lang: str) -> None:
    """A one-key question that, unanswered, lets the call go on to the next verb."""
    with response.gather(
        num_digits=1,
        timeout=settings().gather_timeout,
        action=url_for(endpoint, lang=lang, **carried()),
    ) as question:
        speak(question, lines)


def ending(
    lang: str, opening: list[Line], *, ask_urgency: bool = True, read_reference: bool = True
) -> VoiceResponse:
    ref = request.args.get("ref", "")
    response = VoiceResponse()
    speak(response, opening)
    if ask_urgency:
        gather(response, URGENCY.lines(lang), "voice.closing.urgent", lang)
    if read_reference and ref:
        speak(response, [prompts().line(lang, "write_ready"), *reference_twice(lang, ref)])
        # Only this question listens: a key pressed before it sends nothing.
        reference_question(response, lang)
    elif offers_text() and ref:
        gather(response, AFTER_REFERENCE.lines(lang, text=True), "voice.closing.text", lang)
    goodbye(response, lang)
    return response


def goodbye(response: VoiceResponse, lang: str) -> None:
    """When to expect a call (or that we cannot call back), with the office hours, then goodbye."""
    after = "no_number" if request.args.get("unreachable") == "1" else "expect_call"
    speak(response, [*promise_lines(lang, after), prompts().line(lang, "goodbye")])
    response.hangup()


def mark_urgent(lang: str, state: State) -> list[Line]:
    """The request is marked urgent: "noted" (nothing said if it could not be marked)."""
    if callers.mark_urgent(request.args.get("ref", ""), request.form.get("CallSid", "")):
        events.record("urgent", lang)
        return [prompts().line(lang, "urgent_noted")]
    return []


def send_text(lang: str, state: State) -> list[Line]:
    """The reference by SMS to the number the call came from, never to another. A number
    already texted in the last 24 hours gets no second text: a fully attested caller ID hears it
    was sent, any other hears that no text can be sent now; both the reference again."""
    p = prompts()
    own = caller_id(request.form.get("From", ""))
    ref = request.args.get("ref", "")
    if not (own and sms.enabled()):
        events.record("text-refused", lang, "no caller ID")  # asked, but policy says no
        return []
    queued = callers.text_reference(ref, own, request.form.get("CallSid", ""))
    if queued is sms.TextQueued.QUEUED:
        events.record("text-sent", lang)
        return [p.line(lang, "sms_sent")]
    if queued is sms.TextQueued.ALREADY:
        events.record("text-refused", lang, "one a day")
        if attested():  # one text a day: the reference once more
            return [
                p.line(lang, "sms_already_sent"),
                p.line(lang, "sms_write_down"),
                *reference_lines(lang, ref),
            ]
        # To a caller ID anyone could have set, the same words as for any text not sent: that
        # the number called the firm today is the family's business.
    else:
        events.record("text-failed", lang, "not queued")
    return [p.line(lang, "sms_unavailable"), *reference_lines(lang, ref)]


# Two one-key questions: pressing their key answers yes; any other key, or none, goes on.
URGENCY: Menu[list[Line]] = Menu(
    "urgency", [Option(URGENT, "urgent_ask", mark_urgent, "an urgent case")]
)


def repeat_reference(lang: str, state: State) -> list[Line]:
    return reference_twice(lang, request.args.get("ref", ""))


def texting(lang: str, state: State) -> bool:
    return bool(state.get("text"))


# After the reference: star hears it again (always), 1 gets it by text (when offered).
AFTER_REFERENCE: Menu[list[Line]] = Menu(
    "after the reference",
    [
        Option(REPEAT, "reference_repeat", repeat_reference, "hear the reference again"),
        Option(TEXT_ME, "sms_offer", send_text, "the reference by text message", said=texting),
    ],
)


@bp.post("/urgent")
def urgent(lang: str):
    """Pressing 1 marks the request urgent; any other key just goes on with the ending."""
    opening = URGENCY.choose(lang, request.form.get("Digits", "")) or []
    return twiml(ending(lang, opening, ask_urgency=False))


@bp.post("/text")
@bp.post("/reference", endpoint="reference")
def text(lang: str):
    """Star reads the reference again and asks once more; 1 (where the text was offered)
    queues the reference by SMS; any other key just says goodbye."""
    digits = request.form.get("Digits", "")
    # 1 is answered only on the text offer's own URL; send_text still refuses a withheld number.
    chosen = AFTER_REFERENCE.choose(lang, digits, text=request.path.endswith("/text"))
    response = VoiceResponse()
    speak(response, chosen or [])
    if digits == REPEAT:
        reference_question(response, lang)
    goodbye(response, lang)
    return twiml(response)


@bp.post("/sms/<int:request_id>/status")
def sms_status(lang: str, request_id: int):
    """Twilio's delivery status of the text (signed, like every webhook under /voice)."""
    form = request.form
    callers.record_text_status(
        request_id, form.get("MessageSid", ""), form.get("MessageStatus", ""), form.get("ErrorCode")
    )
    events.text_status(lang, form.get("MessageStatus", ""), form.get("ErrorCode"))
    return Response(status=204)
