"""Menus are tables (ivr/voice/menus.py): one row gives what a menu says and what its key does,
and `ivr prompts check` and the timings read the same rows."""

from __future__ import annotations

import pytest

from ivr import voice
from ivr.calls.prompts import Prompts
from ivr.commands.audio import prompts_group
from ivr.devtools import promptcheck
from ivr.devtools.timing import timings
from ivr.voice import connect, topics
from ivr.voice.menus import Menu, Option

from .conftest import PROJECT_ROOT

REAL = Prompts(PROJECT_ROOT / "prompts")
VISITS = {"en": "For visiting hours, press 6.", "es": "Para las horas de visita, oprima 6."}


@pytest.fixture
def visits_row(prompts_dir, monkeypatch):
    """A new row on the main menu: key 6, its prompt in both languages, the callback request."""
    for lang, text in VISITS.items():
        (prompts_dir / lang / "option_visits.txt").write_text(text + "\n", encoding="utf-8")
    row = Option("6", "option_visits", topics.to_callback, "visiting hours")
    menu = Menu(topics.MAIN.name, [*topics.MAIN.rows, row])
    monkeypatch.setattr(topics, "MAIN", menu)
    return menu


@pytest.mark.parametrize("lang_key", ["1", "2"])
def test_a_row_added_to_the_table_is_said_and_answered(call, visits_row, lang_key):
    lang = {"1": "en", "2": "es"}[lang_key]
    call.answer()
    call.press(lang_key)
    heard = call.heard()
    assert VISITS[lang] in heard
    # Said after the topics and "hear this again", as the table orders it.
    assert heard.index(REAL.text(lang, "option_repeat")) < heard.index(VISITS[lang])
    call.press("6")
    assert REAL.text(lang, "record_intro") in call.heard()  # its handler: the callback request


def test_a_key_not_in_the_table_is_not_an_option(call):
    call.answer()
    call.press("1")
    call.press("6")  # no topic 6, no row for 6
    assert call.heard().startswith(REAL.text("en", "invalid"))
    assert call.gather().get("action").startswith("/voice/en/menu/choice")


def test_removing_a_row_stops_both_saying_and_answering(call, monkeypatch):
    without_callback = [row for row in topics.MAIN.rows if row is not topics.CALLBACK_OPTION]
    monkeypatch.setattr(topics, "MAIN", Menu("main menu", without_callback))
    call.answer()
    call.press("1")
    assert REAL.text("en", "option_callback") not in call.heard()
    call.press("8")
    assert call.heard().startswith(REAL.text("en", "invalid"))


def test_the_closed_office_offer_is_said_and_answered_from_its_table(make_app):
    """Outside office hours 0 is not offered; the offer's rows are said in order, and 9 (a row)
    goes to the main menu."""
    from ivr.devtools.emulator import Call
    from tests.conftest import TOKEN

    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=sunday)
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("1")
    assert REAL.text("en", "option_firm") not in call.heard()
    call.press("0")  # unsaid, and still answered: the firm's step says the office is closed
    heard = call.heard()
    offer = [REAL.text("en", f"option_{name}") for name in ("callback", "menu", "repeat")]
    assert [heard.index(line) for line in offer] == sorted(heard.index(line) for line in offer)
    with app.test_request_context():
        assert [line.source for line in connect.OFFER.lines("en")] == [
            "option_callback",
            "option_menu",
            "option_repeat",
        ]
    call.press("9")
    assert REAL.text("en", "menu_intro") in call.heard()


def sunday():
    import datetime as dt

    return dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC)


def test_prompts_check_reserves_the_keys_in_the_tables(app, prompts_dir, visits_row):
    """A topic numbered 6 would collide with the new row: the check reads the table, not a list."""
    for lang in ("en", "es"):
        (prompts_dir / lang / "topics" / "6-more-help.txt").write_text("more\n\nSome words.\n")
    result = app.test_cli_runner().invoke(prompts_group, ["check"])
    assert result.exit_code == 1
    for lang in ("en", "es"):
        assert (
            f"error: {lang}/topics/6-more-help.txt: 6 is the key for visiting hours: "
            "topics are numbered 1 to 5" in result.output
        ), result.output


def test_prompts_check_wants_each_option_to_say_its_key(app, prompts_dir, monkeypatch):
    (prompts_dir / "es" / "option_firm.txt").write_text(
        "Para hablar ahora con nuestra oficina, oprima 6.\n", encoding="utf-8"
    )
    result = app.test_cli_runner().invoke(prompts_group, ["check"])
    assert result.exit_code == 1
    assert "error: es/option_firm.txt: does not say its key 0 (main menu: the firm)" in (
        result.output
    )
    assert "en/option_firm.txt" not in result.output
    # And a row's prompt is checked as soon as it is in a table (here one added to MENUS).
    (prompts_dir / "en" / "option_visits.txt").write_text("For visits, press 5.\n")
    (prompts_dir / "es" / "option_visits.txt").write_text("Para visitas, oprima 6.\n")
    extra = Menu("visits", [Option("6", "option_visits", topics.to_callback, "visiting hours")])
    monkeypatch.setattr(promptcheck, "MENUS", (*voice.MENUS, extra))
    problems = [str(p) for p in promptcheck.check(prompts_dir)]
    assert "error: en/option_visits.txt: does not say its key 6 (visits: visiting hours)" in (
        problems
    )
    assert not any(p.startswith("error: es/option_visits.txt") for p in problems)


def test_timings_measure_the_table(app, prompts_dir, monkeypatch):
    """A row put first before the disclaimer delays "talk with our office" by exactly its length
    (issue 23: 0 is offered there, before the main menu; a row on the main menu delays topic 1
    but not the 0)."""
    (prompts_dir / "en" / "option_visits.txt").write_text(VISITS["en"] + "\n", encoding="utf-8")
    row = Option("6", "option_visits", topics.to_callback, "visiting hours")
    length = promptcheck.seconds(VISITS["en"], "en")
    with app.app_context():
        before = timings("en")
        first = topics.FIRST
        monkeypatch.setattr(topics, "FIRST", Menu("first", [row, *first.rows]))
        after = timings("en")["to the 0 option"]
        monkeypatch.setattr(topics, "FIRST", first)
        monkeypatch.setattr(topics, "MAIN", Menu("main menu", [row, *topics.MAIN.rows]))
        on_main = timings("en")
    assert after - before["to the 0 option"] == pytest.approx(length)
    assert on_main["to the 0 option"] == pytest.approx(before["to the 0 option"])
    assert on_main["to topic 1"] - before["to topic 1"] == pytest.approx(length)
