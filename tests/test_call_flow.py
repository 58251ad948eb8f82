"""A family member's call from the greeting through the topics, placed as Twilio places it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ivr.calls.prompts import Prompts
from ivr.db import as_utc, db
from ivr.devtools.emulator import Call
from ivr.edge import keys
from ivr.requests.models import Call as CallRow
from ivr.voice.welcome import spoken_language

from .conftest import PROJECT_ROOT, TOKEN

REAL = Prompts(PROJECT_ROOT / "prompts")


def text(lang: str, name: str, **fields) -> str:
    return REAL.line(lang, name, **fields).text


def test_greeting_is_in_both_languages_with_keypad_and_voice(call):
    """Each welcome is followed by its own key, the default language (es in tests) first."""
    twiml = call.answer()
    gather = twiml.find("Gather")
    assert gather.get("input") == "dtmf speech"
    assert gather.get("numDigits") == "1"
    says = gather.findall("Say")
    assert [s.get("language") for s in says] == ["es-US", "en-US"]
    assert says[0].text == f"{text('es', 'welcome')} {text('es', 'choose_language')}"
    assert says[1].text == f"{text('en', 'welcome')} {text('en', 'choose_language')}"
    assert says[0].get("voice") == "Polly.Lupe-Neural"
    assert says[1].get("voice") == "Polly.Joanna-Neural"


def test_english_greets_first_when_it_is_the_default_language(make_app):
    call = Call(make_app(DEFAULT_LANGUAGE="en").test_client(), TOKEN)
    says = call.answer().find("Gather").findall("Say")
    assert [s.get("language") for s in says] == ["en-US", "es-US"]
    assert says[0].text.startswith(text("en", "welcome"))


@pytest.mark.parametrize(("key", "lang"), [("1", "en"), ("2", "es")])
def test_keypad_choice_leads_to_menu_in_that_language(call, key, lang):
    call.answer()
    twiml = call.press(key)
    heard = call.heard()
    # Issue 23: "press 0" first (within 15 s), then the disclaimer, then the menu.
    assert heard.startswith(f"{text(lang, 'firm_first')} {text(lang, 'disclaimer')}")
    assert text(lang, "menu_intro") in heard
    assert {s.get("language") for s in call.said()} == {f"{lang}-US"}
    assert twiml.find("Gather").get("action").startswith(f"/voice/{lang}/menu/choice")


@pytest.mark.parametrize(
    ("speech", "lang"),
    [("Español.", "es"), ("espanol por favor", "es"), ("English", "en"), ("Spanish.", "es")],
)
def test_voice_choice(call, speech, lang):
    call.answer()
    call.say(speech)
    assert text(lang, "disclaimer") in call.heard()


def test_unrecognised_speech_asks_again(call):
    assert spoken_language("hello there") is None
    call.answer()
    call.say("hello there")
    assert call.heard() == f"{text('es', 'choose_language')} {text('en', 'choose_language')}"
    action = call.gather().get("action")
    assert "fails=1" in action
    call.say("I don't know")
    call.say("what")  # three failures in a row: the default language (es in tests)
    assert text("es", "disclaimer") in call.heard()


def test_silence_asks_again_then_continues_in_default_language(call, app):
    call.answer()
    call.silence()
    assert text("en", "choose_language") in call.heard()
    assert text("en", "welcome") not in call.heard()
    call.silence()
    call.silence()  # third silence in a row: the default language (es in tests)
    assert text("es", "disclaimer") in call.heard()
    assert call.twiml.find("Gather").get("action").startswith("/voice/es/menu")


def test_menu_is_built_from_topic_files(call, prompts_dir):
    call.answer()
    call.press("1")
    heard = call.heard()
    for topic in REAL.topics("en"):
        assert text("en", "menu_option", label=topic.label, key=topic.number) in heard
    # A new topic file is a new option on the next call, without a restart.
    (prompts_dir / "en" / "topics" / "6-visits.txt").write_text(
        "how to visit a detention center\n\nVisiting hours vary by center.\n"
    )
    call.press("*")
    assert "To hear how to visit a detention center, press 6." in call.heard()
    call.press("6")
    assert "Visiting hours vary by center." in call.heard()


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_topic_is_read_and_offers_the_same_options(call, lang):
    call.answer()
    call.press("1" if lang == "en" else "2")
    topics = REAL.topics(lang)
    assert len(topics) == 5
    for topic in topics:
        call.press("9")
        call.press(str(topic.number))
        gather = call.gather()
        assert gather.find("Say").text.startswith(topic.body[:40])  # barge-in: inside Gather
        heard = call.heard()
        for option in ("repeat", "menu", "firm", "callback"):
            assert text(lang, f"option_{option}") in heard
        last = topic is topics[-1]
        assert (text(lang, "option_next") in heard) is not last


def test_after_topic_keys_repeat_next_menu(call):
    call.answer()
    call.press("1")
    call.press("2")
    body2 = REAL.topic("en", 2).body
    assert body2 in call.heard()
    call.press("*")
    assert body2 in call.heard()
    call.press("#")
    assert REAL.topic("en", 3).body in call.heard()
    call.press("9")
    assert text("en", "menu_intro") in call.heard()


def test_invalid_key_says_so_and_repeats_the_menu(call):
    call.answer()
    call.press("1")
    call.press("7")
    heard = call.heard()
    assert heard.startswith(text("en", "invalid"))
    assert text("en", "menu_intro") in heard


def test_three_failures_offer_the_firm_and_a_callback_not_a_hangup(call):
    call.answer()
    call.press("1")
    call.press("7")
    call.silence()
    twiml = call.press("6")
    heard = call.heard()
    assert text("en", "too_many_tries") in heard
    assert text("en", "option_firm") in heard and text("en", "option_callback") in heard
    assert twiml.find("Hangup") is None
    # Still nothing: the caller is put through to the firm rather than dropped.
    call.silence()
    assert call.twiml.find("Dial/Number").text == "+13125550100"


def test_failures_reset_after_a_good_choice(call):
    call.answer()
    call.press("1")
    call.press("7")
    call.press("7")
    call.press("1")  # a topic: the count starts again
    call.press("5")
    call.press("5")
    assert text("en", "too_many_tries") not in call.heard()


def test_edited_prompt_is_heard_on_the_next_request(call, prompts_dir):
    (prompts_dir / "es" / "disclaimer.txt").write_text("Información general, nada más.\n")
    call.answer()
    call.press("2")
    assert call.heard().startswith(f"{text('es', 'firm_first')} Información general, nada más.")


def test_menus_interrupt_and_redirect_on_silence(call):
    call.answer()
    twiml = call.press("2")
    gather = call.gather()  # the menu's (issue 23: a short "press 0" Gather comes first)
    assert gather.findall("Say"), "the menu must be spoken inside the Gather (barge-in)"
    assert twiml.find("Redirect").text == gather.get("action")
    call.silence()
    assert call.heard().startswith(text("es", "no_input"))


def test_each_call_is_counted_once_for_the_staff_chart(app, call):
    call.answer()
    action = call.gather().get("action")
    call.press("2")
    call.follow(action, Digits="2")  # Twilio retrying the same request
    with app.app_context():
        rows = db.session.execute(
            sa.select(CallRow.call_sid, CallRow.language, CallRow.from_number)
        ).all()
    assert rows == [(call.sid, "es", call.from_number)]


def test_counted_call_reads_back_through_the_orm(app, call, caplog):
    """The call row is written in the request: the ORM reads the same values back, created_at
    included, on SQLite and PostgreSQL alike; a failed write is kept in the fallback (one line)
    and the caller goes on."""
    before = dt.datetime.now(dt.UTC)
    call.answer()
    call.press("1")
    with app.app_context():
        row = db.session.scalars(sa.select(CallRow)).one()
        assert (row.call_sid, row.language, row.from_number) == (call.sid, "en", call.from_number)
        assert before - dt.timedelta(seconds=1) <= as_utc(row.created_at) <= dt.datetime.now(dt.UTC)
        # Stored as the ORM stores it (on SQLite a datetime is text, in SQLAlchemy's format).
        db.session.add(CallRow(call_sid="CAorm", language="es", created_at=row.created_at))
        db.session.commit()
        stored = db.session.execute(sa.text("SELECT created_at FROM calls ORDER BY id")).scalars()
        ours, orms = [str(value) for value in stored]
        assert ours == orms
        db.session.execute(sa.text("DROP TABLE calls"))
        db.session.commit()
    second = Call(call.client, TOKEN)
    second.answer()
    second.press("2")
    assert second.heard().startswith(
        f"{REAL.text('es', 'firm_first')} {REAL.text('es', 'disclaimer')}"
    )
    [logged] = [r.getMessage() for r in caplog.records if "IVR-JOURNAL" in r.getMessage()]
    with app.app_context():  # the log's copy is encrypted (DATA_KEYS), see fallback.py
        kept = keys.decrypt(logged.split("IVR-JOURNAL ")[1])
    assert f'"call_sid":"{second.sid}"' in kept and '"kind":"call"' in kept
    assert second.sid not in logged and "from_number" not in logged


def test_topic_files_cannot_take_reserved_keys(call, prompts_dir):
    (prompts_dir / "en" / "topics" / "8-visits.txt").write_text("visits\n\nVisiting hours.\n")
    (prompts_dir / "en" / "topics" / "10-more.txt").write_text("more\n\nMore.\n")
    call.answer()
    call.press("1")
    heard = call.heard()
    assert "visits" not in heard and "more, press" not in heard
    assert heard.count("press 8") == 1  # only the callback request
    call.press("8")  # still the callback request
    assert call.twiml.find("Record") is not None


def test_wrong_key_at_the_greeting_says_so_in_both_languages(call):
    call.answer()
    call.press("5")
    heard = call.heard()
    assert heard.startswith(f"{text('en', 'invalid')} {text('es', 'invalid')}")
    assert text("en", "choose_language") in heard


def test_speech_is_recognised_in_the_configured_language(call):
    assert call.answer().find("Gather").get("language") == "es-US"
