"""Build TwiML: the one place that decides how a prompt is spoken and how a reply is sent.

`speak` plays rendered audio when every line in a group has audio matching its current text, and
otherwise says the whole group with `<Say>`: a sentence and the digits read inside it are never
heard in two different voices.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Response, current_app, g
from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr.calls.prompts import Line, Prompts
from ivr.phones import parse_valid
from ivr.settings import settings

SAY_LANGUAGE = {"en": "en-US", "es": "es-US"}


def prompts() -> Prompts:
    return current_app.extensions["ivr.calls.prompts"]


def spoken_number(lang: str, number: str) -> list[Line]:
    """A phone number digit by digit, in the groups a caller would write it down: 3-3-4 for U.S.
    numbers; for others the country code, then the national number in fours from the end, as
    Mexico and Central America write them (55 1234 5678, 2345 6789). Used for the caller's own
    number read back and for the number the firm calls back from."""
    parsed = parse_valid(number)
    if parsed is None:  # not a number we can group: every digit, in one run
        return prompts().digits(lang, number)
    national = str(parsed.national_number)
    if parsed.country_code == 1:
        return prompts().digits(lang, national, (3, 3, 4))
    code = str(parsed.country_code)
    head = len(national) % 4
    sizes = ([head] if head else []) + [4] * (len(national) // 4)
    return prompts().digits(lang, code + national, [len(code), *sizes])


def speak(verb: VoiceResponse | Gather, lines: Sequence[Line]) -> None:
    """Add `lines` to `verb` as `<Play>` of rendered audio, or as `<Say>` in the line's language."""
    if not lines:
        return
    # "<lang>/<source>": the greeting speaks both languages, so the name alone is not the file.
    traced = g.setdefault("prompt_sources", [])
    traced.extend(f"{line.lang}/{line.source}" for line in lines)
    audio = current_app.extensions.get("ivr.calls.audio")
    urls = [audio.url(line) for line in lines] if audio is not None else [None]
    if all(urls):
        for line, url in zip(lines, urls, strict=True):
            verb.play(url)
            if line.pause:
                verb.pause(length=1)
        return
    group: list[Line] = []
    for line in lines:
        if group and (group[-1].lang, group[-1].slow) != (line.lang, line.slow):
            _say(verb, group)
            group = []
        group.append(line)
    _say(verb, group)


# Slower speech without rendered audio: SSML `<prosody rate>`, which Amazon Polly (neural voices
# too) and Google voices take in Twilio's `<Say>`; Twilio's basic voices (man, woman, alice) take
# no SSML, so with them a topic is not offered more slowly unless its slow audio is built.
SLOW_RATE = "80%"
SSML_VOICES = ("Polly.", "Google.")


def says_slowly(lang: str) -> bool:
    return settings().voice(lang).startswith(SSML_VOICES)


def _say(verb: VoiceResponse | Gather, lines: list[Line]) -> None:
    lang = lines[0].lang
    # Digits read one by one are joined with commas so the voice pauses between them, and with a
    # full stop between groups (3-3-4 of a phone number) and after the last digit, so a number
    # never runs into the sentence that follows it ("...two, three. To be called back...").
    text = " ".join(
        line.text
        + (
            "."
            if line.pause or _last_digit(lines, i)
            else ","
            if line.source.startswith("digit_")
            else ""
        )
        for i, line in enumerate(lines)
    )
    voice = settings().voice(lang)
    if lines[0].slow and says_slowly(lang):
        say = verb.say(language=SAY_LANGUAGE[lang], voice=voice)
        say.prosody(text, rate=SLOW_RATE)
        return
    verb.say(text, language=SAY_LANGUAGE[lang], voice=voice)


def _last_digit(lines: list[Line], i: int) -> bool:
    """Line `i` is a digit and the end of its number (the last line, or a word follows)."""
    return lines[i].source.startswith("digit_") and (
        i + 1 == len(lines) or not lines[i + 1].source.startswith("digit_")
    )


def twiml(response: VoiceResponse) -> Response:
    """Send TwiML as text/xml; when tracing, name the prompt files heard (for `ivr call`)."""
    reply = Response(str(response), mimetype="text/xml")
    if current_app.config.get("PROMPT_TRACE"):
        reply.headers["X-IVR-Prompts"] = ",".join(g.get("prompt_sources", []))
    return reply
