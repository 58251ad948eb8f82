"""How long a caller waits for what matters, estimated from the lines the call really speaks.

`ivr prompts check` prints these figures so that whoever edits a prompt sees what the edit costs a
caller: seconds from the answer to the first topic and to "talk with our office" (0), each
topic's length, and the menu heard after every topic. The lines come from the menu tables the
views say and answer (`ivr/voice/topics.py`, `welcome.py`), so a reordered menu is measured as
callers hear it. Speech only (150 words a minute in English, 160 in Spanish): no pauses, no
round trips.
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts
from ivr.devtools.promptcheck import seconds
from ivr.voice import topics as topic_menus
from ivr.voice.welcome import choice_lines


def spoken(lines: Sequence[Line]) -> float:
    return sum(seconds(line.text, line.lang) for line in lines)


def until(lines: Sequence[Line], source: str, lang: str) -> float:
    """Seconds of `lines` up to the end of the first line from prompt `source` in `lang`."""
    for i, line in enumerate(lines):
        if line.source == source and line.lang == lang:
            return spoken(lines[: i + 1])
    raise LookupError(f"{lang}/{source} is not spoken here")


def timings(lang: str) -> dict[str, float]:
    """Figures for a caller who presses each key as soon as it is offered (office open for 0)."""
    p = prompts()
    greeting = choice_lines(greet=True)
    answer = until(greeting, "choose_language", lang) + spoken([p.line(lang, "disclaimer")])
    menu = topic_menus.MAIN.lines(lang, open=True)
    topics = p.topics(lang)
    figures = {"to the 0 option": answer + until(menu, "option_firm", lang)}
    if topics:
        option = p.line(lang, "menu_option", label=topics[0].label, key=topics[0].number)
        figures[f"to topic {topics[0].number}"] = answer + spoken(menu[: menu.index(option) + 1])
    for topic in topics:
        figures[f"topic {topic.number}"] = seconds(topic.body, lang)
    if topics:
        number = topics[0].number
        for state, is_open in (("open", True), ("closed", False)):
            menu_after = topic_menus.AFTER_TOPIC.lines(lang, number=number, open=is_open)
            figures[f"menu after a topic, {state}"] = spoken(menu_after)
    return figures
