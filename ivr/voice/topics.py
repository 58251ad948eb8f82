"""The main menu and the topics from the firm's post, in the caller's language.

The menu is built from the topic files, so a new file under `prompts/<lang>/topics/` is a new
option. Every prompt sits inside a `<Gather>`, so a key press interrupts it. A choice answers with
the next menu or topic itself rather than a `<Redirect>`: each redirect is one more round trip to
the app that the caller would sit through in silence.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from ivr.calls.prompts import Line, Topic
from ivr.calls.twiml import prompts, says_slowly
from ivr.requests import missed
from ivr.settings import settings
from ivr.voice.common import (
    CALLBACK,
    FIRM,
    MAIN_MENU,
    NEXT,
    REPEAT,
    SLOWER,
    ask,
    fails,
    options_lines,
    redirect,
)
from ivr.voice.connect import office_open

bp = Blueprint("topics", __name__, url_prefix="/<any(en, es):lang>")


def menu_lines(lang: str, firm: list[str] | None = None) -> list[Line]:
    """The quickest way to a person first: while the office is open, "talk with our office now"
    (the post's "Call Now") before the topics; while it is closed, the message. `firm`
    overrides the office's state."""
    p = prompts()
    firm = firm_option() if firm is None else firm
    first, last = (firm, ["callback", "repeat"]) if firm else (["callback"], ["repeat"])
    lines = options_lines(lang, *first) + [p.line(lang, "menu_intro")]
    lines += [
        p.line(lang, "menu_option", label=topic.label, key=topic.number) for topic in p.topics(lang)
    ]
    return lines + options_lines(lang, *last)


def firm_option() -> list[str]:
    """ "Talk with someone now" is said only while the office is open (0 still answers)."""
    return ["firm"] if office_open() else []


def topic_options(lang: str, number: int, firm: list[str] | None = None) -> list[Line]:
    """What the caller can do after a topic, the next topic first; "next" only when a later
    topic exists, "talk with our office now" only while it is open (what topic 5's "contact us
    today" leads to), "more slowly" only when it can be done (`slow_line`). Kept short: it
    follows every topic."""
    p = prompts()
    firm = firm_option() if firm is None else firm
    found = p.topic(lang, number)
    slower = ["slower"] if found is not None and slow_line(lang, found) is not None else []
    options = ["next", *firm, "callback", "repeat", *slower, "menu"]
    if not any(t.number > number for t in p.topics(lang)):
        options.remove("next")
    return options_lines(lang, *options)


def slow_line(lang: str, found: Topic) -> Line | None:
    """The topic to be spoken more slowly: its slow audio when built (`ivr audio build`), else
    `<Say>` at a slower rate where the voice takes SSML; None when neither can be done, so the
    option is not offered rather than played at the same speed."""
    line = Line(lang, found.body, found.name, slow=True)
    audio = current_app.extensions.get("ivr.calls.audio")
    if (audio is not None and audio.url(line)) or says_slowly(lang):
        return line
    return None


def common_key(lang: str, digits: str):
    """Keys that mean the same on every menu; None when `digits` is not one of them."""
    if digits == FIRM:
        return redirect("voice.connect.start", lang=lang)
    if digits == CALLBACK:
        return redirect("voice.callback.start", lang=lang)
    if digits == MAIN_MENU:
        return menu(lang)
    return None


def retry(lang: str, lines: list[Line], endpoint: str, **values: Any):
    """Count a failure; say the menu again, or after too many offer the firm and a callback."""
    failed = fails() + 1
    if failed >= settings().max_failures:
        return help(lang)
    reason = "invalid" if request.form.get("Digits") else "no_input"
    lines = [prompts().line(lang, reason)] + lines
    return ask(lines, endpoint, lang=lang, fails=failed, **values)


@bp.post("/menu")
def menu(lang: str):
    return ask(menu_lines(lang), "voice.topics.menu_choice", lang=lang, fails=0)


@bp.post("/menu/choice")
def menu_choice(lang: str):
    digits = request.form.get("Digits", "")
    if digits == REPEAT:
        return menu(lang)
    if len(digits) == 1 and digits.isdigit() and prompts().topic(lang, int(digits)):
        return topic(lang, int(digits))
    return common_key(lang, digits) or retry(lang, menu_lines(lang), "voice.topics.menu_choice")


@bp.post("/topics/<int:number>")
def topic(lang: str, number: int, slowly: bool = False):
    found = prompts().topic(lang, number)
    if found is None:  # a topic file removed mid-call
        return menu(lang)
    missed.mark(request.form.get("CallSid", ""), "topic", str(number))  # for the missed list
    body = slow_line(lang, found) if slowly else None
    lines = [body or Line(lang, found.body, found.name)] + topic_options(lang, number)
    return ask(lines, "voice.topics.topic_choice", lang=lang, number=number, fails=0)


@bp.post("/topics/<int:number>/choice")
def topic_choice(lang: str, number: int):
    digits = request.form.get("Digits", "")
    if digits == REPEAT:
        return topic(lang, number)
    found = prompts().topic(lang, number)
    if digits == SLOWER and found is not None and slow_line(lang, found) is not None:
        return topic(lang, number, slowly=True)
    if digits == NEXT:
        later = [t.number for t in prompts().topics(lang) if t.number > number]
        if later:
            return topic(lang, later[0])
    return common_key(lang, digits) or retry(
        lang, topic_options(lang, number), "voice.topics.topic_choice", number=number
    )


@bp.post("/help")
def help(lang: str):
    """After repeated failures: the simplest choices, then the firm rather than a hang-up."""
    return ask(help_lines(lang), "voice.topics.help_choice", lang=lang, fails=0)


def help_lines(lang: str) -> list[Line]:
    return [
        prompts().line(lang, "too_many_tries"),
        *options_lines(lang, *firm_option(), "callback", "menu"),
    ]


@bp.post("/help/choice")
def help_choice(lang: str):
    digits = request.form.get("Digits", "")
    if digits == REPEAT:
        return help(lang)
    chosen = common_key(lang, digits)
    if chosen is not None:
        return chosen
    if digits and fails() == 0:  # one wrong key: "not an option", and the help menu again
        lines = [prompts().line(lang, "invalid"), *help_lines(lang)]
        return ask(lines, "voice.topics.help_choice", lang=lang, fails=1)
    # Silence, or a second wrong key: ring the firm (or, when closed, offer a message) as the
    # caller's final round, so a silent line ends rather than cycling.
    return redirect("voice.connect.start", lang=lang, final="1")
