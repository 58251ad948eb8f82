"""Answer the call: greet in both languages and let the caller choose by key or by voice."""

from __future__ import annotations

import unicodedata

from flask import Blueprint, Response, request

from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts
from ivr.reports import events
from ivr.requests import references
from ivr.requests.service import callers
from ivr.settings import settings
from ivr.voice import again
from ivr.voice.common import ask, fails
from ivr.voice.menus import Menu, Option, State
from ivr.voice.topics import first_menu

bp = Blueprint("welcome", __name__)

WORDS = {"english": "en", "ingles": "en", "espanol": "es", "spanish": "es", "espanyol": "es"}


def spoken_language(speech: str) -> str | None:
    """Map what the caller said ("Español.", "english please") to a language, if any."""
    plain = unicodedata.normalize("NFKD", speech).encode("ascii", "ignore").decode().lower()
    for word in plain.replace(".", " ").replace(",", " ").split():
        if word in WORDS:
            return WORDS[word]
    return None


def in_english(lang: str, state: State) -> Response:
    return start("en")


def in_spanish(lang: str, state: State) -> Response:
    return start("es")


# Each choice is said in its own language ("For English, press 1", "Para español, oprima 2").
LANGUAGE: Menu[Response] = Menu(
    "language",
    [
        Option("1", "choose_language", in_english, "English", lang="en"),
        Option("2", "choose_language", in_spanish, "Spanish", lang="es"),
    ],
)


def choice_lines(greet: bool) -> list[Line]:
    """Each language's welcome next to its own key, most callers' language (DEFAULT_LANGUAGE)
    first: nobody waits through the other language before hearing how to choose theirs."""
    p = prompts()
    first = settings().default_language
    options = sorted(LANGUAGE.options(), key=lambda option: option.lang != first)
    return [
        line
        for option in options
        for line in ([p.line(option.lang or first, "welcome")] if greet else [])
        + option.lines(first, {})
    ]


@bp.post("")
def answer():
    """Twilio's Voice URL for the number: the one fixed URL."""
    events.record("call")
    return ask(choice_lines(greet=True), "voice.welcome.choose", speech=True, fails=0)


@bp.post("/language")
def choose():
    chosen = LANGUAGE.choose("", request.form.get("Digits", ""))
    if chosen is not None:
        return chosen
    lang = spoken_language(request.form.get("SpeechResult", ""))
    if lang:
        return start(lang)
    failed = fails() + 1
    if failed >= settings().max_failures:
        return start(settings().default_language)
    lines = choice_lines(greet=False)
    if request.form.get("Digits"):  # a wrong key: "not an option", in both languages
        lines = [prompts().line("en", "invalid"), prompts().line("es", "invalid"), *lines]
    return ask(lines, "voice.welcome.choose", speech=True, fails=failed)


def start(lang: str):
    """While the office is open, "press 0" first (`topics.first_menu`); then the disclaimer
    once, in full (outside the menu's Gather, so no key cuts it short), then the main menu in
    the chosen language, in one answer.

    A caller with an open request hears it ("We have your message from Tuesday, ...", also in
    full) before the disclaimer, and every menu offers to add to it (`again.py`).
    """
    call_sid, number = request.form.get("CallSid", ""), request.form.get("From", "")
    callers.count_call(call_sid, lang, number)
    events.record("language", lang)
    references.top_up()  # so a reference is at hand even if the database fails later in the call
    disclaimer = prompts().line(lang, "disclaimer")
    open_request = again.open_request(number, call_sid)
    if open_request is not None:
        before = [*again.announcement(lang, open_request), disclaimer]
        return first_menu(lang, before, adding=True)
    return first_menu(lang, [disclaimer])
