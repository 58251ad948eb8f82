"""What the hotline says (issue 11), heard through signed calls that follow the TwiML.

The disclaimer is heard once and in full; the office hours, holidays and callback promise follow
the settings in both languages; the relative is "you"; the Spanish names `#` so that it cannot
be taken for "número"; a number read back ends before the next sentence; lines awaiting the
firm's approval are listed by `ivr prompts check` and never spoken as marks.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from ivr.calls.prompts import LANGUAGES, Prompts
from ivr.commands.audio import prompts_group
from ivr.devtools.emulator import Call

from .conftest import PROJECT_ROOT, TOKEN

REAL = Prompts(PROJECT_ROOT / "prompts")
KEY = {"en": "1", "es": "2"}
HOURS = "mon-fri 09:00-17:00"


def at(*moment: int, zone: str = "America/Chicago"):
    """A CLOCK setting: the given local time in the office's zone."""
    from zoneinfo import ZoneInfo

    return lambda: dt.datetime(*moment, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def text(lang: str, name: str) -> str:
    return REAL.text(lang, name)


def start(app, lang: str, **caller: str) -> Call:
    call = Call(app.test_client(), TOKEN, **caller)
    call.answer()
    call.press(KEY[lang])
    return call


def leave_message(call: Call, lang: str) -> None:
    """From any menu: 8, a message, the number read back (1), no A-number (# twice)."""
    call.press("8")
    call.follow(
        call.twiml.find("Record").get("action"),
        RecordingUrl="https://api.twilio.com/x",
        RecordingSid="RE" + call.sid[2:],
        RecordingDuration="9",
    )
    call.press("1")
    call.press("#")
    call.press("#")
    assert text(lang, "confirmation") in call.heard()


# The disclaimer ---------------------------------------------------------------------------------


def outside_gathers(twiml: ET.Element) -> list[ET.Element]:
    """The answer's verbs up to the menu's Gather (the last), with what each says."""
    verbs = list(twiml)
    last = max(i for i, verb in enumerate(verbs) if verb.tag == "Gather")
    return verbs[:last]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_disclaimer_is_heard_once_in_full_before_the_menu_and_outside_any_gather(call, lang):
    call.answer()
    twiml = call.press(KEY[lang])
    disclaimer = text(lang, "disclaimer")
    assert ("Every case is different." if lang == "en" else "Cada caso es diferente.") in disclaimer
    # Issue 23: while the office is open, only "press 0" comes before it, in a Gather of its own
    # (0 rings the firm, 8 leaves a message; any other key hears the disclaimer first).
    early, first = outside_gathers(twiml)
    assert early.tag == "Gather" and [s.text for s in early.iter("Say")] == [
        text(lang, "firm_first")
    ]
    assert first.tag == "Say" and first.text == disclaimer  # outside a Gather: no key cuts it
    assert all(disclaimer not in (say.text or "") for say in twiml.iter("Say") if say is not first)
    for gather in twiml.iter("Gather"):
        assert disclaimer not in ET.tostring(gather, encoding="unicode")
    heard = [call.heard()]
    for keys in ("*", "1", "#", "9", "7", "5", "*", "9"):  # repeat, topics, menu, a wrong key
        call.press(keys)
        heard.append(call.heard())
    assert " ".join(heard).count(disclaimer) == 1


def test_disclaimer_also_comes_first_after_silence_at_the_greeting(call):
    call.answer()
    for _ in range(3):
        call.silence()  # the default language (es in tests)
    early, first = outside_gathers(call.twiml)
    assert early.tag == "Gather" and first.text == text("es", "disclaimer")


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", ["1", "5", "9", "*", "6"])
def test_a_key_pressed_before_the_disclaimer_hears_it_first(call, lang, key):
    """A topic key (or any but 0 and 8) pressed while only "press 0" was said: the disclaimer
    comes first, then the topic or the menu; never legal content without it."""
    call.answer()
    call.press(KEY[lang])
    twiml = call.press_early(key)
    first = list(twiml)[0]
    assert first.tag == "Say" and first.text == text(lang, "disclaimer")
    if key in ("1", "5"):
        assert REAL.topic(lang, int(key)).body[:60] in call.heard()
    else:
        assert REAL.topics(lang)[0].label in call.heard()  # the menu, 0 said again
        assert text(lang, "option_firm") in call.heard()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_zero_and_eight_before_the_disclaimer_ring_the_firm_or_take_a_message(call, lang):
    call.answer()
    call.press(KEY[lang])
    assert call.press_early("0").find("Dial/Number").text is not None
    call.answer()
    call.press(KEY[lang])
    call.press_early("8")
    assert text(lang, "record_intro") in call.heard()
    assert text(lang, "disclaimer") not in call.heard()


# The office: hours, holidays, and what topic 5 and the menus offer ------------------------------


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "en",
            "Our office is closed right now. We are open Monday to Friday, from 9 a.m. "
            "to 5 p.m., Central time.",
        ),
        (
            "es",
            "En este momento nuestra oficina está cerrada. Abrimos de lunes "
            "a viernes, de 9 de la mañana a 5 de la tarde, hora del centro de los Estados Unidos.",
        ),
    ],
)
def test_closed_office_says_its_hours_from_the_setting(make_app, lang, expected):
    app = make_app(OFFICE_HOURS=HOURS, CLOCK=at(2026, 11, 29, 20, 0))  # a Sunday evening
    call = start(app, lang)
    assert text(lang, "option_firm") not in call.heard()
    call.press("0")
    assert call.heard().startswith(expected)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "We are open Tuesday to Saturday, from 8:30 a.m. to 1 p.m., Eastern time."),
        (
            "es",
            "Abrimos de martes a sábado, de 8:30 de la mañana a 1 de la "
            "tarde, hora del este de los Estados Unidos.",
        ),
    ],
)
def test_changing_the_setting_changes_what_is_said(make_app, lang, expected):
    app = make_app(
        OFFICE_HOURS="tue-sat 08:30-13:00",
        OFFICE_TIMEZONE="America/New_York",
        CLOCK=at(2026, 11, 30, 14, 0, zone="America/New_York"),
    )  # Monday, closed
    call = start(app, lang)
    call.press("0")
    assert expected in call.heard()
    # The callback promise gives the same hours.
    leave_message(call, lang)
    assert f"{text(lang, 'expect_call')} {expected}" in call.heard()


@pytest.mark.parametrize(
    ("hours", "lang", "expected"),
    [
        ("mon 12:00-24:00", "en", "We are open on Monday, from 12 p.m. to midnight, Central time."),
        (
            "mon 12:00-24:00",
            "es",
            "Abrimos los lunes, de 12 del mediodía a medianoche, hora del centro",
        ),
        ("fri-mon 19:30-23:00", "en", "Friday to Monday, from 7:30 p.m. to 11 p.m."),
        ("fri-mon 19:30-23:00", "es", "de viernes a lunes, de 7:30 de la noche a 11 de la noche"),
        (
            "always",
            "en",
            "Our office is closed today. We reopen on Wednesday, December 2. To leave",
        ),
    ],
)
def test_any_office_hours_are_said_in_words(make_app, hours, lang, expected):
    app = make_app(
        OFFICE_HOURS=hours, OFFICE_CLOSED_DATES="2026-12-01", CLOCK=at(2026, 12, 1, 10, 0)
    )  # a Tuesday, and closed
    call = start(app, lang)
    call.press("0")
    assert expected in call.heard()


@pytest.mark.parametrize(
    ("lang", "closed", "reopen"),
    [
        ("en", "Our office is closed today.", "We reopen on Monday, December 28."),
        ("es", "Hoy nuestra oficina está cerrada.", "Volvemos a abrir el lunes 28 de diciembre."),
    ],
)
def test_a_closure_date_changes_the_closed_message_and_the_callback_promise(
    make_app, lang, closed, reopen
):
    holidays = "2026-12-24,2026-12-25"
    thursday_morning = at(2026, 12, 24, 11, 0)  # within the weekly hours, but a holiday
    app = make_app(OFFICE_HOURS=HOURS, OFFICE_CLOSED_DATES=holidays, CLOCK=thursday_morning)
    call = start(app, lang)
    assert text(lang, "option_firm") not in call.heard()  # no 0 on a holiday
    assert call.press("0").find("Dial") is None
    assert call.heard().startswith(f"{closed} {reopen} {text(lang, 'office_hours').split('{')[0]}")
    leave_message(call, lang)
    assert f"{text(lang, 'expect_call')} {reopen}" in call.heard()

    # The evening before, the office is closed by its hours: the weekly hours alone would
    # promise Thursday, so the reopening is said too.
    app = make_app(OFFICE_HOURS=HOURS, OFFICE_CLOSED_DATES=holidays, CLOCK=at(2026, 12, 23, 18, 0))
    call = start(app, lang)
    call.press("0")
    assert call.heard().startswith(f"{text(lang, 'office_closed')} {reopen}")

    # Without the setting the same Thursday morning rings the firm, and promises no reopening.
    app = make_app(OFFICE_HOURS=HOURS, CLOCK=thursday_morning)
    call = start(app, lang)
    assert call.press("0").find("Dial") is not None
    # Another family: the first one's request, left the same (CLOCK) morning, is still open, and
    # calling again from its number is the "again" journey (voice/again.py).
    call = start(app, lang, from_number="+13125550177")
    leave_message(call, lang)
    assert reopen not in call.heard()
    assert text(lang, "office_hours").split("{")[0] in call.heard()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_menus_offer_a_person_first_and_only_while_the_office_is_open(make_app, lang):
    app = make_app(OFFICE_HOURS=HOURS, CLOCK=at(2026, 11, 30, 10, 0))  # Monday, open
    call = start(app, lang)
    # Issue 23: "press 0" first of all, in a Gather of its own before the disclaimer; the menu
    # after it does not say it again.
    assert call.twiml.find("Gather").find("Say").text == text(lang, "firm_first")
    heard = call.heard()
    assert heard.index(text(lang, "firm_first")) < heard.index(REAL.topics(lang)[0].label)
    assert text(lang, "option_firm") not in call.gather().find("Say").text
    call.press("5")
    after = call.gather().find("Say").text
    assert after.endswith(text(lang, "option_menu"))
    assert text(lang, "option_firm") in after  # topic 5's "contact us today": 0 works now

    app = make_app(OFFICE_HOURS=HOURS, CLOCK=at(2026, 11, 29, 20, 0))  # Sunday, closed
    call = start(app, lang)
    menu = call.gather().find("Say").text
    assert menu.startswith(text(lang, "option_callback"))
    call.press("5")
    heard = call.heard()
    assert text(lang, "option_firm") not in heard and text(lang, "option_callback") in heard
    for untrue in ("talk with our office", "hablar con nuestra oficina"):
        assert untrue not in REAL.topic(lang, 5).body


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            "We will call you from this number: three, one, two. five, five, five. zero, one, "
            "nine, nine. Before we call, please have ready the detained person's A-number",
        ),
        (
            "es",
            "Le vamos a llamar desde este número: tres, uno, dos. cinco, cinco, cinco. cero, "
            "uno, nueve, nueve. Antes de que le llamemos, tenga a la mano el número A",
        ),
    ],
)
def test_the_callback_promise_says_what_a_family_needs_before_the_call(make_app, lang, words):
    app = make_app(CALLBACK_FROM_NUMBER="+13125550199")
    call = start(app, lang)
    leave_message(call, lang)
    assert words in call.heard()
    assert text(lang, "confidential") in call.heard()
    # No number set: none promised. Another caller: the same number would now add to its open
    # request (issue 13, tests/test_families.py).
    call = Call(make_app().test_client(), TOKEN, from_number="+13125550124")
    call.answer()
    call.press(KEY[lang])
    leave_message(call, lang)
    assert text(lang, "callback_from") not in call.heard()
    assert text(lang, "before_callback") in call.heard()


# The words ---------------------------------------------------------------------------------------


def test_the_caller_is_the_relative_not_the_detained_person(call):
    call.answer()
    call.press("1")
    bodies = []
    for topic in REAL.topics("en"):
        call.press("9")
        call.press(str(topic.number))
        bodies.append(call.heard())
    english = " ".join(bodies)
    for wrong in (
        "your freedom",
        "your rights",
        "you can ask for a bond hearing",
        "your attorney",
        "your specific case",
    ):
        assert wrong not in english
    assert "the detained person, or their attorney, can ask an immigration judge" in english
    assert "a judge looks at ICE's decision again" in english  # plain words, as in Spanish
    assert "This is called a motion to reconsider." in english
    assert "the law may require that the person stay detained. This is called mandatory" in english
    assert "usted puede pedir" not in " ".join(t.body for t in REAL.topics("es"))


@pytest.mark.parametrize(
    ("lang", "deadline"),
    [
        (
            "en",
            "The Board is a higher court that reviews judges' decisions. The Board must receive "
            "the appeal within 30 days of the judge's decision. Weekends count. Do not wait.",
        ),
        (
            "es",
            "La Junta tiene que recibir la apelación antes de que pasen 30 días desde la decisión "
            "del juez. Los fines de semana también cuentan.",
        ),
    ],
)
def test_the_appeal_deadline_is_said_plainly_and_the_approval_mark_is_not(call, lang, deadline):
    call.answer()
    call.press(KEY[lang])
    call.press("3")
    heard = call.heard()
    assert deadline in heard
    assert "dentro de 30 días" not in heard
    assert "approve" not in heard and "#" not in heard


def test_no_spanish_prompt_says_tecla_de_numero(call):
    for name in REAL.names("es"):
        spoken = (
            REAL.topic("es", int(name[7])).body
            if name.startswith("topics/")
            else REAL.text("es", name)
        )
        assert "tecla de número" not in spoken, name
    call.answer()
    call.press("2")
    call.press("1")
    # Issue 23: `#` is named one way everywhere, as the other prompts name it.
    assert "oprima la tecla de numeral, la del signo de gato" in call.heard()


@pytest.mark.parametrize(
    ("lang", "joined"),
    [
        ("en", r"one, two, three\. To be called back"),
        ("es", r"uno, dos, tres\. Para que le llamemos"),
    ],
)
def test_a_number_read_back_ends_before_the_next_sentence(call, lang, joined):
    call.answer()
    call.press(KEY[lang])
    call.press("8")
    call.follow(
        call.twiml.find("Record").get("action"),
        RecordingUrl="https://api.twilio.com/x",
        RecordingSid="RE" + call.sid[2:],
        RecordingDuration="9",
    )
    assert re.search(joined, call.heard()), call.heard()


# For the firm: approval marks and what an edit costs a caller -----------------------------------


@pytest.fixture
def run_check(app):
    runner = app.test_cli_runner()
    return lambda: runner.invoke(prompts_group, ["check"])


def test_prompts_check_lists_lines_awaiting_approval(run_check, prompts_dir, call):
    result = run_check()
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("approve: ")]
    assert {line.split(":")[1].strip() for line in listed} == {
        f"{lang}/{name}.txt"
        for lang in LANGUAGES
        for name in (
            "topics/2-bond-hearing",
            "topics/3-appeal",
            # issue 23 (content): mandatory detention since 2025; who counts for cancellation
            "topics/1-why-denied",
            "topics/4-other-options",
            "before_callback",
            "callback_from",
            "confidential",
            # issue 13 (families)
            "urgent_ask",
            "urgent_noted",
            "sms/reference",
            "again_call_back",
            # issue 20 (abuse): the firm's rules on what the line will text or call
            "number_refused_country",
            "number_refused_special",
            "number_refused_far",
            "sms_already_sent",
            "reference_new",
            # issue 23, round three: the recording asks when bond was denied and by whom
            "record_intro",
        )
    }
    assert "approve: en/topics/3-appeal.txt: The Board is a higher court" in (result.output)
    # A new mark is listed with the line below it, and neither is heard as a mark.
    (prompts_dir / "en" / "goodbye.txt").write_text(
        "Thank you for calling.\n# approve: a promise about the firm\nWe answer within a day.\n"
    )
    result = run_check()
    assert (
        "approve: en/goodbye.txt: We answer within a day. (a promise about the firm)"
        in result.output
    )
    assert f"{len(listed) + 1} line(s) awaiting the firm's approval" in result.output
    assert REAL.__class__(prompts_dir).text("en", "goodbye") == (
        "Thank you for calling. We answer within a day."
    )
    # A note that marks nothing is an error: the firm would approve an empty line.
    (prompts_dir / "es" / "goodbye.txt").write_text("Adiós.\n# approve: falta la línea\n")
    result = run_check()
    assert result.exit_code == 1
    assert "error: es/goodbye.txt: an '# approve:' note with no line below it" in result.output


def test_prompts_check_prints_what_an_edit_costs_a_caller(run_check, prompts_dir):
    figures = {}
    for line in run_check().output.splitlines():
        if line[:4] in ("en: ", "es: "):
            figures[line[:2]] = {
                name: float(value)
                for name, value in re.findall(r"([a-z0-9 ,]+?) ([\d.]+) s(?:, |$)", line[4:])
            }
    for lang in LANGUAGES:
        assert figures[lang]["to the 0 option"] < figures[lang]["to topic 1"]
        assert {f"topic {n}" for n in range(1, 6)} <= set(figures[lang])
        assert (
            figures[lang]["menu after a topic, closed"] < figures[lang]["menu after a topic, open"]
        )
    # A longer topic is a longer figure.
    topic = prompts_dir / "en" / "topics" / "1-why-denied.txt"
    topic.write_text(topic.read_text() + " More words." * 20)
    again = [line for line in run_check().output.splitlines() if line.startswith("en: ")][0]
    assert float(re.search(r", topic 1 ([\d.]+) s", again)[1]) > figures["en"]["topic 1"]


def test_an_office_zone_without_its_prompt_is_an_error_but_calls_go_on(make_app):
    app = make_app(
        OFFICE_HOURS=HOURS,
        OFFICE_TIMEZONE="Europe/Madrid",
        CLOCK=at(2026, 11, 29, 20, 0, zone="Europe/Madrid"),
    )
    result = app.test_cli_runner().invoke(prompts_group, ["check"])
    assert result.exit_code == 1
    assert "error: en/words/zone_madrid.txt: missing" in result.output
    call = start(app, "en")
    call.press("0")
    assert "from 9 a.m. to 5 p.m., CET." in call.heard()


# Issue 23: the four points that would mislead -------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "said", "not_said"),
    [
        (
            "en",
            (
                "If a judge denied bond in the last 30 days, if there is a court hearing in the "
                "next 7 days",
                "If not, please wait.",
            ),
            "If there is a court hearing",
        ),
        (
            "es",
            (
                "Si un juez negó la fianza en los últimos 30 días, si hay una audiencia",
                "Si no, espere en la línea.",
            ),
            "Si hay una audiencia",
        ),
    ],
)
def test_the_urgency_question_speaks_of_a_bond_denied_in_the_last_30_days(
    call, lang, said, not_said
):
    from .test_families import to_ending

    to_ending(call, lang)
    heard = call.heard()
    for words in said:
        assert words in heard, heard
    assert not_said not in heard


@pytest.mark.parametrize(
    ("lang", "topic", "said", "not_said"),
    [
        ("en", "1", "These rules changed in 2025 and are being challenged in court.", None),
        ("es", "1", "Estas reglas cambiaron en 2025 y hay casos en las cortes sobre ellas.", None),
        (
            "en",
            "4",
            "whose husband or wife, parent, or child is a United States citizen",
            "family members who are",
        ),
        ("es", "4", "cuyo esposo o esposa, padre o madre, o hijo o hija", "tiene familiares que"),
        (
            "en",
            "3",
            "if the situation changes, the person can ask for a new bond hearing",
            "new facts",
        ),
        ("es", "3", "la persona puede pedir otra audiencia de fianza", "hechos nuevos"),
    ],
)
def test_the_topics_no_longer_mislead(call, lang, topic, said, not_said):
    call.answer()
    call.press(KEY[lang])
    call.press(topic)
    heard = call.heard()
    assert said in heard, heard
    if not_said:
        assert not_said not in heard
    assert "approve" not in heard
