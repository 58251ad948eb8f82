"""Call Now: ring the firm with the caller's own number, and never drop a caller nobody answers.

The person answering hears a whisper ("hotline call, in Spanish") and must press 1 before the
calls are joined, so the firm's own voicemail cannot swallow a caller. Outside office hours the
caller is offered a callback request instead of ringing an empty office. A caller on their final
round (see `common.final`) whom nobody answers is offered the callback request once more, and a
silent recording then ends the call.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, has_request_context, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.calendar import office_open
from ivr.calls.hours import closed_lines
from ivr.calls.twiml import prompts, speak, twiml
from ivr.phones import parse_valid
from ivr.reports import events
from ivr.requests import missed
from ivr.settings import settings
from ivr.voice.common import (
    CALLBACK,
    FIRM,
    MAIN_MENU,
    REPEAT,
    adding,
    ask,
    fails,
    final,
    final_args,
    redirect,
)
from ivr.voice.menus import Menu, Option, State

bp = Blueprint("connect", __name__)

CONNECTED = {"completed", "answered"}


def caller_id(number: str) -> str | None:
    """The caller's number when it is a real E.164 number (not 'Anonymous' or 'restricted')."""
    return number if parse_valid(number) else None


REASONS = ("office_closed", "dial_failed")


def offer_callback(lang: str, reason: str) -> Response:
    """Say why the firm cannot take the call, then offer the callback request (8) or the menu
    (9); silence starts the callback request, the likeliest wish of someone who is waiting.
    The reason rides in the URL, so that * repeats it too ("we are closed", and the hours)."""
    return ask(
        offer_lines(lang, reason),
        "voice.connect.offer_choice",
        lang=lang,
        fails=0,
        reason=reason,
        **final_args(),
    )


def offer_lines(lang: str, reason: str | None = None) -> list:
    """`office_closed` says why (closed now or today), when it opens again, and the hours."""
    if reason == "office_closed":
        lines = closed_lines(lang)
    else:
        lines = [prompts().line(lang, reason)] if reason else []
    return lines + OFFER.lines(lang, open=office_open(), adding=adding())


def said_reason() -> str | None:
    """The reason carried in this menu's URL (`offer_callback`), if it is one we say."""
    reason = request.args.get("reason")
    return reason if reason in REASONS else None


def reason_args() -> dict[str, Any]:
    """The reason to carry on to the next round of this menu, so * can say it again."""
    reason = said_reason()
    return {"reason": reason} if reason else {}


def leave_message(lang: str, state: State) -> Response:
    return redirect("voice.callback.start", lang=lang, **final_args())


def to_menu(lang: str, state: State) -> Response:
    return redirect("voice.topics.menu", lang=lang)


def offer_again(lang: str, state: State) -> Response:
    """*: the whole notice again (closed, when it reopens, the hours), not only the options."""
    reason = said_reason()
    return ask(
        offer_lines(lang, reason),
        "voice.connect.offer_choice",
        lang=lang,
        fails=fails(),
        **reason_args(),
        **final_args(),
    )


def to_firm(lang: str, state: State) -> Response:
    return redirect("voice.connect.start", lang=lang)


def firm_answers(lang: str, state: State) -> bool:
    """0 rings the firm again while it is open, except on the caller's final round; it is said
    ("to try again, press 0") exactly then."""
    return bool(state.get("open")) and not (has_request_context() and final())


def not_adding(lang: str, state: State) -> bool:
    return not state.get("adding")


def is_adding(lang: str, state: State) -> bool:
    return bool(state.get("adding"))


# When the firm cannot take the call: the message first, the likeliest wish of someone waiting;
# "add to your message" for a caller whose open request it would join (`common.adding`).
OFFER: Menu[Response] = Menu(
    "callback offer",
    [
        Option(CALLBACK, "option_callback", leave_message, "leaving a message", said=not_adding),
        Option(CALLBACK, "option_add", leave_message, "adding to a message", said=is_adding),
        Option(FIRM, "option_try_again", to_firm, "trying the firm again", said=firm_answers),
        Option(MAIN_MENU, "option_menu", to_menu, "the main menu"),
        Option(REPEAT, "option_repeat", offer_again, "hearing this again"),
    ],
)


@bp.post("/<any(en, es):lang>/connect/offer")
def offer_choice(lang: str):
    digits = request.form.get("Digits", "")
    chosen = OFFER.choose(lang, digits, open=office_open(), adding=adding())
    if chosen is not None:
        return chosen
    failed = fails() + 1
    if digits and failed < settings().max_failures:
        lines = [prompts().line(lang, "invalid"), *offer_lines(lang)]
        return ask(
            lines,
            "voice.connect.offer_choice",
            lang=lang,
            fails=failed,
            **reason_args(),
            **final_args(),
        )
    return leave_message(lang, {})  # silence, or too many wrong keys: the message


@bp.post("/<any(en, es):lang>/connect")
def start(lang: str):
    if not office_open():
        events.record("firm-closed", lang)
        return offer_callback(lang, "office_closed")
    events.record("firm-tried", lang)
    response = VoiceResponse()
    speak(response, [prompts().line(lang, "connecting")])
    dial_firm(response, lang, final=final())
    return twiml(response)


def dial_firm(response: VoiceResponse, lang: str, final: bool = False) -> None:
    """Ring the firm with the caller's own number, a whisper to accept, and an action."""
    config = settings()
    final_arg: dict[str, Any] = {"final": "1"} if final else {}
    dial = response.dial(
        timeout=config.dial_timeout,
        action=url_for("voice.connect.done", lang=lang, **final_arg),
        caller_id=caller_id(request.form.get("From", "")),
        answer_on_bridge=True,
    )
    dial.number(config.firm_phone_number, url=url_for("voice.connect.whisper", caller=lang))


@bp.post("/<any(en, es):lang>/connect/done")
def done(lang: str):
    """Decide by DialCallStatus (CallStatus is the caller's leg, which is still in progress)."""
    status = request.form.get("DialCallStatus", "")
    bridged = request.form.get("DialBridged", "true") != "false"
    call_sid = request.form.get("CallSid", "")
    if status in CONNECTED and bridged:
        missed.mark(call_sid, "firm-answered")
        events.record("firm-answered", lang)
        response = VoiceResponse()
        speak(response, [prompts().line(lang, "goodbye")])
        response.hangup()
        return twiml(response)
    current_app.logger.info("firm did not answer (%s) call %s", status, call_sid)
    missed.mark(call_sid, "firm-missed", status)
    events.record("firm-missed", lang, status)
    return offer_callback(lang, "dial_failed")


@bp.post("/whisper/<any(en, es):caller>")
def whisper(caller: str):
    """Heard by the person who picks up at the firm, before the caller is joined."""
    staff = settings().staff_language
    response = VoiceResponse()
    with response.gather(
        num_digits=1, timeout=8, action=url_for("voice.connect.accept", caller=caller)
    ) as gather:
        speak(gather, [prompts().line(staff, f"whisper_caller_{caller}")])
    speak(response, [prompts().line(staff, "whisper_no_answer")])
    response.hangup()
    return twiml(response)


@bp.post("/whisper/<any(en, es):caller>/accept")
def accept(caller: str):
    """Pressing 1 joins the calls (an empty reply ends the whisper); anything else declines."""
    response = VoiceResponse()
    if request.form.get("Digits") != "1":
        response.hangup()
    return twiml(response)
