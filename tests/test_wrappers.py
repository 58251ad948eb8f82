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


def test_app_still_tells_async_functions_from_plain_ones(make_app):
    """HotlineFlask keeps Flask's answer per function: a plain view runs as is, an `async def`
    one is still wrapped (or refused, when Flask's async extra is not installed), every time."""
    app = make_app()

    def plain():
        return "plain"

    async def coroutine():
        return "async"

    for _ in range(2):  # the second time from the kept answer
        assert app.ensure_sync(plain) is plain
        try:
            assert app.ensure_sync(coroutine) is not coroutine
        except RuntimeError as error:  # Flask without asgiref: "Install Flask with the 'async'"
            assert "async" in str(error)
    assert app.test_client().post("/voice").status_code == 403  # hooks and views still run
