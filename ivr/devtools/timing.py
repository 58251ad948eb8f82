"""How long a caller waits for what matters, estimated from the lines the call really speaks.

`ivr prompts check` prints these figures so that whoever edits a prompt sees what the edit costs a
caller: seconds from the answer to "press 0" (talk with someone now), to "press 8" and to the
first topic, each topic's length, and every menu as it is said (open and closed). The lines come
from the menu tables the views say and answer (`ivr/voice/topics.py`, `welcome.py`,
`connect.py`), in the order of the answer after the language is chosen (`topics.first_menu`:
"press 0" first while the office is open, then the disclaimer, then the main menu), so a
reordered menu is measured as callers hear it. Speech only (150 words a minute in English, 160
in Spanish): no pauses, no round trips.

`ivr prompts check` fails when "press 0" comes later than MAX_TO_PERSON seconds in either
language (issue 23): a family in a hurry must hear how to reach a person first.
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts
from ivr.voice import connect
from ivr.voice import topics as topic_menus
from ivr.voice.welcome import choice_lines

WORDS_PER_MINUTE = {"en": 150, "es": 160}
MAX_TO_PERSON = 15.0  # seconds from the answer to the end of the first "press 0"
TO_PERSON = "to the 0 option"
FIRM_PROMPTS = ("firm_first", "option_firm")


def seconds(text: str, lang: str) -> float:
    return len(text.split()) / WORDS_PER_MINUTE[lang] * 60


def spoken(lines: Sequence[Line]) -> float:
    return sum(seconds(line.text, line.lang) for line in lines)


def until(lines: Sequence[Line], source: str | Sequence[str], lang: str) -> float:
    """Seconds of `lines` up to the end of the first line from prompt `source` (or any of
    several) in `lang`."""
    sources = (source,) if isinstance(source, str) else tuple(source)
    for i, line in enumerate(lines):
        if line.source in sources and line.lang == lang:
            return spoken(lines[: i + 1])
    raise LookupError(f"{lang}/{sources[0]} is not spoken here")


def after_choice(lang: str, is_open: bool) -> list[Line]:
    """What a first-time caller hears once the language is chosen, in order (`first_menu`)."""
    early = topic_menus.FIRST.lines(lang, open=is_open)
    disclaimer = [prompts().line(lang, "disclaimer")]
    menu = topic_menus.MAIN.lines(lang, open=is_open, offered=bool(early))
    return [*early, *disclaimer, *menu]


def timings(lang: str) -> dict[str, float]:
    """Figures for a caller who presses each key as soon as it is offered (office open for 0)."""
    p = prompts()
    chosen = until(choice_lines(greet=True), "choose_language", lang)
    heard = after_choice(lang, is_open=True)
    figures = {
        "to the language key": chosen,
        TO_PERSON: chosen + until(heard, FIRM_PROMPTS, lang),
        "to the 8 option, open": chosen + until(heard, "option_callback", lang),
        "to the 8 option, closed": chosen
        + until(after_choice(lang, is_open=False), "option_callback", lang),
    }
    topics = p.topics(lang)
    if topics:
        option = p.line(lang, "menu_option", label=topics[0].label, key=topics[0].number)
        figures[f"to topic {topics[0].number}"] = chosen + spoken(heard[: heard.index(option) + 1])
    for topic in topics:
        figures[f"topic {topic.number}"] = seconds(topic.body, lang)
    for state, is_open in (("open", True), ("closed", False)):
        figures[f"main menu, {state}"] = spoken(topic_menus.MAIN.lines(lang, open=is_open))
    if topics:
        number = topics[0].number
        for state, is_open in (("open", True), ("closed", False)):
            menu_after = topic_menus.AFTER_TOPIC.lines(lang, number=number, open=is_open)
            figures[f"menu after a topic, {state}"] = spoken(menu_after)
    figures["help menu, open"] = spoken(
        [p.line(lang, "too_many_tries"), *topic_menus.HELP.lines(lang, open=True)]
    )
    sample_hours = p.line(
        lang, "office_hours", days="Monday to Friday", opens="9", closes="5", zone="Central time"
    )
    closed = [p.line(lang, "office_closed"), sample_hours]
    figures["closed notice and options"] = spoken([*closed, *connect.OFFER.lines(lang, open=False)])
    figures["nobody answered and options"] = spoken(
        [p.line(lang, "dial_failed"), *connect.OFFER.lines(lang, open=True)]
    )
    return figures


def too_late(figures: dict[str, float]) -> bool:
    """Whether "press 0" comes later than MAX_TO_PERSON seconds (an error of the check)."""
    return figures.get(TO_PERSON, 0.0) > MAX_TO_PERSON
