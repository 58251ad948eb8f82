"""Twilio's REST API for background jobs: one client, with timeouts.

twilio-python's default HTTP client waits forever for an answer; a job must give up in bounded
time (well inside JOB_LEASE_SECONDS) so a hanging API costs a retry, not a stuck worker thread.
"""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr.background.jobs import reason
from ivr.settings import settings

TIMEOUT = 20  # seconds


def client() -> Client:
    config = settings()
    return Client(
        config.twilio_account_sid,
        config.twilio_auth_token,
        http_client=TwilioHttpClient(timeout=TIMEOUT),
    )


def nothing_sent(exc: BaseException) -> bool:
    """After a failed request that creates something a person notices (an SMS, a call): True when
    it certainly was not created, so trying again cannot make two (Twilio answered 5xx or 429, or
    the connection never reached it). Otherwise it may exist, or a retry would fail the same way."""
    if isinstance(exc, TwilioRestException):
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    if isinstance(exc, requests.ConnectionError):  # refused or not resolved; not a reset mid-way
        return "NewConnectionError" in str(exc) or "NameResolutionError" in str(exc)
    return False


def refused(exc: BaseException) -> str | None:
    """Twilio's own refusal ("Twilio 400 21610: …"), or None when it never answered."""
    if isinstance(exc, TwilioRestException):
        return f"Twilio {exc.status} {exc.code}: {exc.msg}"
    return None


FAILURES = (TwilioRestException, requests.RequestException)


def why(exc: BaseException) -> str:
    return refused(exc) or reason(exc)
