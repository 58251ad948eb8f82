"""What every call webhook shares: the signature check, the keys, menus that count failures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from flask import Response, abort, current_app, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.calendar import now
from ivr.calls.prompts import Line
from ivr.calls.twiml import speak, twiml
from ivr.edge.signatures import Signatures
from ivr.phones import parse_valid
from ivr.requests import lookup
from ivr.requests.models import CallbackRequest
from ivr.settings import settings

# The same key means the same thing on every menu of the call.
REPEAT = "*"
NEXT = "#"
CALLBACK = "8"
MAIN_MENU = "9"
SLOWER = "7"  # after a topic: hear it again more slowly (so no topic is numbered 7)
FIRM = "0"


def require_twilio_signature() -> None:
    """Answer 403 unless the request carries Twilio's signature of this exact URL and body.

    A body over MAX_CONTENT_LENGTH was refused before this (ivr/limits.py), and every webhook is
    a POST, so every field a view reads is one the signature covers.
    """
    signatures: Signatures = current_app.extensions["ivr.edge.signatures"]
    if not signatures.valid(
        signed_url(),
        request.form,
        request.headers.get("X-Twilio-Signature", ""),
        request.headers.get("X-Twilio-Webhooks-Signature-Settings"),
    ):
        _reject()


def signed_url() -> str:
    """The URL Twilio signed: `request.url`, with the scheme and host of PUBLIC_URL when set.

    Pinned, a signature Twilio made for another host (a staging copy of this app, a developer's
    tunnel) is refused whatever Host header comes with it. Unset (local work), the Host header
    and, behind FORWARDED_PROXIES proxies, X-Forwarded-Proto/Port decide, as in Twilio's guide.
    """
    public = settings().public_url
    if not public:
        return request.url
    origin = urlsplit(public)
    return urlunsplit(urlsplit(request.url)._replace(scheme=origin.scheme, netloc=origin.netloc))


def _reject() -> NoReturn:
    current_app.logger.warning("rejected unsigned or forged webhook %s", request.path)
    abort(403)


def redirect(endpoint: str, **values: Any) -> Response:
    """Move the call on to another webhook (a new journey, with its own URL state)."""
    response = VoiceResponse()
    response.redirect(url_for(endpoint, **values))
    return twiml(response)


# STIR/SHAKEN: the originating carrier knows the customer and that they may use this number.
ATTESTED = "TN-Validation-Passed-A"


def attested() -> bool:
    """Whether the carrier fully attested this call's caller ID (Twilio's `StirVerstat`): the
    only caller ID the hotline takes as the caller's own, to speak of an earlier request."""
    return request.form.get("StirVerstat") == ATTESTED


OPEN_DAYS = 14  # a request this recent, not yet called back, is one a new message joins


def open_request(number: str, call_sid: str) -> CallbackRequest | None:
    """The newest request from `number` not yet called back, from the last 14 days; looked up
    only for a fully attested caller ID (anyone else's `From` proves nothing). See `again.py`."""
    if not attested() or not parse_valid(number):
        return None
    return lookup.open_request(number, call_sid, since=now() - dt.timedelta(days=OPEN_DAYS))


def adding() -> bool:
    """Whether a message left on this call would join the caller's open request: then every
    menu says "to add to your message, press 8", not "to leave a message" (issue 23, point 8).
    Only an attested caller ID costs a lookup; a failing database answers False."""
    return open_request(request.form.get("From", ""), request.form.get("CallSid", "")) is not None


def final() -> bool:
    """True on the caller's last round: after the help menu, or after the database failed.

    Carried in the URL so that a silent or abandoned line ends instead of cycling for hours
    between the firm's phone and the callback recording.
    """
    return request.args.get("final") == "1"


def final_args() -> dict[str, Any]:
    return {"final": "1"} if final() else {}


OFFER_TIMEOUT = 2  # seconds to press 0 after it is offered, before the disclaimer goes on


def fails() -> int:
    """Failures in a row so far on this menu, carried in the URL (Twilio keeps no state for us)."""
    return request.args.get("fails", 0, type=int)


def ask(
    lines: Sequence[Line],
    endpoint: str,
    *,
    num_digits: int = 1,
    speech: bool = False,
    post_empty: bool = False,
    timeout: int | None = None,
    before: Sequence[Line] = (),
    offer: Sequence[Line] = (),
    **values: Any,
) -> Response:
    """Say `lines` inside a `<Gather>` (so a key interrupts them) posting to `endpoint`.

    `before` is said ahead of the `<Gather>`, where no key can cut it short: for the one thing
    every caller must hear in full (the disclaimer).

    `offer`, when given, comes first of all in a short `<Gather>` of its own, posting to
    `endpoint` with `early=1`: "press 0" heard before the disclaimer. With no key within
    OFFER_TIMEOUT seconds Twilio goes on to the next verb (`before`, then the menu).

    When the caller says nothing, the `<Redirect>` posts to the same action without `Digits`, so the
    action counts silence and invalid keys in one place.
    """
    response = _gather(lines, endpoint, num_digits, speech, post_empty, values, timeout, before)
    if offer:
        early = VoiceResponse()
        with early.gather(
            action=url_for(endpoint, **values, early="1"),
            timeout=OFFER_TIMEOUT,
            num_digits=1,
            finish_on_key="",
            action_on_empty_result=False,
        ) as gather:
            speak(gather, offer)
        for verb in response.verbs:
            early.append(verb)
        response = early
    return twiml(response)


def _gather(
    lines: Sequence[Line],
    endpoint: str,
    num_digits: int,
    speech: bool,
    post_empty: bool,
    values: dict[str, Any],
    timeout: int | None = None,
    before: Sequence[Line] = (),
) -> VoiceResponse:
    config = settings()
    action = url_for(endpoint, **values)
    response = VoiceResponse()
    speak(response, before)
    options: dict[str, object] = {
        "action": action,
        "timeout": timeout or config.gather_timeout,
        "finish_on_key": "" if num_digits == 1 else "#",
        "action_on_empty_result": post_empty,
    }
    if num_digits == 1:
        options["num_digits"] = 1
    if speech:
        options.update(
            input="dtmf speech",
            speech_timeout="auto",
            language=config.speech_language,
            hints="English, inglés, español, Spanish",
        )
    with response.gather(**options) as gather:
        speak(gather, lines)
    response.redirect(action)
    return response
