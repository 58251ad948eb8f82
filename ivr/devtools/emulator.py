"""The one caller driver: a test double of Twilio placing calls against the app.

Every request is signed with twilio-python's own `RequestValidator`, carries Twilio's parameters,
and each step follows the `action` or `<Redirect>` URL that the previous TwiML gave, with keys
collected as `<Gather>` collects them, a message left as `<Record>` posts it (and its recording
status callback), and a `<Dial>` ended with the outcome asked for. Three programs play the caller
with it and nothing else: the tests (in-process, through Flask's test client), `ivr call`
(`simulator.py`, a terminal around a `Call`) and the burst benchmark (`bench/callers.py`, over
HTTP to the Procfile's gunicorn through `HttpClient`).

Why it lives in `ivr/devtools/` although only tools use it: `ivr call` is an `ivr` command, run
from the quick start on an installed checkout, and the commands layer may only import what the
package holds. The app's serving code never imports it (devtools sits above the voice and staff
layers; only `ivr.commands` imports devtools), so it costs production nothing but its bytes.

When the TwiML does not allow what the driver is asked to do (press keys where nothing listens,
follow a Redirect that is not there) or the app answers with an error, it raises `EmulatorError`
with the document in the message, never a bare assert: the tests fail with a reason and the bench
counts the caller's outcome.
"""

from __future__ import annotations

import http.client
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Response

from ivr.calls.prompts import LANGUAGES, PromptError, Prompts
from ivr.settings import settings

BASE = "http://localhost"
TEST_ACCOUNT = "AC" + "0" * 32
DIAL_OUTCOMES = ("completed", "busy", "no-answer", "failed", "canceled")


class EmulatorError(Exception):
    """The call could not go on as asked: the TwiML does not allow it, or the app failed."""


class WebhookFailed(EmulatorError):
    """The app answered a webhook with an error or with something other than TwiML: Twilio would
    play its application error and end the call."""

    def __init__(self, url: str, response: Any) -> None:
        self.url = url
        self.status = response.status_code
        self.response = response
        super().__init__(f"{url}: {response.status_code} {response.data[:300]!r}")


class Client(Protocol):
    """What the driver needs of a client: Flask's test client has it, and so has `HttpClient`."""

    def open(
        self, path: str, *, method: str, data: dict[str, str], base_url: str, headers: dict
    ) -> Any: ...


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class Call:
    """One simulated phone call: `answer` it, then `press`/`say`/`silence`/`record`/`dial`."""

    client: Client
    token: str
    from_number: str = "+13125550123"
    to_number: str = "+18005550100"
    sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    base: str = ""  # default: the app's PUBLIC_URL, which Twilio calls, else BASE
    account: str = TEST_ACCOUNT
    fields: dict[str, str] = field(default_factory=dict)  # more of Twilio's (FromCity, ...)
    # STIR/SHAKEN verification of the caller ID, as Twilio sends it (`StirVerstat`), e.g.
    # "TN-Validation-Passed-A" for a number the carrier fully attested; "" sends none.
    stir_verstat: str = ""
    twiml: ET.Element | None = None
    url: str = ""
    chain: list[ET.Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = getattr(self.client, "application", None)
        self.base = self.base or (app and settings(app).public_url) or BASE

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": self.account,
            "From": self.from_number,
            "To": self.to_number,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **self.fields,
            **({"StirVerstat": self.stir_verstat} if self.stir_verstat else {}),
            **extra,
        }

    def absolute(self, url: str) -> str:
        """`url` as Twilio resolves it: relative to the document that named it."""
        return urljoin(self.url or self.base + "/", url)

    def send(
        self,
        url: str,
        params: dict[str, str],
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ):
        """Sign and send one webhook to `url` (relative to the last one); for GET, Twilio puts
        the parameters in the query string. Returns (absolute URL, response)."""
        url = self.absolute(url)
        if method == "GET":
            url += ("&" if "?" in url else "?") + urlencode(params)
            params = {}
        parts = urlsplit(url)
        return url, self.client.open(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            method=method,
            data=params,
            base_url=f"{parts.scheme}://{parts.netloc}",
            headers={"X-Twilio-Signature": sign(self.token, url, params), **(headers or {})},
        )

    def post(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "POST",
        **extra: str,
    ):
        """Send one webhook of this call and keep its TwiML; the response is returned as is."""
        url = path if path.startswith("http") else self.base + path if path[:1] == "/" else path
        url, response = self.send(url, self.params(**extra), method, headers)
        self.url = url
        if response.status_code == 200 and response.mimetype == "text/xml":
            self.twiml = ET.fromstring(response.data)
        return response

    def answer(self) -> ET.Element:
        return self.follow("/voice", CallStatus="ringing")

    def document(self) -> ET.Element:
        """The TwiML of the last answer that was TwiML."""
        if self.twiml is None:
            raise EmulatorError("no TwiML yet: answer or post first")
        return self.twiml

    def verb(self, tag: str) -> ET.Element:
        """The current document's first `tag` verb; EmulatorError when it has none."""
        found = self.document().find(tag)
        if found is None:
            raise EmulatorError(f"no <{tag}> in {_shown(self.document())}")
        return found

    # What the caller does with the current TwiML --------------------------------------------
    def gather(self) -> ET.Element:
        """The Gather a key is pressed at: the document's first, passing over an early offer.

        An early offer (`common.ask`'s `offer`: "press 0" before the disclaimer, its action
        marked `early=1`) is a short Gather of its own; with no key there Twilio goes on to the
        next verbs, so a key pressed for the menu reaches the Gather after it. `press_early`
        presses at the offer itself."""
        found = self.document().findall("Gather")
        if not found:
            raise EmulatorError(f"no <Gather> in {_shown(self.document())}")
        return next((gather for gather in found if not early_offer(gather)), found[-1])

    def action(self, verb: ET.Element) -> str:
        """Where a Gather, Record or Dial posts (Twilio's default: the document's own URL)."""
        return verb.get("action") or self.url

    def press_early(self, keys: str) -> ET.Element:
        """Press `keys` during the early offer ("press 0", before the disclaimer)."""
        offers = [g for g in self.document().findall("Gather") if early_offer(g)]
        if not offers:
            raise EmulatorError(f"no early offer in {_shown(self.document())}")
        return self.press(keys, offers[0])

    def press(self, keys: str, gather: ET.Element | None = None) -> ET.Element:
        """Press `keys` as Twilio's <Gather> hears them: up to numDigits, or up to finishOnKey
        (default #), which is not sent. With nothing collected, Twilio posts to the action only
        when actionOnEmptyResult is true; otherwise it moves on to the next verb. `gather`: the
        Gather pressed at (default: `gather()`)."""
        gather = self.gather() if gather is None else gather
        digits = collect(keys, int(gather.get("numDigits") or 0), gather.get("finishOnKey", "#"))
        if not digits and gather.get("actionOnEmptyResult") != "true":
            return self.silence()
        return self.follow(self.action(gather), Digits=digits)

    def say(self, speech: str) -> ET.Element:
        gather = self.gather()
        if "speech" not in gather.get("input", ""):
            raise EmulatorError(f"this menu does not listen for speech: {_shown(gather)}")
        return self.follow(self.action(gather), SpeechResult=speech, Confidence="0.9")

    def silence(self) -> ET.Element:
        """Say nothing: Twilio moves past the Gather to the next verb, a Redirect."""
        redirect = self.verb("Redirect")
        if not redirect.text:
            raise EmulatorError(f"a Redirect without a URL: {_shown(self.document())}")
        return self.follow(redirect.text, method=redirect.get("method", "POST"))

    def redirect(self) -> ET.Element:
        """Follow a Redirect that stands alone (no Gather before it)."""
        if self.document().find("Gather") is not None:
            raise EmulatorError(f"a Gather comes first: {_shown(self.document())}")
        return self.silence()

    def recording_fields(self, duration: int = 14, sid: str | None = None) -> dict[str, str]:
        """The fields Twilio gives a new recording (its URL is on Twilio's API, under our
        account)."""
        sid = sid or "RE" + secrets.token_hex(16)
        return {
            "RecordingSid": sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account}"
            f"/Recordings/{sid}",
            "RecordingDuration": str(duration),
        }

    def record(
        self, fields: Mapping[str, str] | None = None, digits: str = "#", status: bool = True
    ) -> ET.Element:
        """Leave a message at the <Record>, ended with `digits` ("hangup": the caller hung up):
        Twilio posts the action with the recording's fields, then (with `status`) the recording
        status callback. `fields`: from `recording_fields`, the default."""
        record = self.verb("Record")
        fields = dict(fields or self.recording_fields())
        callback = record.get("recordingStatusCallback")
        callback_url = self.absolute(callback) if callback else ""
        following = self.follow(self.action(record), Digits=digits, **fields)
        if status and callback_url:
            self.recording_status(callback_url, fields)
        return following

    def recording_status(self, url: str, fields: Mapping[str, str]):
        """Twilio's recording status callback once the audio is stored (its own short set of
        parameters, not the call's). Leaves the call's current TwiML alone; returns the
        response."""
        params = {
            "AccountSid": self.account,
            "CallSid": self.sid,
            "RecordingStatus": "completed",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            **fields,
        }
        _url, response = self.send(url, params)
        return response

    def dial(self, status: str = "completed") -> ET.Element:
        """End the current <Dial> with Twilio's `status` (completed, busy, no-answer, failed,
        canceled) and post it to the Dial's action."""
        if status not in DIAL_OUTCOMES:
            raise EmulatorError(f"unknown dial outcome {status!r}")
        dial = self.verb("Dial")
        if not dial.get("action"):
            raise EmulatorError(f"this Dial posts nowhere: {_shown(dial)}")
        return self.follow(
            self.action(dial),
            DialCallStatus=status,
            DialCallSid="CA" + secrets.token_hex(16),
            DialCallDuration="95" if status == "completed" else "0",
            DialBridged="true" if status == "completed" else "false",
        )

    def follow(self, url: str, method: str = "POST", **extra: str) -> ET.Element:
        """Post to `url`, then keep following `<Redirect>`s that need no caller input."""
        self.chain = [self._twiml_of(url, method, **extra)]
        while self.passes_through():
            redirect = self.verb("Redirect")
            if not redirect.text:
                raise EmulatorError(f"a Redirect without a URL: {_shown(self.document())}")
            self.chain.append(self._twiml_of(redirect.text, redirect.get("method", "POST")))
        return self.document()

    def _twiml_of(self, url: str, method: str = "POST", **extra: str) -> ET.Element:
        response = self.post(url, None, method, **extra)
        if response.status_code != 200 or response.mimetype != "text/xml":
            raise WebhookFailed(self.url, response)
        return self.document()

    def passes_through(self) -> bool:
        tags = {child.tag for child in self.document()}
        return "Redirect" in tags and not tags & {"Gather", "Record", "Dial", "Hangup"}

    # What the caller hears ---------------------------------------------------------------------
    def heard(self) -> str:
        """Everything said since the caller's last action, across followed redirects."""
        return " ".join(el.text or "" for el in self.said())

    def said(self) -> list[ET.Element]:
        return [el for twiml in self.chain for el in twiml.iter("Say")]


def early_offer(gather: ET.Element) -> bool:
    """A Gather that only offers 0 before the disclaimer (`common.ask`'s `offer`)."""
    return "early=1" in urlsplit(gather.get("action") or "").query.split("&")


def collect(typed: str, num_digits: int, finish_on_key: str) -> str:
    """The Digits Twilio sends: keys up to the finish key (not sent), or up to numDigits."""
    digits = ""
    for key in typed:
        if finish_on_key and key in finish_on_key:
            break
        digits += key
        if num_digits and len(digits) >= num_digits:
            break
    return digits


class Ear:
    """What a caller makes of the words: a number read back digit by digit after a lead-in
    prompt, and whether a prompt was heard, in either language. It reads the words through the
    app's own `Prompts`, so a reworded prompt is still recognised."""

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts
        self.digits = {
            self._text(lang, f"digit_{d}").lower(): d for lang in LANGUAGES for d in "0123456789"
        }

    def _text(self, lang: str, name: str) -> str:
        try:
            return self.prompts.text(lang, name)
        except PromptError:
            return "\0"  # matches nothing

    def heard(self, says: Iterable[str], name: str) -> bool:
        whole = " ".join(says)
        return any(self._text(lang, name) in whole for lang in LANGUAGES)

    def number_after(self, says: Iterable[str], lead: str) -> str:
        """The digits spoken after the `lead` prompt (e.g. "reference_number"), or ""."""
        marks = [self._text(lang, lead) for lang in LANGUAGES]
        for say in says:
            for mark in marks:
                if mark in say:
                    words = re.findall(r"[^\W\d_]+|\d", say.split(mark, 1)[1].lower())
                    heard = ""
                    for word in words:
                        if word not in self.digits and heard:
                            break  # the number ends at the first other word ("Again: ...")
                        heard += self.digits.get(word, "")
                    return heard
        return ""


class HttpClient:
    """The driver's client for a real server: each webhook is one HTTP/1.1 request on a new
    connection to `host:port`, sent with the public URL's Host (the one Twilio signs) and any
    `headers` a router in front would add. Timeouts and connection errors are raised as they
    are (`TimeoutError`, `OSError`); the answer comes back as a werkzeug `Response`, like the
    test client's."""

    def __init__(
        self, host: str, port: int, timeout: float, headers: Mapping[str, str] | None = None
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = dict(headers or {})

    def open(
        self, path: str, *, method: str, data: dict[str, str], base_url: str, headers: dict
    ) -> Response:
        headers = {
            "Host": urlsplit(base_url).netloc,
            "Content-Type": "application/x-www-form-urlencoded",
            **self.headers,
            **headers,
        }
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=urlencode(data) if data else None, headers=headers)
            reply = conn.getresponse()
            return Response(reply.read(), status=reply.status, headers=reply.getheaders())
        finally:
            conn.close()


def _shown(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")[:600]
