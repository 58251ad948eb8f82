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
