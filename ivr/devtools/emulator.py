"""The one Twilio emulator: calls placed against the app in-process, the way Twilio places them.

Every request is signed with twilio-python's own `RequestValidator`, carries Twilio's parameters,
and each step follows the `action` or `<Redirect>` URL that the previous TwiML gave, with keys
collected as `<Gather>` collects them. The tests drive calls with it, and `ivr call`
(`simulator.py`) puts a person at the keypad of the same `Call`.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

BASE = "http://localhost"


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class Call:
    """One simulated phone call: `post` a webhook, then `press`/`say`/`silence` to answer it."""

    client: FlaskClient
    token: str
    from_number: str = "+13125550123"
    to_number: str = "+18005550100"
    sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    base: str = ""  # default: the app's PUBLIC_URL, which Twilio calls, else BASE
    # STIR/SHAKEN verification of the caller ID, as Twilio sends it (`StirVerstat`), e.g.
    # "TN-Validation-Passed-A" for a number the carrier fully attested; "" sends none.
    stir_verstat: str = ""
    twiml: ET.Element | None = None
    url: str = ""
    chain: list[ET.Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = getattr(self.client, "application", None)
        self.base = self.base or (app and app.config.get("PUBLIC_URL")) or BASE

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.from_number,
            "To": self.to_number,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **({"StirVerstat": self.stir_verstat} if self.stir_verstat else {}),
            **extra,
        }

    def send(
        self,
        url: str,
        params: dict[str, str],
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ):
        """Sign and send one webhook to `url` (relative to the last one); for GET, Twilio puts
        the parameters in the query string. Returns (absolute URL, response)."""
        url = urljoin(self.url or self.base + "/", url)
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

    def post(self, path: str, headers: dict[str, str] | None = None, **extra: str):
        url = path if path.startswith("http") else self.base + path
        url, response = self.send(url, self.params(**extra), headers=headers)
        self.url = url
        if response.status_code == 200 and response.mimetype == "text/xml":
            self.twiml = ET.fromstring(response.data)
        return response

    def answer(self):
        return self.follow("/voice", CallStatus="ringing")

    def document(self) -> ET.Element:
        """The TwiML of the last answer that was TwiML."""
        assert self.twiml is not None, "no TwiML yet: answer or post first"
        return self.twiml

    # What the caller does with the current TwiML --------------------------------------------
    def gather(self) -> ET.Element:
        gather = self.document().find("Gather")
        assert gather is not None, ET.tostring(self.document())
        return gather

    def action(self, gather: ET.Element) -> str:
        """Where the Gather posts what it heard (our TwiML always names it)."""
        action = gather.get("action")
        assert action is not None, ET.tostring(gather)
        return action

    def press(self, keys: str) -> ET.Element:
        """Press `keys` as Twilio's <Gather> hears them: up to numDigits, or up to finishOnKey
        (default #), which is not sent. With nothing collected, Twilio posts to the action only
        when actionOnEmptyResult is true; otherwise it moves on to the next verb."""
        gather = self.gather()
        digits = collect(keys, int(gather.get("numDigits") or 0), gather.get("finishOnKey", "#"))
        if not digits and gather.get("actionOnEmptyResult") != "true":
            return self.silence()
        return self.follow(self.action(gather), Digits=digits)

    def say(self, speech: str) -> ET.Element:
        gather = self.gather()
        assert "speech" in gather.get("input", ""), "this menu does not listen for speech"
        return self.follow(self.action(gather), SpeechResult=speech, Confidence="0.9")

    def silence(self) -> ET.Element:
        """Say nothing: Twilio moves past the Gather to the next verb, a Redirect."""
        redirect = self.document().find("Redirect")
        assert redirect is not None and redirect.text is not None, ET.tostring(self.document())
        return self.follow(redirect.text)

    def redirect(self) -> ET.Element:
        """Follow a Redirect that stands alone (no Gather before it)."""
        assert self.document().find("Gather") is None
        return self.silence()

    def follow(self, url: str, **extra: str) -> ET.Element:
        """Post to `url`, then keep following `<Redirect>`s that need no caller input."""
        response = self.post(url, None, **extra)
        assert response.status_code == 200, (url, response.status_code, response.data[:300])
        self.chain = [self.document()]
        while self.passes_through():
            redirect = self.document().find("Redirect")
            assert redirect is not None and redirect.text is not None, ET.tostring(self.document())
            response = self.post(redirect.text)
            assert response.status_code == 200, response.data[:300]
            self.chain.append(self.document())
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
