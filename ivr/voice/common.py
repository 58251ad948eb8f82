"""What every call webhook shares: the signature check, the keys, menus that count failures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from flask import Response, abort, current_app, g, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ..prompts import Line
from ..signatures import Signatures
from ..twiml import prompts, speak, twiml, twiml_text

# The same key means the same thing on every menu of the call.
REPEAT = "*"
NEXT = "#"
CALLBACK = "8"
MAIN_MENU = "9"
SLOWER = "7"  # after a topic: hear it again more slowly (so no topic is numbered 7)
FIRM = "0"


def require_twilio_signature() -> None:
    """Answer 403 unless the request carries Twilio's signature of this exact URL and body."""
    req = request._get_current_object()  # one proxy lookup for the several reads below
    signatures: Signatures = current_app.extensions["ivr.signatures"]
    if req.method == "POST":
        params, pairs = req.form, req.form_pairs()
    else:
        params, pairs = {}, ()
    if not signatures.valid(req.environ, req.sent_url(), lambda: req.url, params, pairs):
        _reject(req)


def _reject(req) -> NoReturn:
    current_app.logger.warning("rejected unsigned or forged webhook %s", req.path)
    abort(403)


def redirect(endpoint: str, **values: object) -> Response:
    """Move the call on to another webhook (a new journey, with its own URL state)."""
    response = VoiceResponse()
    response.redirect(url_for(endpoint, **values))
    return twiml(response)


def final() -> bool:
    """True on the caller's last round: after the help menu, or after the database failed.

    Carried in the URL so that a silent or abandoned line ends instead of cycling for hours
    between the firm's phone and the callback recording.
    """
    return request.args.get("final") == "1"


def final_args() -> dict[str, str]:
    return {"final": "1"} if final() else {}


def fails() -> int:
    """Failures in a row so far on this menu, carried in the URL (Twilio keeps no state for us)."""
    return request.args.get("fails", 0, type=int)


def ask(lines: Sequence[Line], endpoint: str, *, num_digits: int = 1,
        speech: bool = False, post_empty: bool = False, keep: bool = True,
        timeout: int | None = None, before: Sequence[Line] = (), **values: object) -> Response:
    """Say `lines` inside a `<Gather>` (so a key interrupts them) posting to `endpoint`.

    `before` is said ahead of the `<Gather>`, where no key can cut it short: for the one thing
    every caller must hear in full (the disclaimer).

    When the caller says nothing, the `<Redirect>` posts to the same action without `Digits`, so the
    action counts silence and invalid keys in one place.

    Menus are the same TwiML for every caller, so the rendered XML is kept per process, keyed by
    everything it is made of: the lines' current text (an edited prompt is a new key), the action,
    the gather's options and the set of rendered audio. `keep=False` for TwiML that holds a
    caller's own details (their number read back, their reference), which is never kept.
    """
    if not keep:
        return twiml(_gather(lines, endpoint, num_digits, speech, post_empty, values, timeout,
                             before))
    app = current_app._get_current_object()  # one proxy lookup for the reads below
    audio = app.extensions.get("ivr.audio")
    key = (
        tuple(before), tuple(lines), endpoint, tuple(sorted(values.items())), num_digits, speech,
        post_empty, timeout, request.environ.get("SCRIPT_NAME", ""),
        audio.version() if audio is not None else None,
    )
    cache = app.extensions["ivr.menus"]
    cached = cache.get(key)
    tracing = app.config.get("PROMPT_TRACE")
    if cached is None:
        traced = g.pop("prompt_sources", [])
        xml = str(_gather(lines, endpoint, num_digits, speech, post_empty, values, timeout,
                          before))
        cached = (xml, tuple(g.pop("prompt_sources", [])))
        cache.put(key, cached)
        if tracing:
            g.prompt_sources = traced + list(cached[1])
    elif tracing:
        g.prompt_sources = g.get("prompt_sources", []) + list(cached[1])
    return twiml_text(cached[0])


def _gather(lines: Sequence[Line], endpoint: str, num_digits: int, speech: bool,
            post_empty: bool, values: dict[str, object],
            timeout: int | None = None, before: Sequence[Line] = ()) -> VoiceResponse:
    config = current_app.config
    action = url_for(endpoint, **values)
    response = VoiceResponse()
    speak(response, before)
    options: dict[str, object] = {
        "action": action,
        "timeout": timeout or config["GATHER_TIMEOUT"],
        "finish_on_key": "" if num_digits == 1 else "#",
        "action_on_empty_result": post_empty,
    }
    if num_digits == 1:
        options["num_digits"] = 1
    if speech:
        options.update(input="dtmf speech", speech_timeout="auto",
                       language=config["SPEECH_LANGUAGE"],
                       hints="English, inglés, español, Spanish")
    with response.gather(**options) as gather:
        speak(gather, lines)
    response.redirect(action)
    return response


def options_lines(lang: str, *names: str) -> list[Line]:
    p = prompts()
    return [p.line(lang, f"option_{name}") for name in names]
