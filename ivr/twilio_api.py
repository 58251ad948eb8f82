"""Twilio's REST API for background jobs: one client, with timeouts.

twilio-python's default HTTP client waits forever for an answer; a job must give up in bounded
time (well inside JOB_LEASE_SECONDS) so a hanging API costs a retry, not a stuck worker thread.
"""

from __future__ import annotations

from flask import current_app
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TIMEOUT = 20  # seconds


def client() -> Client:
    config = current_app.config
    return Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=TwilioHttpClient(timeout=TIMEOUT),
    )
