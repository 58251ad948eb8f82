"""The main menu and the topics from the firm's post, in the caller's language.

Each menu is one table (`MAIN`, `AFTER_TOPIC`, `HELP`; see `menus.py`): key, the prompt that
offers it, its handler; the views say and answer a menu from it. The main menu's topics are
built from the topic files, so a new file under `prompts/<lang>/topics/` is a new option.
Every prompt sits inside a `<Gather>`, so a key press interrupts it. A choice answers with the
next menu or topic itself rather than a `<Redirect>`: each redirect is one more round trip to
the app that the caller would sit through in silence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, current_app, request

from ivr.calls.calendar import now, office
from ivr.calls.prompts import Line, Topic
from ivr.calls.twiml import prompts, says_slowly
from ivr.reports import events
from ivr.requests import missed
from ivr.settings import settings
from ivr.voice.common import (
    CALLBACK,
    FIRM,
    MAIN_MENU,
    NEXT,
    REPEAT,
    SLOWER,
    adding,
    ask,
    fails,
    redirect,
)
from ivr.voice.connect import office_open
from ivr.voice.menus import Menu, Option, State, Topics, always

bp = Blueprint("topics", __name__, url_prefix="/<any(en, es):lang>")


def is_open(lang: str, state: State) -> bool:
    return bool(state["open"])


def to_firm(lang: str, state: State) -> Response:
    return redirect("voice.connect.start", lang=lang)


def to_callback(lang: str, state: State) -> Response:
    return redirect("voice.callback.start", lang=lang)


def to_menu(lang: str, state: State) -> Response:
    return menu(lang)


def to_topic(lang: str, number: int) -> Response:
    return topic(lang, number)


def has_later(lang: str, state: State) -> bool:
    return any(t.number > state["number"] for t in prompts().topics(lang))


def to_next(lang: str, state: State) -> Response:
    return topic(lang, min(t.number for t in prompts().topics(lang) if t.number > state["number"]))


def repeat_topic(lang: str, state: State) -> Response:
    return topic(lang, state["number"])


def can_slow(lang: str, state: State) -> bool:
    found = prompts().topic(lang, state["number"])
    return found is not None and slow_line(lang, found) is not None


def slower(lang: str, state: State) -> Response:
    return topic(lang, state["number"], slowly=True)


def to_help(lang: str, state: State) -> Response:
    return help(lang)


def is_adding(lang: str, state: State) -> bool:
    return bool(state.get("adding"))


def not_adding(lang: str, state: State) -> bool:
    return not state.get("adding")


def firm_not_offered(lang: str, state: State) -> bool:
    """0 said in the menu unless the caller heard it a moment ago, before the disclaimer."""
    return bool(state["open"]) and not state.get("offered")


# The same key means the same on every menu (common.py); "talk with our office now" is said only
# while the office is open, but 0 still answers (the firm's step says the office is closed).
FIRM_OPTION = Option(FIRM, "option_firm", to_firm, "the firm", said=is_open, answered=always)
# A caller whose open request a new message would join (`common.adding`) hears "to add to your
# message, press 8" in every menu, not only the first (issue 23, point 8); 8 does the same.
CALLBACK_OPTION = Option(
    CALLBACK, "option_callback", to_callback, "leaving a callback request", said=not_adding
)
ADD_OPTION = Option(CALLBACK, "option_add", to_callback, "adding to a message", said=is_adding)

# Said before the disclaimer while the office is open, so that "press 0" is heard within 15 s
# of the answer in both languages (issue 23; `ivr prompts check` fails past MAX_TO_PERSON). Only
# 0 and 8 answer there: any other key first hears the disclaimer (`early_choice`).
FIRST: Menu[Response] = Menu(
    "before the disclaimer",
    [Option(FIRM, "firm_first", to_firm, "the firm, before the disclaimer", said=is_open)],
)
MENU_OPTION = Option(MAIN_MENU, "option_menu", to_menu, "the main menu")

# The quickest way to a person first: while the office is open, "talk with our office now" (the
# post's "Call Now") before the topics; while it is closed, the message.
MAIN: Menu[Response] = Menu(
    "main menu",
    [
        replace(FIRM_OPTION, said=firm_not_offered),
        CALLBACK_OPTION,
        ADD_OPTION,
        Topics(to_topic),
        Option(REPEAT, "option_repeat", to_menu, "hearing the menu again"),
        replace(MENU_OPTION, prompt=None),
    ],
)
# After a topic, the next topic first; kept short, it follows every topic. "More slowly" only
# when it can be done (`slow_line`).
AFTER_TOPIC: Menu[Response] = Menu(
    "after a topic",
    [
        Option(NEXT, "option_next", to_next, "the next topic", said=has_later),
        FIRM_OPTION,
        CALLBACK_OPTION,
        ADD_OPTION,
        Option(REPEAT, "option_repeat", repeat_topic, "hearing the topic again"),
        Option(SLOWER, "option_slower", slower, "hearing a topic again more slowly", said=can_slow),
        MENU_OPTION,
    ],
)
# After too many failures: the simplest choices.
HELP: Menu[Response] = Menu(
    "help",
    [
        FIRM_OPTION,
        CALLBACK_OPTION,
        ADD_OPTION,
        MENU_OPTION,
        Option(REPEAT, None, to_help, "hearing this again"),
    ],
)


def state() -> dict[str, bool]:
    """What the menus depend on now: is the office open, would a message join an open request."""
    return {"open": office_open(), "adding": adding()}


def menu_lines(lang: str) -> list[Line]:
    """The main menu as said now (with 0 while the office is open)."""
    return MAIN.lines(lang, **state())


def topic_options(lang: str, number: int) -> list[Line]:
    """The menu after topic `number`, as said now."""
    return AFTER_TOPIC.lines(lang, number=number, **state())


def first_menu(lang: str, before: list[Line], adding: bool = False) -> Response:
    """The answer after the language is chosen: "press 0" first while the office is open (a
    short `<Gather>` of its own), then `before` (the disclaimer, in full, where no key cuts it
    short), then the main menu, which then does not say 0 again."""
    now_open = office_open()
    early = FIRST.lines(lang, open=now_open)
    menu_now = MAIN.lines(lang, open=now_open, adding=adding, offered=bool(early))
    return ask(menu_now, "voice.topics.menu_choice", lang=lang, fails=0, before=before, offer=early)


def early_choice(lang: str, digits: str) -> Response:
    """A key pressed while only "press 0" had been said, before the disclaimer: 0 rings the firm
    and 8 leaves a message (neither says anything of the law); any other key hears the
    disclaimer first, then its topic, or the menu."""
    now = state()
    if digits in (FIRM, CALLBACK):
        chosen = MAIN.choose(lang, digits, **now)
        if chosen is not None:
            return chosen
    disclaimer = [prompts().line(lang, "disclaimer")]
    if len(digits) == 1 and digits.isdigit() and prompts().topic(lang, int(digits)):
        return topic(lang, int(digits), before=disclaimer)
    lines = MAIN.lines(lang, **now)
    return ask(lines, "voice.topics.menu_choice", lang=lang, fails=0, before=disclaimer)


def contact_today(lang: str, body: str) -> str:
    """The post's "Contact us today." (prompt `contact_today`) said only on a day the office is
    open now or opens later; on a holiday, a weekend or after closing it is "Contact us."
    (`contact_us`): the caller may just have heard "our office is closed today" (issue 23)."""
    closed = prompts().closed_ending(lang, body)
    if closed is None:
        return body
    calendar, moment = office(), now()
    opening = calendar.next_opening(moment)
    if opening is not None and calendar.local(opening).date() == calendar.local(moment).date():
        return body
    return closed


def slow_line(lang: str, found: Topic) -> Line | None:
    """The topic to be spoken more slowly: its slow audio when built (`ivr audio build`), else
    `<Say>` at a slower rate where the voice takes SSML; None when neither can be done, so the
    option is not offered rather than played at the same speed."""
    line = Line(lang, found.body, found.name, slow=True)
    audio = current_app.extensions.get("ivr.calls.audio")
    if (audio is not None and audio.url(line)) or says_slowly(lang):
        return line
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
    events.record("menu", lang)
    return ask(menu_lines(lang), "voice.topics.menu_choice", lang=lang, fails=0)


@bp.post("/menu/choice")
def menu_choice(lang: str):
    digits = request.form.get("Digits", "")
    if request.args.get("early") == "1":
        return early_choice(lang, digits)
    chosen = MAIN.choose(lang, digits, **state())
    return chosen or retry(lang, menu_lines(lang), "voice.topics.menu_choice")


@bp.post("/topics/<int:number>")
def topic(lang: str, number: int, slowly: bool = False, before: list[Line] | None = None):
    found = prompts().topic(lang, number)
    if found is None:  # a topic file removed mid-call
        return menu(lang)
    missed.mark(request.form.get("CallSid", ""), "topic", str(number))  # for the missed list
    events.record("topic-slow" if slowly else "topic", lang, str(number))
    body = (slow_line(lang, found) if slowly else None) or Line(lang, found.body, found.name)
    lines = [body._replace(text=contact_today(lang, body.text))] + topic_options(lang, number)
    return ask(
        lines, "voice.topics.topic_choice", lang=lang, number=number, fails=0, before=before or []
    )


@bp.post("/topics/<int:number>/choice")
def topic_choice(lang: str, number: int):
    events.topic_left(lang, number)
    digits = request.form.get("Digits", "")
    chosen = AFTER_TOPIC.choose(lang, digits, number=number, **state())
    return chosen or retry(
        lang, topic_options(lang, number), "voice.topics.topic_choice", number=number
    )


@bp.post("/help")
def help(lang: str):
    """After repeated failures: the simplest choices, then the firm rather than a hang-up."""
    events.record("help", lang)
    return ask(help_lines(lang), "voice.topics.help_choice", lang=lang, fails=0)


def help_lines(lang: str) -> list[Line]:
    return [prompts().line(lang, "too_many_tries"), *HELP.lines(lang, **state())]


@bp.post("/help/choice")
def help_choice(lang: str):
    digits = request.form.get("Digits", "")
    chosen = HELP.choose(lang, digits, **state())
    if chosen is not None:
        return chosen
    if digits and fails() == 0:  # one wrong key: "not an option", and the help menu again
        lines = [prompts().line(lang, "invalid"), *help_lines(lang)]
        return ask(lines, "voice.topics.help_choice", lang=lang, fails=1)
    # Silence, or a second wrong key: ring the firm (or, when closed, offer a message) as the
    # caller's final round, so a silent line ends rather than cycling.
    return redirect("voice.connect.start", lang=lang, final="1")
