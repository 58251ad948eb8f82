"""The one way the app talks to Twilio's REST API: a gateway built once at start-up, with timeouts.

Why one: twilio-python's default HTTP client waits for ever for an answer. When each module built
its own client, one of them (staff alert texts) had no timeout, and after Twilio's API stopped
answering for 45 s every job thread stayed blocked for good (aesthetics review #3). Now
`init_app` builds one `Gateway` from the settings (TWILIO_CONNECT_TIMEOUT, TWILIO_READ_TIMEOUT)
and stores it in `app.extensions`; jobs and commands look it up with `gateway()` and never build a
client. The worker's per-job time limit (`background/jobs.py`) is the backstop behind these
timeouts, not a replacement for them.

It also holds the one rule for "may this failed request have sent something": every failure of a
request that creates something a person notices (a text, a phone call) leaves here as exactly one
of three exceptions, so a job decides by type, not by re-reading Twilio's errors:
- `Unreachable`: certainly nothing was created (Twilio answered 5xx or 429, or the connection never
  reached it): retrying cannot make two, so it is retried.
- `Refused`: Twilio answered and said no (21610 opted out, 21614 not a mobile): final.
- `MaybeSent`: the request may have reached Twilio (a reset or a timeout while reading the
  answer): final, because a retry could ring a phone or send a text twice.
Requests that change nothing a person notices (copying or deleting a recording) are retried on
anything but Twilio's own refusal.
"""

from __future__ import annotations

import traceback
from typing import Any

import requests
from flask import Flask, current_app
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance

from ivr.background.jobs import Permanent, reason
from ivr.settings import settings

EXTENSION = "ivr.messaging.gateway"
TWILIO_API = "https://api.twilio.com/"
FAILURES = (TwilioRestException, requests.RequestException)


class Unreachable(Exception):
    """Nothing was created at Twilio: trying again is safe (and is what the job does)."""


class Refused(Permanent):
    """Twilio answered and refused; trying again would fail the same way. `short` is Twilio's
    error code and words ("Twilio 21215: …"), for a person to read."""

    def __init__(self, why: str, short: str | None = None, code: int | None = None) -> None:
        super().__init__(why)
        self.short = short or why
        self.code = code  # Twilio's error code, for a plain sentence (requests/service/calling.py)


class MaybeSent(Permanent):
    """The request may have reached Twilio: not tried again, so nobody gets it twice."""


class NotConfigured(Permanent):
    """TWILIO_ACCOUNT_SID is not set."""


# Where urllib3 is while it opens a connection (TCP, a proxy's CONNECT, the TLS handshake), and
# where it is once the request has been written and it waits for the answer.
CONNECTING = frozenset({"_new_conn", "connect", "_tunnel", "_prepare_proxy", "_validate_conn"})
SENT = frozenset({"_send_output", "getresponse"})


def _frames(exc: BaseException) -> set[str]:
    """The names of the functions an exception (and those it wraps) passed through."""
    names: set[str] = set()
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        names.update(frame.name for frame in traceback.extract_tb(error.__traceback__))
        stack += [error.__cause__, error.__context__]
        stack += [arg for arg in error.args if isinstance(arg, BaseException)]
    return names


def timed_out_connecting(exc: BaseException) -> bool:
    """A timeout before the request was written: urllib3 reports a proxy's CONNECT or a TLS
    handshake that never finishes as a *read* timeout, though nothing reached Twilio."""
    if not isinstance(exc, requests.exceptions.Timeout):
        return False
    frames = _frames(exc)
    return bool(frames & CONNECTING) and not frames & SENT


def nothing_sent(exc: BaseException) -> bool:
    """After a failed request: True when it certainly created nothing at Twilio (5xx or 429, or the
    connection never reached it). Otherwise it may exist, or a retry would fail the same way."""
    if isinstance(exc, TwilioRestException):
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    if timed_out_connecting(exc):
        return True
    if isinstance(exc, requests.ConnectionError):  # refused or not resolved; not a reset mid-way
        return "NewConnectionError" in str(exc) or "NameResolutionError" in str(exc)
    return False


def refused(exc: BaseException) -> str | None:
    """Twilio's own refusal ("Twilio 400 21610: …"), or None when it did not refuse."""
    if isinstance(exc, TwilioRestException) and not nothing_sent(exc):
        return f"Twilio {exc.status} {exc.code}: {exc.msg}"
    if isinstance(exc, requests.HTTPError) and exc.response is not None and not nothing_sent(exc):
        return f"Twilio {exc.response.status_code}"
    return None


def why(exc: BaseException) -> str:
    """One line for a log or a stored error: Twilio's words when it answered."""
    if isinstance(exc, TwilioRestException):
        return f"Twilio {exc.status} {exc.code}: {exc.msg}"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"Twilio {exc.response.status_code} {exc.response.reason}"
    return reason(exc)


def classify(exc: BaseException, what: str) -> Exception:
    """The one rule, as an exception to raise: `Unreachable`, `Refused` or `MaybeSent`."""
    if nothing_sent(exc):
        return Unreachable(why(exc))
    if isinstance(exc, TwilioRestException):
        return Refused(why(exc), f"Twilio {exc.code}: {exc.msg}", exc.code)
    if refused(exc):
        return Refused(why(exc))
    return MaybeSent(f"{what} may have been sent: {why(exc)}")


class Gateway:
    """Twilio's REST API with bounded waits, shared by every job thread and command."""

    def __init__(
        self, account_sid: str, auth_token: str, *, connect_timeout: float, read_timeout: float
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.timeout = (connect_timeout, read_timeout)
        self.http = TwilioHttpClient()
        # requests takes (connect, read) and twilio-python passes `timeout` through to it, but its
        # constructor checks `timeout <= 0`, which a pair cannot answer: set it after.
        self.http.timeout = self.timeout
        self._client = (
            Client(account_sid, auth_token, http_client=self.http) if account_sid else None
        )

    @property
    def client(self) -> Client:
        """twilio-python's client (for `ivr twilio` set-up); raises NotConfigured without an SID."""
        if self._client is None:
            raise NotConfigured("TWILIO_ACCOUNT_SID is not set")
        return self._client

    def send_sms(self, to: str, body: str, **sender: Any) -> MessageInstance:
        """Create a text; a failure leaves as Unreachable, Refused or MaybeSent."""
        try:
            return self.client.messages.create(to=to, body=body, **sender)
        except FAILURES as exc:
            raise classify(exc, "the text") from None

    def place_call(self, **call: Any) -> CallInstance:
        """Ring a phone; a failure leaves as Unreachable, Refused or MaybeSent."""
        try:
            return self.client.calls.create(**call)
        except FAILURES as exc:
            raise classify(exc, "the call") from None

    def download_recording(self, url: str) -> bytes:
        """A recording's MP3. 404 is retried (a recording is sometimes not ready the moment its
        callback arrives); other refusals are final. Credentials go only to Twilio's API."""
        if not url.startswith(TWILIO_API):
            raise Permanent(f"refusing recording URL {url}")
        if not self.account_sid:
            raise NotConfigured("TWILIO_ACCOUNT_SID is not set: recordings cannot be copied")
        session = self.http.session or requests.Session()
        try:
            reply = session.get(
                url + ".mp3", auth=(self.account_sid, self.auth_token), timeout=self.timeout
            )
            if reply.status_code in (401, 403):
                raise Refused(f"Twilio refused the credentials ({reply.status_code})")
            if reply.status_code == 404:
                raise Unreachable("Twilio 404: the recording is not ready yet")
            reply.raise_for_status()
        except requests.RequestException as exc:
            raise (Refused(why(exc)) if refused(exc) else Unreachable(why(exc))) from None
        return reply.content

    def delete_recording(self, sid: str) -> None:
        """Delete Twilio's copy of a recording; one already gone is fine."""
        try:
            self.client.recordings(sid).delete()
        except FAILURES as exc:
            if isinstance(exc, TwilioRestException) and exc.status == 404:
                return
            raise (Refused(why(exc)) if refused(exc) else Unreachable(why(exc))) from None

    def redact_message(self, sid: str) -> None:
        """Have Twilio forget a text's body (POST Body="" to the Message: Twilio's redaction),
        then delete the Message itself; one already gone is fine. A message still being sent
        cannot be deleted yet (Twilio answers 409 or 400): retried, its body already gone."""
        try:
            self.client.messages(sid).update(body="")
            self.client.messages(sid).delete()
        except FAILURES as exc:
            if isinstance(exc, TwilioRestException) and exc.status == 404:
                return
            if isinstance(exc, TwilioRestException) and exc.status in (400, 409):
                raise Unreachable(f"Twilio {exc.status}: the text is not final yet") from None
            raise (Refused(why(exc)) if refused(exc) else Unreachable(why(exc))) from None


def init_app(app: Flask) -> None:
    """Build the app's one gateway from its settings."""
    config = settings(app)
    app.extensions[EXTENSION] = Gateway(
        config.twilio_account_sid,
        config.twilio_auth_token,
        connect_timeout=config.twilio_connect_timeout,
        read_timeout=config.twilio_read_timeout,
    )


def gateway() -> Gateway:
    """The current app's gateway (built by `init_app`)."""
    return current_app.extensions[EXTENSION]
