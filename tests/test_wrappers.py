"""The quick form parse used for Twilio's webhooks agrees with the standard library's."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode

from ivr.wrappers import parse_form

ALPHABET = ["a", "Z", "0", "=", "&", "+", "%", "%2B", "%20", "%zz", "%e2%82%ac", "%E2", "é", " ",
            ";", "&&", "=="]


def test_matches_parse_qsl_on_random_bodies():
    rng = random.Random(20261128)
    for _ in range(5000):
        body = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 20)))
        assert parse_form(body) == parse_qsl(body, keep_blank_values=True), body


def test_matches_parse_qsl_on_a_twilio_body():
    params = {"CallSid": "CA" + "1" * 32, "From": "+13125550123", "Caller": "+13125550123",
              "CallerCity": "CHICAGO", "SpeechResult": "Español, por favor.", "Digits": "",
              "Confidence": "0.93"}
    body = urlencode(params)
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)
    assert dict(parse_form(body)) == params


def test_app_still_runs_async_and_sync_views(make_app):
    """HotlineFlask keeps Flask's answer per function: an `async def` view is still wrapped."""
    app = make_app()

    @app.get("/check/async")
    async def check_async():
        return "async ok"

    @app.get("/check/sync")
    def check_sync():
        return "sync ok"

    client = app.test_client()
    for _ in range(2):  # the second time from the kept answer
        assert client.get("/check/async").data == b"async ok"
        assert client.get("/check/sync").data == b"sync ok"
