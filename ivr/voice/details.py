"""Leave a callback request, steps 2-4: the number to call back, the A-number, the reference.

Each step updates the request stored in step 1 (`callback.py`); the URLs stay under
/voice/<lang>/callback, the endpoints are `voice.details.*`.

Only a number the hotline may call is kept (`messaging/policy.py`): a typed premium-rate,
satellite or far-away number is refused with the reason in plain words, and the caller is asked
for another; a caller ID the policy refuses is not read back as the number to call.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts, spoken_number, twiml
from ivr.messaging import policy
from ivr.phones import e164, parse_valid, region
from ivr.reports import events
from ivr.requests.service import callers
from ivr.settings import settings
from ivr.voice import closing
from ivr.voice.callback import call_sid
from ivr.voice.common import ask, fails, redirect
from ivr.voice.connect import caller_id
from ivr.voice.menus import Menu, Option, State

bp = Blueprint("details", __name__, url_prefix="/<any(en, es):lang>/callback")

# Seconds Twilio waits after the last key at the number step. "Press 1" cannot end the Gather by
# itself (a typed number may start with 1), so keep the wait after it short; a pause this long
# between the digits of a number is rare.
NUMBER_TIMEOUT = 4


def own_number(lang: str, state: State) -> str | None:
    return state["own"]


def has_own(lang: str, state: State) -> bool:
    return state["own"] is not None


# The number the call came from is read back and taken with one key; another is typed in full.
NUMBER: Menu[str | None] = Menu(
    "callback number",
    [Option("1", "number_confirm", own_number, "the number read back", said=has_own)],
)


def confirmed(lang: str, state: State) -> bool:
    return True


def again(lang: str, state: State) -> bool:
    return False


# A typed number and the A-number are read back digit by digit, in groups, then confirmed (as
# EOIR's case line does): a wrong key would otherwise mean a family is never called. Silence
# or another key keeps what was read back; only 2 asks for it again.
READBACK: Menu[bool] = Menu(
    "read back",
    [
        Option("1", "readback_confirm", confirmed, "keep what was read back"),
        Option("2", "readback_again", again, "enter it again"),
    ],
)


def callable_own() -> str | None:
    """The number the call came from, when the hotline may call it back."""
    own = caller_id(request.form.get("From", ""))
    return own if own and policy.for_calls(own).allowed else None


def number_lines(lang: str) -> list[Line]:
    p = prompts()
    own = callable_own()
    if own:
        return [
            p.line(lang, "number_readback"),
            *spoken_number(lang, own),
            *NUMBER.lines(lang, own=own),
        ]
    return [p.line(lang, "number_ask")]


def number_timeout() -> int | None:
    """Short only when the caller just has to press 1 for the number read back to them."""
    return NUMBER_TIMEOUT if callable_own() else None


@bp.route("/number", methods=["POST"])
def number(lang: str):
    ref = request.args.get("ref", "")
    return ask(
        number_lines(lang),
        "voice.details.number_choice",
        num_digits=0,
        timeout=number_timeout(),
        lang=lang,
        ref=ref,
        fails=fails(),
    )


def typed_number(digits: str, caller: str | None) -> str | None:
    """A number typed on the keypad, as E.164 when valid. 011 starts an international number;
    otherwise it is read as a number of the caller's own country (the U.S. when unknown)."""
    own = parse_valid(caller) if caller else None
    text = "+" + digits[3:] if digits.startswith("011") else digits
    parsed = parse_valid(text, (own and region(own)) or "US")
    return e164(parsed) if parsed else None


@bp.post("/number/choice")
def number_choice(lang: str):
    ref = request.args.get("ref", "")
    digits = request.form.get("Digits", "")
    own = callable_own()
    chosen = NUMBER.choose(lang, digits, own=own)
    refusal = policy.Refusal.INVALID if digits else None
    if chosen is None and len(digits) > 1:
        verdict = policy.for_calls(typed_number(digits, caller_id(request.form.get("From", ""))))
        chosen, refusal = (verdict.number, None) if verdict.allowed else (None, verdict.refusal)
    if chosen is None:
        failed = fails() + 1
        if failed < settings().max_failures:
            # Why, in plain words ("we cannot call satellite phones"), then asked for another.
            lines = [prompts().line(lang, refusal.prompt)] if refusal else []
            return ask(
                lines + number_lines(lang),
                "voice.details.number_choice",
                num_digits=0,
                timeout=number_timeout(),
                lang=lang,
                ref=ref,
                fails=failed,
            )
        current_app.logger.info("no valid callback number for call %s", call_sid())
    callers.save_or_keep(call_sid(), callback_number=chosen, step="number")
    events.record("number", lang)
    if chosen and chosen != own:
        # Kept already (nothing is lost if the call drops); read back for the caller to check.
        return ask(
            [prompts().line(lang, "number_typed_readback"), *spoken_number(lang, chosen)]
            + READBACK.lines(lang),
            "voice.details.number_checked",
            lang=lang,
            ref=ref,
            fails=fails(),
        )
    reachable = {} if chosen or own else {"unreachable": "1"}
    return redirect("voice.details.a_number", lang=lang, ref=ref, **reachable)


@bp.post("/number/checked")
def number_checked(lang: str):
    """After a typed number was read back: 2 asks for it again, anything else keeps it."""
    ref = request.args.get("ref", "")
    if READBACK.choose(lang, request.form.get("Digits", "")) is False:
        return redirect("voice.details.number", lang=lang, ref=ref, fails=fails())
    return redirect("voice.details.a_number", lang=lang, ref=ref)


def reachable_args() -> dict[str, Any]:
    return {"unreachable": "1"} if request.args.get("unreachable") == "1" else {}


def a_number_gather(lang: str, lines: list[Line], ref: str, failed: int, empties: int) -> Response:
    # Twilio posts an empty answer both for a lone # and for silence: the first empty answer
    # asks once more ("press pound again"), the second skips the step.
    return ask(
        lines + [prompts().line(lang, "anumber_ask")],
        "voice.details.a_number_choice",
        num_digits=0,
        post_empty=True,
        lang=lang,
        ref=ref,
        fails=failed,
        empties=empties,
        **reachable_args(),
    )


@bp.route("/a-number", methods=["POST"])
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
        return ask(
            again,
            "voice.details.a_number_choice",
            num_digits=0,
            post_empty=True,
            lang=lang,
            ref=ref,
            fails=fails(),
            empties=1,
            **reachable_args(),
        )
    if digits and a_number is None:
        failed = fails() + 1
        if failed < settings().max_failures:
            invalid = [prompts().line(lang, "anumber_invalid")]
            return a_number_gather(lang, invalid, ref, failed, empties)
    callers.save_or_keep(call_sid(), a_number=a_number, step="complete")
    events.record("complete", lang)
    if a_number is not None:
        # Kept at once (a number entered again replaces it), read back in groups of three, as
        # on ICE's papers, then confirmed.
        p = prompts()
        return ask(
            [p.line(lang, "anumber_readback"), *p.digits(lang, a_number, (3, 3, 3))]
            + READBACK.lines(lang),
            "voice.details.a_number_checked",
            lang=lang,
            ref=ref,
            fails=fails(),
            **reachable_args(),
        )
    return redirect("voice.details.confirmation", lang=lang, ref=ref, **reachable_args())


@bp.post("/a-number/checked")
def a_number_checked(lang: str):
    """After the A-number was read back: 2 asks for it again, anything else keeps it."""
    ref = request.args.get("ref", "")
    if READBACK.choose(lang, request.form.get("Digits", "")) is False:
        return a_number_gather(lang, [], ref, fails(), 0)
    return redirect("voice.details.confirmation", lang=lang, ref=ref, **reachable_args())


@bp.route("/confirmation", methods=["POST"])
def confirmation(lang: str):
    """Thank the caller, then the ending (`closing.py`): the urgency question, the reference
    twice with the offer of it by text, and when to expect a call (or that we cannot)."""
    return twiml(closing.ending(lang, [prompts().line(lang, "confirmation")]))
