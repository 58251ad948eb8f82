"""Call Now: the firm is rung with the caller's number, a whisper, and no caller is dropped."""

from __future__ import annotations

import datetime as dt

import pytest

from ivr.calls.prompts import Prompts
from ivr.devtools.emulator import Call

from .conftest import FIRM, PROJECT_ROOT, TOKEN

REAL = Prompts(PROJECT_ROOT / "prompts")


def in_menu(call, lang="es"):
    call.answer()
    call.press("1" if lang == "en" else "2")


@pytest.mark.parametrize("where", ["menu", "topic", "help"])
def test_zero_rings_the_firm_with_the_callers_number(call, where):
    in_menu(call)
    if where == "topic":
        call.press("3")
    if where == "help":
        for _ in range(3):
            call.press("6")
        assert REAL.text("es", "too_many_tries") in call.heard()
    twiml = call.press("0")
    assert REAL.text("es", "connecting") in call.heard()
    dial = twiml.find("Dial")
    assert dial.get("timeout") == "20"
    assert dial.get("callerId") == call.from_number
    assert dial.get("action") == "/voice/es/connect/done"
    number = dial.find("Number")
    assert number.text == FIRM
    assert number.get("url") == "/voice/whisper/es"


def test_withheld_caller_id_is_not_passed_on(client):
    call = Call(client, TOKEN, from_number="Anonymous")
    in_menu(call)
    dial = call.press("0").find("Dial")
    assert dial.get("callerId") is None
    assert dial.find("Number").text == FIRM


@pytest.mark.parametrize("status", ["completed", "answered"])
def test_answered_call_ends_with_goodbye(call, status):
    in_menu(call, "en")
    twiml = call.press("0")
    twiml = call.follow(
        twiml.find("Dial").get("action"),
        DialCallStatus=status,
        DialCallSid="CA" + "1" * 32,
        DialBridged="true",
        CallStatus="in-progress",
    )
    assert REAL.text("en", "goodbye") in call.heard()
    assert twiml.find("Hangup") is not None


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_unanswered_call_offers_a_callback_request(call, status):
    in_menu(call, "es")
    twiml = call.press("0")
    # CallStatus is the caller's own leg (still in progress): only DialCallStatus decides.
    twiml = call.follow(
        twiml.find("Dial").get("action"), DialCallStatus=status, CallStatus="in-progress"
    )
    heard = call.heard()
    assert heard.startswith(REAL.text("es", "dial_failed"))
    assert REAL.text("es", "option_callback") in heard and REAL.text("es", "option_menu") in heard
    assert twiml.find("Hangup") is None
    twiml = call.press("8")
    assert REAL.text("es", "record_intro") in call.heard()
    assert twiml.find("Record") is not None


def test_callback_offer_leads_to_the_menu_or_by_silence_to_the_recording(call):
    in_menu(call, "en")
    call.follow(call.press("0").find("Dial").get("action"), DialCallStatus="no-answer")
    call.press("9")
    assert REAL.text("en", "menu_intro") in call.heard()
    call.follow(call.press("0").find("Dial").get("action"), DialCallStatus="busy")
    twiml = call.silence()
    assert twiml.find("Record") is not None


def test_whisper_declined_is_not_a_connected_call(call):
    in_menu(call, "en")
    action = call.press("0").find("Dial").get("action")
    call.follow(action, DialCallStatus="completed", DialBridged="false")
    assert call.heard().startswith(REAL.text("en", "dial_failed"))


@pytest.mark.parametrize(
    ("caller", "prompt"), [("es", "whisper_caller_es"), ("en", "whisper_caller_en")]
)
def test_whisper_asks_the_firm_to_accept(client, caller, prompt):
    staff = Call(client, TOKEN, from_number="+13125550123", to_number=FIRM)
    twiml = staff.follow(f"/voice/whisper/{caller}", Direction="outbound-api")
    gather = twiml.find("Gather")
    assert gather.find("Say").text == REAL.text("en", prompt)
    assert twiml.find("Hangup") is not None  # nobody pressed: voicemail never gets the caller
    accepted = staff.press("1")
    assert list(accepted) == []  # an empty response joins the calls
    staff.follow(gather.get("action"), Digits="5")
    assert staff.twiml.find("Hangup") is not None


def closed_clock():
    # Sunday 2026-11-29 at noon in Chicago.
    return dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC)


def open_clock():
    # Monday 2026-11-30 at 10:00 in Chicago.
    return dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)


def test_outside_office_hours_offers_a_callback_instead_of_ringing(make_app):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=closed_clock)
    call = Call(app.test_client(), TOKEN)
    in_menu(call, "en")
    twiml = call.press("0")
    assert twiml.find("Dial") is None
    assert call.heard().startswith(REAL.text("en", "office_closed"))
    assert REAL.text("en", "option_callback") in call.heard()
    assert call.press("8").find("Record") is not None


def test_inside_office_hours_rings(make_app):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=open_clock)
    call = Call(app.test_client(), TOKEN)
    in_menu(call, "en")
    assert call.press("0").find("Dial/Number").text == FIRM


def silent_until_the_end(call, limit=40):
    """Say nothing, ever, and let every Dial go unanswered; return (steps, dials)."""
    call.answer()
    dials = 0
    for step in range(limit):
        twiml = call.twiml
        if twiml.find("Hangup") is not None:
            return step, dials
        if twiml.find("Dial") is not None:
            dials += 1
            call.follow(twiml.find("Dial").get("action"), DialCallStatus="no-answer")
        else:
            call.silence()
    raise AssertionError(f"a silent line was still on after {limit} steps")


def test_a_silent_line_rings_the_firm_once_and_then_ends(call):
    steps, dials = silent_until_the_end(call)
    assert dials == 1
    assert REAL.text("es", "call_again") in call.heard()  # the default language, after silence
    assert steps < 25


def test_a_silent_line_after_hours_ends_without_ringing(make_app):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=closed_clock)
    steps, dials = silent_until_the_end(Call(app.test_client(), TOKEN))
    assert dials == 0 and steps < 25


def test_star_in_the_help_menu_repeats_it(call):
    in_menu(call, "en")
    for _ in range(3):
        call.press("6")
    twiml = call.press("*")
    assert REAL.text("en", "too_many_tries") in call.heard()
    assert twiml.find("Dial") is None


def test_callback_offer_keys(call):
    in_menu(call, "en")
    action = call.press("0").find("Dial").get("action")
    call.follow(action, DialCallStatus="no-answer")
    call.press("*")  # issue 23: * repeats why (nobody answered), and 0 is offered to try again
    assert call.heard() == " ".join(
        [REAL.text("en", "dial_failed")]
        + [REAL.text("en", f"option_{n}") for n in ("callback", "try_again", "menu", "repeat")]
    )
    call.press("5")
    assert call.heard().startswith(REAL.text("en", "invalid"))
    assert call.press("0").find("Dial/Number").text == FIRM  # 0 is the firm, here too
    call.follow(call.twiml.find("Dial").get("action"), DialCallStatus="busy")
    assert call.press("8").find("Record") is not None


def test_a_wrong_key_in_the_help_menu_is_said_once(call):
    in_menu(call, "es")
    for _ in range(3):
        call.press("6")
    call.press("5")
    assert call.heard().startswith(REAL.text("es", "invalid"))
    assert REAL.text("es", "too_many_tries") in call.heard()
    assert call.press("5").find("Dial") is not None  # a second one: the firm, final round


def test_closed_office_menus_do_not_offer_to_talk_now(make_app):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=closed_clock)
    call = Call(app.test_client(), TOKEN)
    in_menu(call, "en")
    assert REAL.text("en", "option_firm") not in call.heard()
    call.press("2")
    assert REAL.text("en", "option_firm") not in call.heard()
    assert REAL.text("en", "option_callback") in call.heard()
    call.press("0")  # still means the firm: the office is closed, a message is offered
    assert call.heard().startswith(REAL.text("en", "office_closed"))
