"""Answer the call: greet in both languages and let the caller choose by key or by voice."""

from __future__ import annotations

import unicodedata

from flask import Blueprint, current_app, request

from .. import references, store
from ..twiml import prompts
from . import again
from .common import ask, fails
from .topics import menu_lines

bp = Blueprint("welcome", __name__)

KEYS = {"1": "en", "2": "es"}
WORDS = {"english": "en", "ingles": "en", "espanol": "es", "spanish": "es", "espanyol": "es"}


def spoken_language(speech: str) -> str | None:
    """Map what the caller said ("Español.", "english please") to a language, if any."""
    plain = unicodedata.normalize("NFKD", speech).encode("ascii", "ignore").decode().lower()
    for word in plain.replace(".", " ").replace(",", " ").split():
        if word in WORDS:
            return WORDS[word]
    return None


def choice_lines(greet: bool):
    p = prompts()

    def build():
        lines = [p.line("en", "welcome"), p.line("es", "welcome")] if greet else []
        return lines + [p.line("en", "choose_language"), p.line("es", "choose_language")]

    return p.kept(("choice", greet), build)


@bp.post("")
def answer():
    """Twilio's Voice URL for the number: the one fixed URL."""
    return ask(choice_lines(greet=True), "voice.welcome.choose", speech=True, fails=0)


@bp.post("/language")
def choose():
    lang = KEYS.get(request.form.get("Digits", "")) or spoken_language(
        request.form.get("SpeechResult", "")
    )
    if lang:
        return start(lang)
    failed = fails() + 1
    if failed >= current_app.config["MAX_FAILURES"]:
        return start(current_app.config["DEFAULT_LANGUAGE"])
    lines = choice_lines(greet=False)
    if request.form.get("Digits"):  # a wrong key: "not an option", in both languages
        lines = [prompts().line("en", "invalid"), prompts().line("es", "invalid"), *lines]
    return ask(lines, "voice.welcome.choose", speech=True, fails=failed)


def start(lang: str):
    """Say the disclaimer once, then the main menu in the chosen language, in one answer.

    A caller with an open request first hears it ("We have your message from Tuesday, ...")
    and is offered to add to it (`again.py`).
    """
    call_sid, number = request.form.get("CallSid", ""), request.form.get("From", "")
    store.count_call(call_sid, lang, number)
    references.top_up()  # so a reference is at hand even if the database fails later in the call
    open_request = again.open_request(number, call_sid)
    if open_request is not None:
        lines = [*again.announcement(lang, open_request), prompts().line(lang, "disclaimer"),
                 *again.with_add_option(lang, menu_lines(lang))]
        return ask(lines, "voice.topics.menu_choice", keep=False, lang=lang, fails=0)
    lines = [prompts().line(lang, "disclaimer"), *menu_lines(lang)]
    return ask(lines, "voice.topics.menu_choice", lang=lang, fails=0)
